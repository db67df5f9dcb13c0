"""Finalize: the media becomes READY with its variants, hashes and facts."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from photopipe_core import steps
from photopipe_core.events import media_events
from photopipe_core.inflight import in_flight_slots
from photopipe_core.models import StepInput
from photopipe_core.repository import media_repository
from photopipe_core.storage import object_store

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
@event_parser(model=StepInput)
def lambda_handler(event: StepInput, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(media_id=event.media.media_id, step="finalize", execution=event.execution_arn)
    item = media_events().published(steps.finalize(event, object_store(), media_repository(), in_flight_slots()))
    metrics.add_metric(name="processed", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="bytes_out", unit=MetricUnit.Bytes, value=sum(v.bytes for v in item.variants.values()))
    return {"media_id": item.media_id, "status": item.status.value}
