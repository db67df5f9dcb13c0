"""Ingest: SQS batch of S3 'Object Created' events → one pipeline execution per media (name = media_id)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from photopipe_core.ingest import ingest_object_created

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    event = S3EventNotificationEventBridgeModel.model_validate_json(record.body)
    outcome = ingest_object_created(
        event.detail.bucket.name, event.detail.object.key, event.detail.object.etag or "", event.detail.object.size or 0
    )
    metrics.add_metric(name=f"ingest_{outcome.value}", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
