"""How the pipeline is doing (`photopipe stats`): outcomes, rates, latencies, queues and the reconciler's work.

What happened to each photo comes from the table (its status, reject reason, retries, when it was uploaded and when
it ended); how long each step took, from the Step Functions histories of the latest runs; what waits, from the
queues themselves; what the reconciler did, from the metrics the stack's functions publish to CloudWatch. The
figures are computed here from plain records, so they can be checked without a stack.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from photopipe.load import stack_slots
from photopipe.runs import RunEvents
from photopipe.stack import Stack
from photopipe_core.models import OPERATOR, Status
from photopipe_core.repository import MediaRepository

# How many of the latest finished runs' histories per-step latency is read from (one request each).
DEFAULT_SAMPLE = 50
# The reconciler's actions and the in-flight sweep, as its functions publish them (Powertools, namespace photopipe).
RECONCILER_METRICS = {"resent": "ReconciledResent", "failed": "ReconciledFailed", "slots_swept": "SlotsSwept"}
METRICS_NAMESPACE = "photopipe"
DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class BadDuration(ValueError):
    pass


def parse_since(text: str) -> timedelta:
    """``30s``, ``15m``, ``1h``, ``7d``: how far back to look."""
    match = DURATION.match(text.strip())
    if not match:
        raise BadDuration(f"{text!r} is not a duration: a number and a unit, s, m, h or d (as in 30m, 1h, 7d)")
    try:
        return timedelta(**{UNITS[match.group(2)]: float(match.group(1))})
    except OverflowError:
        raise BadDuration(f"{text!r} is longer than any time photos could have been uploaded in") from None


class MediaRecord(BaseModel):
    """What the figures need of one media item."""

    model_config = ConfigDict(frozen=True)

    media_id: str
    status: Status
    owner: str = OPERATOR
    created_at: str
    finished_at: str | None = None
    reason: str | None = None
    attempts: int = 0
    execution_arn: str | None = None


class Latency(BaseModel):
    count: int
    p50: float | None
    p95: float | None


class QueueDepth(BaseModel):
    waiting: int  # visible, and delayed (back in a moment)
    in_flight: int  # received, not deleted yet


class Unfinished(BaseModel):
    media_id: str
    status: Status
    created_at: str
    age_seconds: float


class Stats(BaseModel):
    since: str | None  # media uploaded since then (None: all of them)
    at: str
    owner: str | None
    media: int
    by_status: dict[str, int]
    rejected_by_reason: dict[str, int]
    finished: int  # of the media counted, those with a final status
    rates: dict[str, float | None]  # of the finished: ready, duplicate, rejected, failed; retried: ran more than once
    end_to_end_seconds: Latency  # API upload granted (a drop-folder photo: its run started) to final status
    step_seconds: dict[str, Latency]  # per state of the pipeline, from the latest runs' histories
    sampled_runs: int
    queues: dict[str, QueueDepth]
    in_flight: int
    max_in_flight: int
    oldest_unfinished: Unfinished | None
    reconciler: dict[str, int]  # in the window (or the last 14 days, CloudWatch's longest high-resolution span)
    step_errors: dict[str, int]  # errors the steps' functions raised (each caught: retried, rejected or failed)


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile (of 1..n, rank ⌈fraction·n⌉), or None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def latency(values: list[float]) -> Latency:
    return Latency(count=len(values), p50=_rounded(percentile(values, 0.5)), p95=_rounded(percentile(values, 0.95)))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def metric_period(start: datetime, end: datetime) -> int:
    """One CloudWatch period (seconds) covering ``start`` to ``end``: sums need no finer one, and a multiple of an
    hour is what CloudWatch accepts however far back ``start`` is (60 s up to 15 days, 300 s up to 63, then 3,600)."""
    return max(1, math.ceil((end - start).total_seconds() / 3600)) * 3600


def media_figures(records: Iterable[MediaRecord], now: datetime) -> dict[str, Any]:
    """Counts, rates, end-to-end latency and the oldest unfinished photo of ``records``."""
    records = list(records)
    by_status = Counter(record.status.value for record in records)
    finished = [record for record in records if record.status.is_terminal]
    reasons = Counter(record.reason or "unknown" for record in finished if record.status is Status.REJECTED)

    def share(count: int) -> float | None:
        return round(count / len(finished), 4) if finished else None

    rates = {status.lower(): share(by_status[status]) for status in ("READY", "DUPLICATE", "REJECTED", "FAILED")}
    rates["retried"] = share(sum(1 for record in finished if record.attempts > 0))
    durations = [
        (_time(record.finished_at) - _time(record.created_at)).total_seconds()
        for record in finished
        if record.finished_at
    ]
    waiting = [record for record in records if record.status is Status.PROCESSING]
    oldest = min(waiting, key=lambda record: record.created_at, default=None)
    return {
        "media": len(records),
        "by_status": dict(sorted(by_status.items())),
        "rejected_by_reason": dict(sorted(reasons.items())),
        "finished": len(finished),
        "rates": rates,
        "end_to_end_seconds": latency(durations),
        "oldest_unfinished": None
        if oldest is None
        else Unfinished(
            media_id=oldest.media_id,
            status=oldest.status,
            created_at=oldest.created_at,
            age_seconds=round((now - _time(oldest.created_at)).total_seconds(), 1),
        ),
    }


def step_durations(events: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds each task state of one execution took, from its history (entered → exited, retries included)."""
    entered: dict[str, datetime] = {}
    took: dict[str, float] = {}
    for event in events:
        if details := event.get("stateEnteredEventDetails"):
            entered[details["name"]] = event["timestamp"]
            continue
        details = event.get("stateExitedEventDetails") or {}
        if event["type"] == "TaskStateExited" and details.get("name") in entered:
            took[details["name"]] = (event["timestamp"] - entered[details["name"]]).total_seconds()
    return took


def step_figures(histories: Iterable[list[dict[str, Any]]]) -> dict[str, Latency]:
    per_step: dict[str, list[float]] = {}
    for events in histories:
        for step, seconds in step_durations(events).items():
            per_step.setdefault(step, []).append(seconds)
    return {step: latency(values) for step, values in sorted(per_step.items())}


class StatsReader:
    """Reads the figures of a deployed stack."""

    STEP_FUNCTIONS = ("ValidateFunction", "DedupeFunction", "ResizeFunction", "FinalizeFunction")

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._repository = MediaRepository(stack.resource("dynamodb").Table(stack.outputs.MediaTableName))
        self._cloudwatch = stack.client("cloudwatch")

    def read(self, since: timedelta | None = None, owner: str | None = None, sample: int = DEFAULT_SAMPLE) -> Stats:
        now = datetime.now(UTC)
        start = now - since if since is not None else None
        records = [MediaRecord.model_validate(item) for item in self._repository.summaries(_iso(start), owner)]
        figures = media_figures(records, now)
        latest = sorted(
            (r for r in records if r.status.is_terminal and r.finished_at and r.execution_arn),
            key=lambda r: r.finished_at or "",
            reverse=True,
        )[:sample]
        finished = [_time(r.finished_at) for r in latest if r.finished_at]
        # an EXPRESS run's events are read from the log: from a run's longest before the oldest of these ended
        logged_since = min(finished) - timedelta(minutes=5) if finished else None
        histories = list(RunEvents(self._stack).of_many([r.execution_arn or "" for r in latest], logged_since).values())
        slots = stack_slots(self._stack)
        metrics_start = start or now - timedelta(days=14)
        return Stats(
            since=_iso(start),
            at=_iso(now) or "",
            owner=owner,
            step_seconds=step_figures(histories),
            sampled_runs=len(histories),
            queues=self._queues(),
            in_flight=slots.held(),
            max_in_flight=slots.limit,
            reconciler={
                name: int(self._metric_sum(METRICS_NAMESPACE, metric, self._service(), metrics_start, now))
                for name, metric in RECONCILER_METRICS.items()
            },
            step_errors={
                logical.removesuffix("Function"): int(
                    self._metric_sum("AWS/Lambda", "Errors", self._function(logical), metrics_start, now)
                )
                for logical in self.STEP_FUNCTIONS
            },
            **figures,
        )

    def _queues(self) -> dict[str, QueueDepth]:
        sqs = self._stack.client("sqs")
        outputs = self._stack.outputs
        urls = {
            "IngestQueue": outputs.IngestQueueUrl,
            "IngestDLQ": outputs.IngestDLQUrl,
            "FailedQueue": outputs.FailedQueueUrl,
            "WebhookQueue": outputs.WebhookQueueUrl,
            "WebhookDLQ": outputs.WebhookDLQUrl,
            "ReprocessQueue": outputs.ReprocessQueueUrl,
            "ReprocessDLQ": outputs.ReprocessDLQUrl,
        }
        depths = {}
        for name, url in urls.items():
            attributes = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesDelayed",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            depths[name] = QueueDepth(
                waiting=int(attributes["ApproximateNumberOfMessages"])
                + int(attributes["ApproximateNumberOfMessagesDelayed"]),
                in_flight=int(attributes["ApproximateNumberOfMessagesNotVisible"]),
            )
        return depths

    def _service(self) -> list[dict[str, str]]:
        return [{"Name": "service", "Value": self._stack.settings.stack_name}]

    def _function(self, logical_id: str) -> list[dict[str, str]]:
        resource = self._stack.client("cloudformation").describe_stack_resource(
            StackName=self._stack.settings.stack_name, LogicalResourceId=logical_id
        )
        return [{"Name": "FunctionName", "Value": resource["StackResourceDetail"]["PhysicalResourceId"]}]

    def _metric_sum(
        self, namespace: str, metric: str, dimensions: list[dict[str, str]], start: datetime, end: datetime
    ) -> float:
        end += timedelta(minutes=1)
        points = self._cloudwatch.get_metric_statistics(
            Namespace=namespace,
            MetricName=metric,
            Dimensions=dimensions,
            StartTime=start,
            EndTime=end,
            Period=metric_period(start, end),
            Statistics=["Sum"],
        )["Datapoints"]
        return float(sum(point["Sum"] for point in points))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
