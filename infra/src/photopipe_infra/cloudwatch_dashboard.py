"""``AWS::CloudWatch::Dashboard`` in CloudFormation templates.

LocalStack's CloudWatch keeps dashboards (``PutDashboard``, ``GetDashboard``, ``ListDashboards``,
``DeleteDashboards``), but its CloudFormation has no resource provider for the type: a template's dashboard is
skipped as an unsupported resource, so ``aws cloudwatch get-dashboard`` found nothing after a deploy that succeeded.
This provider creates, replaces and deletes the dashboard through CloudWatch's own API, as CloudFormation does on
AWS. It is a plugin in LocalStack's ``localstack.cloudformation.resource_providers`` namespace.
"""

from __future__ import annotations

from typing import TypedDict

from localstack.services.cloudformation.provider_utils import generate_default_name
from localstack.services.cloudformation.resource_provider import (
    CloudFormationResourceProviderPlugin,
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)


class DashboardProperties(TypedDict, total=False):
    DashboardName: str
    DashboardBody: str


# The parts of the type's registry schema LocalStack reads: the identifier, and what cannot change in place.
SCHEMA = {
    "typeName": "AWS::CloudWatch::Dashboard",
    "properties": {"DashboardName": {"type": "string"}, "DashboardBody": {"type": "string"}},
    "required": ["DashboardBody"],
    "primaryIdentifier": ["/properties/DashboardName"],
    "createOnlyProperties": ["/properties/DashboardName"],
}


class DashboardProvider(ResourceProvider[DashboardProperties]):
    TYPE = "AWS::CloudWatch::Dashboard"
    SCHEMA = SCHEMA

    def create(self, request: ResourceRequest[DashboardProperties]) -> ProgressEvent[DashboardProperties]:
        model = request.desired_state
        if not model.get("DashboardName"):
            model["DashboardName"] = generate_default_name(request.stack_name, request.logical_resource_id)
        return self._put(request, model)

    def update(self, request: ResourceRequest[DashboardProperties]) -> ProgressEvent[DashboardProperties]:
        model = request.desired_state
        previous = request.previous_state or {}
        model.setdefault("DashboardName", previous.get("DashboardName", ""))
        return self._put(request, model)

    def delete(self, request: ResourceRequest[DashboardProperties]) -> ProgressEvent[DashboardProperties]:
        model = request.desired_state
        if name := model.get("DashboardName"):
            request.aws_client_factory.cloudwatch.delete_dashboards(DashboardNames=[name])
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def read(self, request: ResourceRequest[DashboardProperties]) -> ProgressEvent[DashboardProperties]:
        name = request.desired_state["DashboardName"]
        found = request.aws_client_factory.cloudwatch.get_dashboard(DashboardName=name)
        model = DashboardProperties(DashboardName=name, DashboardBody=found["DashboardBody"])
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    @staticmethod
    def _put(
        request: ResourceRequest[DashboardProperties], model: DashboardProperties
    ) -> ProgressEvent[DashboardProperties]:
        cloudwatch = request.aws_client_factory.cloudwatch
        cloudwatch.put_dashboard(DashboardName=model["DashboardName"], DashboardBody=model["DashboardBody"])
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)


class DashboardProviderPlugin(CloudFormationResourceProviderPlugin):
    name = "AWS::CloudWatch::Dashboard"

    def __init__(self) -> None:
        self.factory: type[ResourceProvider[DashboardProperties]] | None = None

    def load(self) -> None:
        self.factory = DashboardProvider
