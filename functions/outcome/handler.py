"""The pipeline's other endings: REJECTED, DUPLICATE and FAILED (one handler each, one Lambda each)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from photopipe_core import steps
from photopipe_core.events import media_events
from photopipe_core.inflight import in_flight_slots
from photopipe_core.models import MediaItem, OutcomeInput
from photopipe_core.repository import media_repository
from photopipe_core.storage import failed_queue, object_store

logger = Logger()
metrics = Metrics()


def _result(item: MediaItem) -> dict[str, Any]:
    return {
        "media_id": item.media_id,
        "status": item.status.value,
        "reason": item.reason,
        "duplicate_of": item.duplicate_of,
        "error": item.error,
    }


@logger.inject_lambda_context
@metrics.log_metrics
@event_parser(model=OutcomeInput)
def reject_handler(event: OutcomeInput, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(media_id=event.media.media_id, step="reject", execution=event.execution_arn)
    item = media_events().published(steps.reject(event, object_store(), media_repository(), in_flight_slots()))
    metrics.add_metric(name=f"rejected_{item.reason}", unit=MetricUnit.Count, value=1)
    return _result(item)


@logger.inject_lambda_context
@metrics.log_metrics
@event_parser(model=OutcomeInput)
def duplicate_handler(event: OutcomeInput, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(media_id=event.media.media_id, step="duplicate", execution=event.execution_arn)
    item = media_events().published(steps.mark_duplicate(event, media_repository(), in_flight_slots()))
    metrics.add_metric(name="duplicates", unit=MetricUnit.Count, value=1)
    return _result(item)


@logger.inject_lambda_context
@metrics.log_metrics
@event_parser(model=OutcomeInput)
def fail_handler(event: OutcomeInput, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(media_id=event.media.media_id, step="fail", execution=event.execution_arn)
    item = media_events().published(steps.fail(event, media_repository(), failed_queue(), in_flight_slots()))
    logger.error("media failed", extra={"error": item.error})
    metrics.add_metric(name="failed", unit=MetricUnit.Count, value=1)
    return _result(item)
