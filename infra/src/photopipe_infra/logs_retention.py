"""CloudWatch Logs in the embedded stack keep the newest events of each log stream, not every event ever written.

Upstream: ``moto.logs.models.LogStream.put_log_events`` (LocalStack's Logs provider stores events in moto), which
appends every event to the stream's ``events`` list for as long as LocalStack runs; moto never applies a log group's
retention. Each Lambda process writes one stream, a few events per invocation: ≈ 15 KB of LocalStack's memory per
photo, without bound. The ``on_infra_start`` hook wraps it so that a stream keeps its newest ``EVENTS_PER_STREAM``
events (older ones are dropped, as retention would drop them on AWS; the stream's stored-bytes figure still counts
everything written). ``UPSTREAM_SHA256`` pins the upstream source; a test fails when an upgrade changes it.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
from typing import Any

from localstack.runtime import hooks
from moto.logs import models

LOG = logging.getLogger(__name__)
EVENTS_PER_STREAM = 3000  # ≈ 2 MB of a chatty function's log per process stream
# sha256 of the source of moto.logs.models.LogStream.put_log_events in LocalStack 4.14.0's moto-ext.
UPSTREAM_SHA256 = "bbc8f6d18edd468f113207bdf05b6e2b2582204f443c87938d6f6bc5a8cea681"


def upstream_sha256() -> str:
    return hashlib.sha256(inspect.getsource(models.LogStream.put_log_events).encode()).hexdigest()


def keep_newest(events: list[Any], limit: int = EVENTS_PER_STREAM) -> None:
    """Drop the oldest events of a stream beyond ``limit`` (in place)."""
    if len(events) > limit:
        del events[: len(events) - limit]


@functools.cache
def _wrap_put_log_events() -> None:
    if upstream_sha256() != UPSTREAM_SHA256:
        LOG.warning("moto's LogStream.put_log_events differs from what photopipe_infra.logs_retention expects")
    original = models.LogStream.put_log_events

    def put_log_events(self: models.LogStream, log_events: list[dict[str, Any]]) -> str:
        token: str = original(self, log_events)
        keep_newest(self.events)
        return token

    models.LogStream.put_log_events = put_log_events  # type: ignore[method-assign]


@hooks.on_infra_start()
def bound_log_streams() -> None:
    _wrap_put_log_events()
    LOG.debug("Log streams keep their newest %d events", EVENTS_PER_STREAM)
