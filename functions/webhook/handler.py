"""Webhook: the final-status events of media uploaded with a callback_url → signed POSTs to it (webhooks.py)."""

from __future__ import annotations

import functools
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from photopipe_core.owners import TtlCache
from photopipe_core.repository import media_repository
from photopipe_core.settings import get_settings
from photopipe_core.storage import webhook_queue
from photopipe_core.webhooks import Delivery, DeliveryFailed, Webhooks, post

logger = Logger()
# Every record failing is an answer like any other (each waits for its own retry), not a function error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@lru_cache(maxsize=1)
def webhooks() -> Webhooks:
    settings = get_settings()
    repository = media_repository()
    secrets = TtlCache(repository.owners.webhook_secret)  # a rotated secret is used within a minute
    send = functools.partial(
        post,
        allow_private=settings.webhook_private_networks == "allow",
        own_endpoint=settings.aws_endpoint_url or None,
    )
    return Webhooks(
        secrets.get, repository.record_webhook, settings.webhook_max_attempts, settings.webhook_retry_seconds, send
    )


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    def record_handler(record: SQSRecord) -> None:
        delivery = Delivery.of_event(record.body)
        attempt = int(record.attributes.approximate_receive_count)
        logger.append_keys(media_id=delivery.media_id, event_id=delivery.event_id, attempt=attempt)
        try:
            answer = webhooks().deliver(delivery, attempt)
        except DeliveryFailed as failed:
            # the wait before the next attempt; after the last, none: the next receive moves it to the DLQ
            webhook_queue().hide(record.receipt_handle, failed.retry_in or 0)
            _count("failed" if failed.retry_in is None else "retrying")
            logger.warning("Webhook not delivered", extra={"why": str(failed)})
            raise
        _count("delivered")
        logger.info("Webhook delivered", extra={"status_code": answer.status_code})

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


def _count(outcome: str) -> None:
    with single_metric(name="WebhookDeliveries", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="outcome", value=outcome)
