"""An EXPRESS run's events, read from the lines its state machine logs, in the shape of a STANDARD run's history."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from photopipe.runs import from_log_line, run_of

ARN = "arn:aws:states:us-east-1:000000000000:express:pipeline:M1:0320ecc3"


def line(event_id: int, kind: str, at: str | int, **details: str) -> str:
    return json.dumps(
        {
            "id": str(event_id),
            "previous_event_id": str(event_id - 1),
            "event_timestamp": at,
            "type": kind,
            "execution_arn": ARN,
            "details": details,
        }
    )


def test_a_logged_line_reads_as_the_history_event_it_records() -> None:
    entered = from_log_line(line(2, "TaskStateEntered", "2026-12-02T13:57:44.408158+00:00", name="Validate"))
    assert entered == {
        "id": 2,
        "type": "TaskStateEntered",
        "timestamp": datetime(2026, 12, 2, 13, 57, 44, 408158, tzinfo=UTC),
        "executionArn": ARN,
        "stateEnteredEventDetails": {"name": "Validate"},
    }
    exited = from_log_line(line(5, "TaskStateExited", "1796219065725", name="Validate"))  # AWS: epoch milliseconds
    assert exited["stateExitedEventDetails"] == {"name": "Validate"}
    assert exited["timestamp"] == datetime(2026, 12, 2, 13, 44, 25, 725000, tzinfo=UTC)


def test_a_run_is_running_until_an_event_closes_it() -> None:
    started = from_log_line(line(1, "ExecutionStarted", "2026-12-02T13:57:44+00:00"))
    entered = from_log_line(line(2, "TaskStateEntered", "2026-12-02T13:57:45+00:00", name="Validate"))
    assert run_of([]) is None
    running = run_of([started, entered])
    assert running is not None and running.status == "RUNNING" and running.seconds is None
    closed = run_of([started, entered, from_log_line(line(3, "ExecutionTimedOut", "2026-12-02T14:02:44+00:00"))])
    assert closed is not None and closed.status == "TIMED_OUT" and closed.seconds == 300.0
    assert closed.execution_arn == ARN
