"""SQS event sources long-poll, as AWS's Lambda pollers do.

LocalStack's SQS poller asks with ``WaitTimeSeconds`` = the mapping's ``MaximumBatchingWindowInSeconds``, which is
0 unless a batching window is set: a short poll, then a pause, forever. Between the latency wanted (a photo waits
for the next poll) and the cost of an idle stack (every empty poll is a request through LocalStack's gateway, plus
the SQS metrics it records), no pause is right. A long poll is both: the ReceiveMessage call waits in the queue and
returns as soon as a message is visible (LocalStack's SQS wakes the waiter on send), and an idle queue costs one call
every ``LONG_POLL_SECONDS``. A mapping with a batching window keeps LocalStack's behaviour.
"""

from __future__ import annotations

import logging
from typing import Any

from localstack.runtime import hooks
from localstack.services.lambda_.event_source_mapping.pollers.sqs_poller import SqsPoller

LOG = logging.getLogger(__name__)
LONG_POLL_SECONDS = 20  # SQS's maximum, what AWS's pollers use; the poller's client reads for 65 s


def _long_poll(params: dict[str, Any], **_: Any) -> None:
    if not params.get("WaitTimeSeconds"):
        params["WaitTimeSeconds"] = LONG_POLL_SECONDS


@hooks.on_infra_start()
def long_poll_sqs_event_sources() -> None:
    register = SqsPoller._register_client_hooks
    if getattr(register, "long_polls", False):
        return

    def register_with_long_poll(poller: SqsPoller) -> None:
        register(poller)
        poller.source_client.meta.events.register("provide-client-params.sqs.ReceiveMessage", _long_poll)

    register_with_long_poll.long_polls = True  # type: ignore[attr-defined]
    SqsPoller._register_client_hooks = register_with_long_poll  # type: ignore[method-assign]
    LOG.debug("SQS event sources long-poll for %d s", LONG_POLL_SECONDS)
