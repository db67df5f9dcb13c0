"""Starting pipeline executions (Step Functions behind a small class)."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from functools import lru_cache
from typing import Any

from botocore.exceptions import ClientError

from photopipe_core import aws
from photopipe_core.inflight import InFlightSlots, Take
from photopipe_core.models import PipelineInput, Status
from photopipe_core.repository import InvalidTransition, MediaRepository
from photopipe_core.settings import get_settings


class StartOutcome(StrEnum):
    STARTED = "started"
    ALREADY_STARTED = "already_started"


class AtCapacity(Exception):
    """Every in-flight slot is taken, so no run may start now; ask again in a moment."""


# An EXPRESS run lasts five minutes at most (Step Functions stops it then).
EXPRESS_LONGEST_RUN_SECONDS = 300.0


class PipelineStarter:
    def __init__(self, client: Any, state_machine_arn: str, workflow_type: str = "STANDARD") -> None:
        self._client = client
        self._arn = state_machine_arn
        self.express = workflow_type == "EXPRESS"

    def start(self, media: PipelineInput, attempt: int = 0) -> StartOutcome:
        """Start the execution named ``media_id`` (``media_id-<attempt>`` for a redrive).

        STANDARD: a repeat (same name) is 'already started', never a second run. EXPRESS starts are not idempotent:
        a caller must not start a name twice (ingest starts only with a slot newly taken for it), and a second run
        that starts anyway is ended by Validate (``steps.validate``: Superseded).
        """
        name = media.media_id if attempt == 0 else f"{media.media_id}-{attempt}"
        try:
            self._client.start_execution(
                stateMachineArn=self._arn, name=name, input=json.dumps(media.model_dump(mode="json"))
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ExecutionAlreadyExists":
                return StartOutcome.ALREADY_STARTED
            raise
        return StartOutcome.STARTED

    def redrive(self, media_id: str, repo: MediaRepository, slots: InFlightSlots) -> str:
        """Run a FAILED media again as a new execution, holding an in-flight slot like every run; return the
        execution name. However many callers ask at once, one run starts (the others get InvalidTransition); with
        every slot taken nothing changes and AtCapacity is raised.

        The slot is taken first, for the run the retry will be (``media_id-<attempt>``), then the media moves to
        PROCESSING only if no other retry moved it since it was read; whatever fails after the slot was taken gives
        it back (and the release on the run's close, or the sweeper, covers a caller that dies in between)."""
        item = repo.get(media_id)
        if item is None:
            raise InvalidTransition(f"no media {media_id}")
        attempt = item.attempts + 1
        name = f"{media_id}-{attempt}"
        taken = slots.try_acquire(name, time.time())
        if taken is Take.FULL:
            raise AtCapacity(f"all {slots.limit} in-flight slots are taken")
        if taken is Take.HELD:
            raise InvalidTransition(f"a retry of media {media_id} is already starting")
        try:
            repo.begin_retry(media_id, lambda n: self.execution_arn(f"{media_id}-{n}"), after_attempts=item.attempts)
        except Exception:
            slots.release(name)
            raise
        source = item.source
        media = PipelineInput(
            media_id=media_id, bucket=source.bucket, key=source.key, etag=source.etag, size=source.size
        )
        try:
            self.start(media, attempt)
        except Exception as error:
            # Nothing will run for it: back to FAILED (a redrive can try again), saying why.
            slots.release(name)
            repo.finish(media_id, self.execution_arn(name), Status.FAILED, "retry", error=f"retry: {error}"[:1000])
            raise
        return name

    def execution_arn(self, name: str) -> str:
        return f"{self._arn.replace(':stateMachine:', ':execution:')}:{name}"

    def is_running(self, name: str) -> bool:
        """Whether the execution called ``name`` exists and is still running. An EXPRESS run cannot be asked for:
        False (callers ask only about runs older than ``longest_run_seconds``)."""
        if self.express:
            return False
        try:
            return bool(self._client.describe_execution(executionArn=self.execution_arn(name))["status"] == "RUNNING")
        except ClientError as error:
            if error.response["Error"]["Code"] == "ExecutionDoesNotExist":
                return False
            raise

    @property
    def longest_run_seconds(self) -> float:
        """How old a run may be and still be running, as far as callers that cannot ask can tell (0: ask)."""
        return EXPRESS_LONGEST_RUN_SECONDS if self.express else 0.0

    def is_reachable(self) -> bool:
        return bool(self._client.describe_state_machine(stateMachineArn=self._arn)["status"])


@lru_cache(maxsize=1)
def pipeline_starter() -> PipelineStarter:
    settings = get_settings()
    return PipelineStarter(aws.client("stepfunctions"), settings.require("pipeline_arn"), settings.workflow_type)
