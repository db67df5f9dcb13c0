"""CloudWatch Logs in the embedded stack keep the newest events of a stream (photopipe_infra.logs_retention)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

KEPT = 3000  # photopipe_infra.logs_retention.EVENTS_PER_STREAM


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
