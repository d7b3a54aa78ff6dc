"""Service providers: DynamoDB by moto; SES with the receipt-rule calls and SendBounce moto lacks."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from localstack.aws.api import RequestContext, handler
from localstack.aws.api.core import CommonServiceException
from localstack.aws.api.ses import SendBounceResponse
from localstack.services.plugins import Service, aws_provider

# SendBounce requests are appended here as JSON lines (the rehearsal reads them): nothing is mailed.
BOUNCE_LOG = "IPV6GATE_REHEARSAL_BOUNCE_LOG"


@aws_provider(api="dynamodb", name="moto")
def dynamodb() -> Service:
    """DynamoDB entirely by moto: LocalStack's provider needs DynamoDB Local, a download."""
    from localstack.aws.api.dynamodb import DynamodbApi
    from localstack.services.moto import MotoFallbackDispatcher

    class MotoDynamoDB(DynamodbApi):  # every operation falls through to moto
        pass

    return Service.for_provider(MotoDynamoDB(), dispatch_table_factory=MotoFallbackDispatcher)


@aws_provider(api="ses", name="rehearsal")
def ses() -> Service:
    from localstack.services.moto import MotoFallbackDispatcher
    from localstack.services.ses.provider import SesProvider, get_ses_backend

    class RehearsalSes(SesProvider):
        def _rules(self, context: RequestContext, rule_set_name: str) -> list[dict[str, Any]]:
            rule_set = get_ses_backend(context).receipt_rule_set.get(rule_set_name)
            if rule_set is None:
                raise CommonServiceException("RuleSetDoesNotExist", f"Rule set does not exist: {rule_set_name}")
            rules: list[dict[str, Any]] = rule_set.rules
            return rules

        # moto checks a LambdaAction's function in moto's Lambda, where LocalStack's functions are not:
        # the function is checked in LocalStack's Lambda, the rest of the rule by moto as before.
        @handler("CreateReceiptRule")
        def create_receipt_rule(
            self, context: RequestContext, rule_set_name: str, rule: dict[str, Any], after: str | None = None, **kw: Any
        ) -> dict[str, Any]:
            backend = get_ses_backend(context)
            backend.create_receipt_rule(rule_set_name, _without_lambda(context, rule), after)
            self._restore_actions(context, rule_set_name, rule)
            return {}

        @handler("UpdateReceiptRule")
        def update_receipt_rule(
            self, context: RequestContext, rule_set_name: str, rule: dict[str, Any], **kw: Any
        ) -> dict[str, Any]:
            get_ses_backend(context).update_receipt_rule(rule_set_name, _without_lambda(context, rule))
            self._restore_actions(context, rule_set_name, rule)
            return {}

        def _restore_actions(self, context: RequestContext, rule_set_name: str, rule: dict[str, Any]) -> None:
            for stored in self._rules(context, rule_set_name):
                if stored["Name"] == rule["Name"]:
                    stored["Actions"] = rule.get("Actions", [])

        @handler("DeleteReceiptRule")
        def delete_receipt_rule(
            self, context: RequestContext, rule_set_name: str, rule_name: str, **kwargs: Any
        ) -> dict[str, Any]:
            rules = self._rules(context, rule_set_name)
            rules[:] = [r for r in rules if r["Name"] != rule_name]  # SES: deleting a missing rule succeeds
            return {}

        @handler("ReorderReceiptRuleSet")
        def reorder_receipt_rule_set(
            self, context: RequestContext, rule_set_name: str, rule_names: list[str], **kwargs: Any
        ) -> dict[str, Any]:
            rules = self._rules(context, rule_set_name)
            by_name = {r["Name"]: r for r in rules}
            missing = [n for n in rule_names if n not in by_name]
            if missing or len(rule_names) != len(rules):
                raise CommonServiceException(
                    "RuleDoesNotExist", f"Rule does not exist: {missing[0] if missing else '(all rules must be named)'}"
                )
            rules[:] = [by_name[n] for n in rule_names]
            return {}

        @handler("SendBounce")
        def send_bounce(
            self,
            context: RequestContext,
            original_message_id: str,
            bounce_sender: str,
            bounced_recipient_info_list: list[dict[str, Any]],
            **kwargs: Any,
        ) -> SendBounceResponse:
            message_id = f"rehearsal-{uuid.uuid4()}"
            record = {
                "message_id": message_id,
                "original_message_id": original_message_id,
                "bounce_sender": bounce_sender,
                "recipients": [r.get("Recipient") for r in bounced_recipient_info_list],
                "at": datetime.now(UTC).isoformat(),
            }
            if path := os.environ.get(BOUNCE_LOG):
                with open(path, "a", encoding="utf-8") as log:
                    log.write(json.dumps(record) + "\n")
            return SendBounceResponse(MessageId=message_id)

    return Service.for_provider(RehearsalSes(), dispatch_table_factory=MotoFallbackDispatcher)


def _without_lambda(context: RequestContext, rule: dict[str, Any]) -> dict[str, Any]:
    """The rule without its Lambda actions, once each action's function is known to LocalStack's Lambda."""
    from localstack.services.lambda_.invocation.models import lambda_stores

    functions = lambda_stores[context.account_id][context.region].functions
    for action in rule.get("Actions", []):
        if "LambdaAction" in action:
            arn = action["LambdaAction"]["FunctionArn"]
            name = arn.split(":")[6] if arn.startswith("arn:") else arn
            if name not in functions:
                raise CommonServiceException("InvalidLambdaConfiguration", f"Invalid Lambda function: {arn}")
    return {**rule, "Actions": [a for a in rule.get("Actions", []) if "LambdaAction" not in a]}
