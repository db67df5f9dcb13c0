"""CloudWatch Logs in the embedded stack keep the newest events of a stream and of a log group
(photopipe_infra.logs_retention)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

KEPT = 3000  # photopipe_infra.logs_retention.EVENTS_PER_STREAM
GROUP_BUDGET = 5000  # photopipe_infra.logs_retention.EVENTS_PER_GROUP


def test_a_log_stream_keeps_its_newest_events_only(aws_client: Callable[[str], Any]) -> None:
    logs = aws_client("logs")
    group, stream = f"/test/retention-{uuid.uuid4().hex[:8]}", "stream"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    try:
        # When more events than a stream keeps are written, in three calls
        now = int(time.time() * 1000)
        written = [{"timestamp": now + n, "message": f"event {n}"} for n in range(KEPT + 500)]
        for start in range(0, len(written), 1500):
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=written[start : start + 1500])
        # Then the stream holds the newest ones, in order
        kept: list[str] = []
        kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        while True:
            page = logs.get_log_events(**kwargs)
            kept += [e["message"] for e in page["events"]]
            if not page["events"] or page["nextForwardToken"] == kwargs.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextForwardToken"]
    finally:
        logs.delete_log_group(logGroupName=group)
    assert kept == [f"event {n}" for n in range(500, KEPT + 500)]


def test_a_log_group_drops_its_oldest_streams_beyond_its_budget(aws_client: Callable[[str], Any]) -> None:
    # Each Lambda execution environment writes a stream of its own, so a group gains streams as environments come
    # and go: a bound per stream alone does not bound the group.
    logs = aws_client("logs")
    group = f"/test/retention-{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    streams = [f"stream-{n}" for n in range(5)]
    try:
        now = int(time.time() * 1000)
        for n, stream in enumerate(streams):  # 1,500 events each, one stream after the other
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            events = [{"timestamp": now + 1500 * n + k, "message": f"{stream} {k}"} for k in range(1500)]
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
        described = logs.describe_log_streams(logGroupName=group)["logStreams"]
        newest = logs.get_log_events(logGroupName=group, logStreamName=streams[-1], startFromHead=True)["events"]
    finally:
        logs.delete_log_group(logGroupName=group)
    # Then the oldest streams are gone and the group holds at most its budget; the newest stream is whole
    assert 1500 * len(described) <= GROUP_BUDGET
    assert sorted(s["logStreamName"] for s in described) == streams[2:]
    assert len(newest) == 1500
