"""CloudFormation custom resources of the stack (``Custom::ReceiptRuleSetTarget``, ``Custom::TenantSeed``,
``Custom::ActiveReceiptRuleSet``): resolve the gate rule's rule set, seed monitor-mode tenants, activate.

Composition root: the SES and DynamoDB clients are built once per cold start; the handler answers
CloudFormation exactly once per request (``ipv6gate.entrypoints.stack_setup``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from ipv6gate.aws.dynamodb import TenantAdmin
from ipv6gate.aws.receipt_rules import SesReceiptRules
from ipv6gate.entrypoints.lambda_gate import log_json
from ipv6gate.entrypoints.stack_setup import StackSetup, send_response
from ipv6gate.wiring import aws_client

logger = Logger(json_serializer=log_json)
ses = aws_client("ses")
dynamodb = aws_client("dynamodb")

setup = StackSetup(
    rules=SesReceiptRules(ses),
    tenants=lambda table: TenantAdmin(dynamodb, table),
    now=lambda: datetime.now(UTC).isoformat(timespec="seconds"),
    log=logger,
)


@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    logger.append_keys(resource=event.get("LogicalResourceId"), request_type=event.get("RequestType"))
    send_response(str(event["ResponseURL"]), setup.handle(event))
