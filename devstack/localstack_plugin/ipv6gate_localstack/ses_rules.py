"""CloudFormation providers for ``AWS::SES::ReceiptRuleSet`` and ``AWS::SES::ReceiptRule`` (LocalStack has none).

Each one calls the SES API as CloudFormation's own handlers do (create, update, delete by name), so
what the rehearsal checks afterwards is SES's state, read back with ``DescribeReceiptRuleSet``.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from localstack.services.cloudformation.resource_provider import (
    CloudFormationResourceProviderPlugin,
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)

_SCHEMA = {"primaryIdentifier": ["/properties/Id"]}


def _done(model: dict[str, Any] | None) -> ProgressEvent[Any]:
    return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)


def _bools(value: Any) -> Any:
    """Template booleans arrive as "true"/"false" when they come from a parameter or a !Sub."""
    if isinstance(value, dict):
        return {k: _bools(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bools(v) for v in value]
    if value in ("true", "false"):
        return value == "true"
    return value


class ReceiptRuleSetProvider(ResourceProvider[dict[str, Any]]):
    TYPE = "AWS::SES::ReceiptRuleSet"
    SCHEMA = _SCHEMA

    def create(self, request: ResourceRequest[dict[str, Any]]) -> ProgressEvent[Any]:
        model = request.desired_state
        name = model.get("RuleSetName") or f"{request.stack_name}-{request.logical_resource_id}-{uuid.uuid4().hex[:8]}"
        request.aws_client_factory.ses.create_receipt_rule_set(RuleSetName=name)
        return _done({**model, "RuleSetName": name, "Id": name})

    def update(self, request: ResourceRequest[dict[str, Any]]) -> ProgressEvent[Any]:
        return _done({**request.desired_state, "Id": (request.previous_state or {}).get("Id")})

    def delete(self, request: ResourceRequest[dict[str, Any]]) -> ProgressEvent[Any]:
        ses = request.aws_client_factory.ses
        with contextlib.suppress(ses.exceptions.RuleSetDoesNotExistException):
            ses.delete_receipt_rule_set(RuleSetName=request.previous_state["Id"])
        return _done(None)


class ReceiptRuleProvider(ResourceProvider[dict[str, Any]]):
    TYPE = "AWS::SES::ReceiptRule"
    SCHEMA = _SCHEMA

    def create(self, request: ResourceRequest[dict[str, Any]]) -> ProgressEvent[Any]:
        model = request.desired_state
        rule = _bools(dict(model["Rule"]))
        rule.setdefault("Name", f"{request.stack_name}-{request.logical_resource_id}-{uuid.uuid4().hex[:8]}")
        options = {"After": model["After"]} if model.get("After") else {}
        request.aws_client_factory.ses.create_receipt_rule(RuleSetName=model["RuleSetName"], Rule=rule, **options)
        return _done({**model, "Rule": rule, "Id": rule["Name"]})

    def update(self, request: ResourceRequest[dict[str, Any]]) -> ProgressEvent[Any]:
        model, before = request.desired_state, request.previous_state or {}
        rule = _bools(dict(model["Rule"]))
        rule.setdefault("Name", before.get("Id"))
        ses = request.aws_client_factory.ses
        if rule["Name"] != before.get("Id") or model["RuleSetName"] != before.get("RuleSetName"):
            self.delete(request)  # a new name or set: CloudFormation replaces the rule
            return self.create(request)
        ses.update_receipt_rule(RuleSetName=model["RuleSetName"], Rule=rule)
        return _done({**model, "Rule": rule, "Id": rule["Name"]})

    def delete(self, request: ResourceRequest[dict[str, Any]]) -> ProgressEvent[Any]:
        before = request.previous_state or {}
        ses = request.aws_client_factory.ses
        with contextlib.suppress(ses.exceptions.RuleSetDoesNotExistException):
            ses.delete_receipt_rule(RuleSetName=before["RuleSetName"], RuleName=before["Id"])
        return _done(None)


class ReceiptRuleSetPlugin(CloudFormationResourceProviderPlugin):
    name = "AWS::SES::ReceiptRuleSet"

    def __init__(self) -> None:
        self.factory: type[ResourceProvider[Any]] | None = None

    def load(self) -> None:
        self.factory = ReceiptRuleSetProvider


class ReceiptRulePlugin(CloudFormationResourceProviderPlugin):
    name = "AWS::SES::ReceiptRule"

    def __init__(self) -> None:
        self.factory: type[ResourceProvider[Any]] | None = None

    def load(self) -> None:
        self.factory = ReceiptRuleProvider
