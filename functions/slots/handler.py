"""In-flight slots: given back when a pipeline execution closes, and swept for runs that lost theirs."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from photopipe_core.inflight import in_flight_slots, sweep
from photopipe_core.pipeline import pipeline_starter

logger = Logger()
metrics = Metrics()
# A slot younger than this is never swept: its run may be starting right now.
SWEEP_GRACE_SECONDS = 120.0


@logger.inject_lambda_context
@metrics.log_metrics
def release_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A "Step Functions Execution Status Change" event for a closed execution of the pipeline."""
    run = str(event["detail"]["name"])
    released = in_flight_slots().release(run)
    logger.info("slot given back", extra={"run": run, "status": event["detail"].get("status"), "held": released})
    return {"run": run, "released": released}


@logger.inject_lambda_context
@metrics.log_metrics
def sweep_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Scheduled: give back the slots of holders whose execution is not running (lost events, crashed ingests)."""
    starter = pipeline_starter()
    # An EXPRESS run cannot be asked about: its slot is swept once the run must have ended.
    grace = SWEEP_GRACE_SECONDS + starter.longest_run_seconds
    freed = sweep(in_flight_slots(), starter.is_running, time.time(), grace)
    if freed:
        logger.warning("slots of closed runs given back", extra={"runs": freed})
    metrics.add_metric(name="SlotsSwept", unit=MetricUnit.Count, value=len(freed))
    return {"freed": freed}
