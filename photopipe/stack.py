"""The deployed stack as the client sees it: its outputs and boto3 clients for its endpoint."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import boto3
from botocore.exceptions import ClientError
from pydantic import BaseModel

from photopipe.config import ClientSettings

LOCAL_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


class StackNotFound(RuntimeError):
    pass


class StackOutputs(BaseModel):
    """The stack outputs of DESIGN §4.4."""

    ApiUrl: str
    MediaBucketName: str
    MediaTableName: str
    PipelineStateMachineArn: str
    IngestQueueUrl: str
    IngestDLQUrl: str
    FailedQueueUrl: str
    UsagePlanId: str
    MediaEventBusName: str
    WebhookDLQUrl: str
    WebhookQueueUrl: str
    ReprocessQueueUrl: str
    ReprocessDLQUrl: str
    DashboardName: str
    PipelineLogGroupName: str

    def execution_arn(self, name: str) -> str:
        return f"{self.PipelineStateMachineArn.replace(':stateMachine:', ':execution:')}:{name}"


class Stack:
    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings

    def client(self, service: str) -> Any:
        return boto3.client(service, **self._connection())  # type: ignore[call-overload]

    def resource(self, service: str) -> Any:
        return boto3.resource(service, **self._connection())  # type: ignore[call-overload]

    def _connection(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"region_name": self.settings.region, "endpoint_url": self.settings.aws_endpoint}
        if self.settings.is_local:
            kwargs |= LOCAL_CREDENTIALS
        return kwargs

    @cached_property
    def workflow_type(self) -> str:
        """The pipeline's workflow type: STANDARD or EXPRESS (the WorkflowType parameter)."""
        sfn = self.client("stepfunctions")
        machine = sfn.describe_state_machine(stateMachineArn=self.outputs.PipelineStateMachineArn)
        return str(machine.get("type") or "STANDARD")

    @cached_property
    def outputs(self) -> StackOutputs:
        try:
            stacks = self.client("cloudformation").describe_stacks(StackName=self.settings.stack_name)["Stacks"]
        except ClientError as error:
            raise StackNotFound(
                f"Stack '{self.settings.stack_name}' not found at {self.settings.endpoint_url}; run `photopipe up`"
            ) from error
        found = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        missing = sorted(set(StackOutputs.model_fields) - set(found))
        if missing:
            raise StackNotFound(
                f"Stack '{self.settings.stack_name}' was deployed from an older template (no output "
                f"{', '.join(missing)}): deploy it again (`photopipe up`, or `sam deploy` on AWS)"
            )
        return StackOutputs(**found)
