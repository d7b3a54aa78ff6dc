"""SES (v1) receipt rule sets and domain identities, as the stack's setup function needs them.

Only reads, and one write: which rule set is active. Rules themselves are CloudFormation's
(``AWS::SES::ReceiptRule``); nothing here adds, moves or deletes a rule or a rule set.
"""

from __future__ import annotations

from typing import Any


class ReceiptRulesError(Exception):
    """An SES call failed; the message is one line naming the call and SES's error code."""


class SesReceiptRules:
    def __init__(self, client: Any) -> None:
        self._client = client

    @property
    def region(self) -> str:
        return str(self._client.meta.region_name)

    def active_rule_set(self) -> str | None:
        """The active rule set's name; ``None`` when no set is active."""
        metadata = self._call("describe_active_receipt_rule_set").get("Metadata") or {}
        name = metadata.get("Name")
        return str(name) if name else None

    def rule_set_exists(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.describe_receipt_rule_set(RuleSetName=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "RuleSetDoesNotExist":
                return False
            raise self._error("describe_receipt_rule_set", exc) from None
        return True

    def activate(self, name: str | None) -> None:
        """Make ``name`` the active set; ``None`` deactivates every set (SES's call with no name)."""
        self._call("set_active_receipt_rule_set", **({"RuleSetName": name} if name else {}))

    def domain_identities(self) -> list[str]:
        """Every domain identity of the account in this region (verified or not), as SES lists them."""
        names: list[str] = []
        kwargs: dict[str, Any] = {"IdentityType": "Domain", "MaxItems": 1000}
        while True:
            page = self._call("list_identities", **kwargs)
            names.extend(str(n) for n in page.get("Identities", []))
            if not page.get("NextToken"):
                return names
            kwargs["NextToken"] = page["NextToken"]

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            result: dict[str, Any] = getattr(self._client, operation)(**kwargs)
            return result
        except ClientError as exc:
            raise self._error(operation, exc) from None
        except BotoCoreError as exc:
            raise ReceiptRulesError(f"SES {operation}: {exc}") from None

    @staticmethod
    def _error(operation: str, exc: Any) -> ReceiptRulesError:
        error = exc.response.get("Error", {})
        message = " ".join(str(error.get("Message", "")).split())
        return ReceiptRulesError(f"SES {operation}: {error.get('Code')}: {message}".rstrip(": "))
