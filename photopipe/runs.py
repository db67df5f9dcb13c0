"""The events of the pipeline's runs, whichever the workflow type.

A STANDARD run keeps its history (``GetExecutionHistory``). An EXPRESS run keeps none: the state machine logs every
event at level ALL to its log group (``PipelineLogGroupName``), one JSON line per event, and its events are read
from there, in the shape ``GetExecutionHistory`` gives them (``type``, ``timestamp``, and the state's name under
``stateEnteredEventDetails`` / ``stateExitedEventDetails``). So the bench, ``photopipe stats`` and the tests read a
run the same way for both.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from photopipe.stack import Stack

RUNNING = "RUNNING"
# The event that closes a run, and the run's status it means.
CLOSING = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionAborted": "ABORTED",
    "ExecutionTimedOut": "TIMED_OUT",
}


@dataclass(frozen=True)
class Run:
    execution_arn: str
    status: str
    start: datetime
    stop: datetime | None

    @property
    def seconds(self) -> float | None:
        return (self.stop - self.start).total_seconds() if self.stop else None


def from_log_line(message: str) -> dict[str, Any]:
    """One line of the state machine's log as the history event it records."""
    logged = json.loads(message)
    kind = str(logged["type"])
    event: dict[str, Any] = {
        "id": int(logged.get("id") or 0),
        "type": kind,
        "timestamp": _timestamp(logged["event_timestamp"]),
        "executionArn": logged.get("execution_arn", ""),
    }
    details = logged.get("details") or {}
    if kind.endswith("StateEntered"):
        event["stateEnteredEventDetails"] = details
    elif kind.endswith("StateExited"):
        event["stateExitedEventDetails"] = details
    return event


def _timestamp(value: str | int | float) -> datetime:
    """AWS logs epoch milliseconds, as a string of digits; LocalStack an ISO 8601 time."""
    if isinstance(value, int | float) or value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def run_of(events: list[dict[str, Any]]) -> Run | None:
    """A run's status and times from its events (None without any)."""
    if not events:
        return None
    closing = next((e for e in reversed(events) if e["type"] in CLOSING), None)
    return Run(
        execution_arn=str(events[0].get("executionArn", "")),
        status=CLOSING[closing["type"]] if closing else RUNNING,
        start=events[0]["timestamp"],
        stop=closing["timestamp"] if closing else None,
    )


class RunEvents:
    """Reads runs' events from Step Functions (STANDARD) or from the state machine's log group (EXPRESS)."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._sfn = stack.client("stepfunctions")
        self.express = stack.workflow_type == "EXPRESS"

    def of(self, execution_arn: str, since: datetime | None = None) -> list[dict[str, Any]]:
        """The events of one run, oldest first ([] for a run that does not exist, or has logged nothing yet)."""
        return self.of_many([execution_arn], since).get(execution_arn, [])

    def of_many(self, execution_arns: Iterable[str], since: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
        """The events of each run (only runs with events are in the answer). EXPRESS: one read of the log group
        (from ``since``, when given) for all of them."""
        wanted = [arn for arn in execution_arns if arn]
        if not self.express:
            return {arn: events for arn in wanted if (events := self._history(arn))}
        found: dict[str, list[dict[str, Any]]] = defaultdict(list)
        names = set(wanted)
        for event in self._logged(since):
            if event["executionArn"] in names:
                found[event["executionArn"]].append(event)
        return {arn: sorted(events, key=lambda e: (e["timestamp"], e["id"])) for arn, events in found.items()}

    def _history(self, execution_arn: str) -> list[dict[str, Any]]:
        sfn = self._sfn
        try:
            pages = sfn.get_paginator("get_execution_history").paginate(
                executionArn=execution_arn, includeExecutionData=False
            )
            return [{**event, "executionArn": execution_arn} for page in pages for event in page["events"]]
        except (sfn.exceptions.ExecutionDoesNotExist, sfn.exceptions.InvalidArn):
            return []

    def _logged(self, since: datetime | None) -> Iterable[dict[str, Any]]:
        logs = self._stack.client("logs")
        arguments: dict[str, Any] = {"logGroupName": self._stack.outputs.PipelineLogGroupName}
        if since is not None:
            arguments["startTime"] = int(since.timestamp() * 1000)
        for page in logs.get_paginator("filter_log_events").paginate(**arguments):
            for line in page["events"]:
                try:
                    yield from_log_line(line["message"])
                except (ValueError, KeyError):
                    continue  # not a run's event
