"""Reading what happened to a photo: its media item, history and pipeline execution."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from photopipe.runs import RUNNING, Run, RunEvents, run_of
from photopipe.stack import Stack
from photopipe_core.events import MediaEvents
from photopipe_core.models import MediaItem, run_name
from photopipe_core.reconcile import Reconciled
from photopipe_core.reconcile import run as reconcile_run
from photopipe_core.repository import MediaRepository
from photopipe_core.storage import MessageQueue, ObjectStore


class WaitTimeout(TimeoutError):
    pass


class MediaReader:
    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        table = stack.resource("dynamodb").Table(stack.outputs.MediaTableName)
        self.repository = MediaRepository(table)
        self._sfn = stack.client("stepfunctions")

    def get(self, media_id: str) -> MediaItem | None:
        return self.repository.get(media_id)

    def history(self, media_id: str) -> list[dict[str, Any]]:
        return self.repository.history(media_id)

    def execution(self, name: str) -> Run | None:
        """The run called ``name`` (``media_id``, or ``media_id-<attempt>``), if it started. An EXPRESS run cannot be
        described: it is found through its media item, which holds its ARN, and read from the state machine's log."""
        if self._stack.workflow_type != "EXPRESS":
            arn = self._stack.outputs.execution_arn(name)
            try:
                described = self._sfn.describe_execution(executionArn=arn)
            except self._sfn.exceptions.ExecutionDoesNotExist:
                return None
            return Run(arn, described["status"], described["startDate"], described.get("stopDate"))
        item = self.get(name.split("-", 1)[0])
        if item is None or not item.execution_arn or run_name(item.execution_arn) != name:
            return None
        since = datetime.fromisoformat(item.updated_at.replace("Z", "+00:00")) - timedelta(minutes=5)
        run = run_of(RunEvents(self._stack).of(item.execution_arn, since))
        return run

    def wait_for_terminal(
        self,
        media_ids: list[str],
        timeout: float = 120.0,
        interval: float = 0.3,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, MediaItem | None]:
        """Wait until every media has a terminal status (READY, DUPLICATE, REJECTED, FAILED) or the deadline."""
        deadline = time.monotonic() + timeout
        done: dict[str, MediaItem | None] = {}
        pending = list(media_ids)
        while pending and time.monotonic() < deadline:
            for media_id in list(pending):
                item = self.get(media_id)
                if item is not None and item.status.is_terminal:
                    done[media_id] = item
                    pending.remove(media_id)
                    if progress is not None:
                        progress(len(done))
            if pending:
                time.sleep(interval)
        for media_id in pending:
            done[media_id] = self.get(media_id)
        return done

    def wait_for_execution(self, media_id: str, timeout: float = 60.0, interval: float = 0.25) -> Run:
        """Wait until the media's execution exists and has finished, or raise WaitTimeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            execution = self.execution(media_id)
            if execution is not None and execution.status != RUNNING:
                return execution
            time.sleep(interval)
        raise WaitTimeout(f"the execution for media {media_id} did not finish within {timeout:.0f} s")


def reconcile_stack(stack: Stack, grace: timedelta, stuck_after: timedelta) -> Reconciled:
    """The reconciler the stack runs every 10 minutes, run from here (``photopipe reconcile``, and ``photopipe up``
    after LocalStack stopped without saving its state)."""
    outputs = stack.outputs
    sqs = stack.client("sqs")
    return reconcile_run(
        ObjectStore(stack.client("s3"), outputs.MediaBucketName),
        MediaReader(stack).repository,
        MessageQueue(sqs, outputs.IngestQueueUrl),
        MessageQueue(sqs, outputs.FailedQueueUrl),
        stack.client("stepfunctions"),
        datetime.now(UTC),
        MediaEvents(stack.client("events"), outputs.MediaEventBusName),
        grace=grace,
        stuck_after=stuck_after,
    )
