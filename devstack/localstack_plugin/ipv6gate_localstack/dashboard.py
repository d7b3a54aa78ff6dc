"""CloudFormation provider for ``AWS::CloudWatch::Dashboard`` (LocalStack has none; its CloudWatch has the API)."""

from __future__ import annotations

from typing import Any, ClassVar

from localstack.services.cloudformation.resource_provider import (
    CloudFormationResourceProviderPlugin,
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)


class DashboardProvider(ResourceProvider[dict[str, Any]]):
    TYPE = "AWS::CloudWatch::Dashboard"
    SCHEMA: ClassVar[dict[str, list[str]]] = {"primaryIdentifier": ["/properties/DashboardName"]}

    def create(self, request: ResourceRequest[dict[str, Any]]) -> ProgressEvent[Any]:
        model = dict(request.desired_state)
        model.setdefault("DashboardName", f"{request.stack_name}-{request.logical_resource_id}")
        request.aws_client_factory.cloudwatch.put_dashboard(
            DashboardName=model["DashboardName"], DashboardBody=model["DashboardBody"]
        )
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def update(self, request: ResourceRequest[dict[str, Any]]) -> ProgressEvent[Any]:
        name = (request.previous_state or {}).get("DashboardName")
        return self.create(request) if name is None else self._put(request, name)

    def _put(self, request: ResourceRequest[dict[str, Any]], name: str) -> ProgressEvent[Any]:
        model = {**request.desired_state, "DashboardName": request.desired_state.get("DashboardName") or name}
        request.aws_client_factory.cloudwatch.put_dashboard(
            DashboardName=model["DashboardName"], DashboardBody=model["DashboardBody"]
        )
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)

    def delete(self, request: ResourceRequest[dict[str, Any]]) -> ProgressEvent[Any]:
        name = (request.previous_state or request.desired_state).get("DashboardName")
        if name:
            request.aws_client_factory.cloudwatch.delete_dashboards(DashboardNames=[name])
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=None)


class DashboardPlugin(CloudFormationResourceProviderPlugin):
    name = "AWS::CloudWatch::Dashboard"

    def __init__(self) -> None:
        self.factory: type[ResourceProvider[Any]] | None = None

    def load(self) -> None:
        self.factory = DashboardProvider
