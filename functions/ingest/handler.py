"""Ingest: SQS batch of S3 'Object Created' events → one pipeline execution per media (name = media_id)."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from photopipe_core.ingest import IngestOutcome, NoCapacity, ingest_object_created, wait_delay_seconds
from photopipe_core.keys import key_from_event
from photopipe_core.storage import WAITS_ATTRIBUTE, ingest_queue

logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS)
# Time kept back from the function timeout for putting the rest of a batch back in the queue.
RESERVE_SECONDS = 10.0


def _waits(record: SQSRecord) -> int:
    attribute = record.message_attributes.get(WAITS_ATTRIBUTE)
    return int(attribute.string_value or 0) if attribute else 0


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - RESERVE_SECONDS

    def record_handler(record: SQSRecord) -> None:
        detail = S3EventNotificationEventBridgeModel.model_validate_json(record.body).detail
        try:
            key = key_from_event(detail.object.key)  # decoded once, here: everything after uses the real key
            outcome = ingest_object_created(
                detail.bucket.name, key, detail.object.etag or "", detail.object.size or 0, deadline
            )
        except NoCapacity:
            waits = _waits(record) + 1
            ingest_queue().send_later(record.body, wait_delay_seconds(waits), waits)
            outcome = IngestOutcome.DEFERRED
        with single_metric(name="Ingested", unit=MetricUnit.Count, value=1) as metric:
            metric.add_dimension(name="outcome", value=outcome.value)

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
