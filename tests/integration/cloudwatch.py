"""Reading what reached CloudWatch in the integration tests: logs and metrics arrive a moment after the work (they
are shipped in batches), so both readers can poll until what a test waits for is there."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

POLL_SECONDS = 0.3


def metric_sum(
    cloudwatch: Any,
    namespace: str,
    metric: str,
    dimension: dict[str, str] | list[dict[str, str]],
    at_least: float | None = None,
    timeout: float = 20.0,
) -> float:
    """The metric's sum over the last ten minutes; with ``at_least``, polled until it gets there (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        now = datetime.now(UTC)
        points = cloudwatch.get_metric_statistics(
            Namespace=namespace,
            MetricName=metric,
            Dimensions=dimension if isinstance(dimension, list) else [dimension],
            StartTime=now - timedelta(minutes=10),
            EndTime=now + timedelta(minutes=1),
            Period=3600,
            Statistics=["Sum"],
        )["Datapoints"]
        total = float(sum(point["Sum"] for point in points))
        if at_least is None or total >= at_least or time.monotonic() > deadline:
            return total
        time.sleep(POLL_SECONDS)


def log_messages(logs: Any, function: str, until: Callable[[list[str]], bool], timeout: float = 20.0) -> list[str]:
    """Every message in the function's log group, polled until ``until(messages)`` holds (or ``timeout``). A group
    not created yet counts as no messages: it is created with the first lines shipped, after the invoke returns."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            pages = logs.get_paginator("filter_log_events").paginate(logGroupName=f"/aws/lambda/{function}")
            messages = [event["message"] for page in pages for event in page["events"]]
        except logs.exceptions.ResourceNotFoundException:
            messages = []
        if until(messages) or time.monotonic() > deadline:
            return messages
        time.sleep(POLL_SECONDS)
