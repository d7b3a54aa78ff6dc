"""CloudFormation custom resources of the stack (``Custom::ReceiptRuleSetTarget``, ``Custom::TenantSeed``,
``Custom::ActiveReceiptRuleSet``, ``Custom::MessageBucketDrain``): resolve the gate rule's rule set, seed
monitor-mode tenants, activate, and empty the message bucket on delete.

Composition root: ``wiring.build_stack_setup`` builds the SES and DynamoDB clients once per cold start;
the handler answers CloudFormation exactly once per request (``ipv6gate.aws.custom_resources``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from ipv6gate.aws.custom_resources import send_response
from ipv6gate.entrypoints.telemetry import log_json
from ipv6gate.wiring import build_stack_setup

logger = Logger(json_serializer=log_json)
setup = build_stack_setup(logger)


@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    logger.append_keys(resource=event.get("LogicalResourceId"), request_type=event.get("RequestType"))
    answer = setup.handle(event, seconds_left=lambda: context.get_remaining_time_in_millis() / 1000)
    send_response(str(event["ResponseURL"]), answer)
