"""Starting pipeline executions (Step Functions behind a small class)."""

from __future__ import annotations

import json
from enum import StrEnum
from functools import lru_cache
from typing import Any

from botocore.exceptions import ClientError

from photopipe_core import aws
from photopipe_core.models import PipelineInput
from photopipe_core.settings import get_settings


class StartOutcome(StrEnum):
    STARTED = "started"
    ALREADY_STARTED = "already_started"


class PipelineStarter:
    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self._client = client
        self._arn = state_machine_arn

    def start(self, media: PipelineInput) -> StartOutcome:
        """Start the execution named ``media_id``. A repeat (same name) is 'already started', never a second run."""
        try:
            self._client.start_execution(
                stateMachineArn=self._arn, name=media.media_id, input=json.dumps(media.model_dump(mode="json"))
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ExecutionAlreadyExists":
                return StartOutcome.ALREADY_STARTED
            raise
        return StartOutcome.STARTED

    def is_reachable(self) -> bool:
        return bool(self._client.describe_state_machine(stateMachineArn=self._arn)["status"])


@lru_cache(maxsize=1)
def pipeline_starter() -> PipelineStarter:
    return PipelineStarter(aws.client("stepfunctions"), get_settings().pipeline_arn)
