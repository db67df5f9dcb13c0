"""Reconcile (scheduled): originals whose event never became a run, and runs that ended without a final status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from photopipe_core import aws, reconcile
from photopipe_core.events import media_events
from photopipe_core.repository import media_repository
from photopipe_core.storage import failed_queue, ingest_queue, object_store

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    done = reconcile.run(
        object_store(),
        media_repository(),
        ingest_queue(),
        failed_queue(),
        aws.client("stepfunctions"),
        datetime.now(UTC),
        media_events(),
        look_back=reconcile.SCHEDULED_LOOK_BACK,
        wait_for_queue=True,
    )
    if done.total:
        logger.warning("loose ends tied off", extra={"resent": done.resent, "failed": done.failed})
    metrics.add_metric(name="ReconciledResent", unit=MetricUnit.Count, value=len(done.resent))
    metrics.add_metric(name="ReconciledFailed", unit=MetricUnit.Count, value=len(done.failed))
    return {"resent": done.resent, "failed": done.failed}
