"""The figures of `photopipe stats`, from plain records: counts, rates, percentiles, per-step times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from photopipe.stats import (
    BadDuration,
    MediaRecord,
    media_figures,
    metric_period,
    parse_since,
    percentile,
    step_figures,
)
from photopipe_core.models import Status

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def record(n: int, status: Status, seconds: float | None = None, **fields: object) -> MediaRecord:
    created = NOW - timedelta(hours=1, seconds=n)
    finished = None if seconds is None else (created + timedelta(seconds=seconds)).isoformat()
    return MediaRecord.model_validate(
        {
            "media_id": f"m{n}",
            "status": status,
            "owner": "alice",
            "created_at": created.isoformat(),
            "finished_at": finished,
            **fields,
        }
    )


def test_a_mix_of_outcomes_is_counted_with_its_rates_and_times() -> None:
    records = [
        *(record(n, Status.READY, seconds=n + 1) for n in range(5)),  # 1 … 5 s
        record(5, Status.READY, seconds=20, attempts=1),  # retried once
        record(6, Status.DUPLICATE, seconds=2),
        record(7, Status.REJECTED, seconds=1, reason="not_an_image"),
        record(8, Status.REJECTED, seconds=1, reason="too_many_pixels"),
        record(9, Status.FAILED, seconds=30),
        record(10, Status.PROCESSING),
        record(12, Status.PROCESSING),  # the older of the two (uploaded 12 s before the hour)
        record(13, Status.PENDING_UPLOAD),
    ]
    figures = media_figures(records, NOW)
    assert figures["media"] == 13 and figures["finished"] == 10
    assert figures["by_status"] == {
        "DUPLICATE": 1,
        "FAILED": 1,
        "PENDING_UPLOAD": 1,
        "PROCESSING": 2,
        "READY": 6,
        "REJECTED": 2,
    }
    assert figures["rejected_by_reason"] == {"not_an_image": 1, "too_many_pixels": 1}
    assert figures["rates"] == {"ready": 0.6, "duplicate": 0.1, "rejected": 0.2, "failed": 0.1, "retried": 0.1}
    e2e = figures["end_to_end_seconds"]  # sorted: 1 1 1 2 2 3 4 5 20 30 s
    assert (e2e.count, e2e.p50, e2e.p95) == (10, 2.0, 30.0)
    oldest = figures["oldest_unfinished"]
    assert oldest.media_id == "m12" and oldest.age_seconds == 3612.0


def test_no_photos_give_no_rates_and_no_times() -> None:
    figures = media_figures([], NOW)
    assert figures["media"] == 0 and figures["oldest_unfinished"] is None
    assert set(figures["rates"].values()) == {None}
    assert figures["end_to_end_seconds"].count == 0 and figures["end_to_end_seconds"].p50 is None


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]  # 1 … 20
    assert percentile(values, 0.5) == 10 and percentile(values, 0.95) == 19
    assert percentile([7.0], 0.95) == 7 and percentile([], 0.5) is None


def history(*steps: tuple[str, float]) -> list[dict[str, object]]:
    """A run's events: each task state entered, then exited ``seconds`` later (a Pass state between them)."""
    at = NOW
    events: list[dict[str, object]] = []
    for name, seconds in steps:
        events.append({"type": "TaskStateEntered", "timestamp": at, "stateEnteredEventDetails": {"name": name}})
        at += timedelta(seconds=seconds)
        events.append({"type": "TaskStateExited", "timestamp": at, "stateExitedEventDetails": {"name": name}})
        events.append({"type": "PassStateEntered", "timestamp": at, "stateEnteredEventDetails": {"name": "Pass"}})
        events.append({"type": "PassStateExited", "timestamp": at, "stateExitedEventDetails": {"name": "Pass"}})
    return events


def test_each_steps_time_comes_from_the_runs_histories() -> None:
    runs = [history(("Validate", 0.1 * n), ("Resize", 1.0 * n)) for n in range(1, 11)]
    runs.append(history(("Validate", 0.05), ("Reject", 0.2)))
    figures = step_figures(runs)
    assert set(figures) == {"Validate", "Resize", "Reject"}  # task states only
    assert (figures["Resize"].count, figures["Resize"].p50, figures["Resize"].p95) == (10, 5.0, 10.0)
    assert figures["Validate"].count == 11 and figures["Validate"].p50 == 0.5
    assert figures["Reject"].p95 == 0.2


def test_since_takes_a_number_and_a_unit() -> None:
    assert parse_since("30s") == timedelta(seconds=30)
    assert parse_since("1.5h") == timedelta(minutes=90)
    assert parse_since("7d") == timedelta(days=7)
    for wrong in ("1 week", "h", "-1h", "10"):
        with pytest.raises(BadDuration, match="not a duration"):
            parse_since(wrong)
    with pytest.raises(BadDuration, match="longer than"):
        parse_since("99999999999d")


def test_one_period_covers_the_whole_window_in_whole_hours_as_cloudwatch_accepts_for_any_age() -> None:
    for window in (timedelta(minutes=1), timedelta(hours=1, minutes=1), timedelta(days=14, minutes=1)):
        period = metric_period(NOW - window, NOW)
        assert period % 3600 == 0 and period >= window.total_seconds() > period - 3600
