"""Reprocess: media ids from ReprocessQueue (`photopipe reprocess`) → each READY media rendered again with the
stack's current variant and WebP settings, unless it already is."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from photopipe_core import steps
from photopipe_core.repository import media_repository
from photopipe_core.settings import get_settings
from photopipe_core.storage import object_store

logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    def record_handler(record: SQSRecord) -> None:
        media_id = str(json.loads(record.body)["media_id"])
        logger.append_keys(media_id=media_id, step="reprocess")
        outcome = steps.rerender(media_id, object_store(), media_repository(), get_settings())
        logger.info("Reprocessed", extra={"outcome": outcome})
        with single_metric(name="Reprocessed", unit=MetricUnit.Count, value=1) as metric:
            metric.add_dimension(name="outcome", value=outcome.split(":")[0].split(" ")[0])

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
