"""Tenants in DynamoDB: partition key ``domain`` (lower-case A-label), ``ipv6_inbound`` (Boolean),
optional ``mode`` (``enforce``|``monitor``) and ``partner_prefixes`` (string set of IPv6 prefixes)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ipv6gate.aws.items import plain, wire
from ipv6gate.decision.tenants import Mode, Tenant, tenant_from_plain
from ipv6gate.ports import TenantLookupError

_BATCH = 100  # BatchGetItem's limit per request
_MAX_ROUNDS = 5  # retries of UnprocessedKeys before giving up (throttling)
# A key no tenant can have (.invalid is reserved, RFC 2606): reading it proves the table is there.
PROBE_DOMAIN = "ipv6gate-start-probe.invalid"


class DynamoTenantDirectory:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def probe(self) -> None:
        """Raise ``TenantLookupError`` unless the table answers a read; the lookups' own IAM (BatchGetItem)."""
        self.get_many([PROBE_DOMAIN])

    def at_hand(self, domains: Iterable[str]) -> bool:
        """Never: every lookup is a request to the table (``ports.answers_at_hand``)."""
        return False

    def get_many(self, domains: Iterable[str]) -> dict[str, Tenant]:
        from botocore.exceptions import BotoCoreError, ClientError

        wanted = list(dict.fromkeys(domains))
        found: dict[str, Tenant] = {}
        malformed: dict[str, str] = {}  # domain -> why its item cannot be used
        try:
            for start in range(0, len(wanted), _BATCH):
                keys = [wire({"domain": d}) for d in wanted[start : start + _BATCH]]
                request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": False}}
                for _ in range(_MAX_ROUNDS):
                    response = self._client.batch_get_item(RequestItems=request)
                    for item in response.get("Responses", {}).get(self._table, []):
                        try:
                            tenant = tenant_from_item(item)
                        except ValueError as exc:
                            malformed[str(plain(item).get("domain", "?"))] = str(exc)
                            continue
                        found[tenant.domain] = tenant
                    request = response.get("UnprocessedKeys") or {}
                    if not request:
                        break
                else:
                    raise TenantLookupError(f"DynamoDB {self._table}: keys still unprocessed after {_MAX_ROUNDS} tries")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "ClientError")
            raise TenantLookupError(f"DynamoDB {self._table}: {code}") from None
        except BotoCoreError as exc:
            raise TenantLookupError(f"DynamoDB {self._table}: {_said(exc)}") from None
        if malformed:
            # Only these domains fail (open, loudly); the others keep the tenants read for them.
            reasons = "; ".join(malformed.values())
            raise TenantLookupError(
                f"DynamoDB {self._table}: malformed tenant item: {reasons}", domains=tuple(malformed), found=found
            )
        return found


def tenant_from_item(item: Mapping[str, Mapping[str, Any]]) -> Tenant:
    """A tenant from a DynamoDB item in the wire format (``{"domain": {"S": ...}}``)."""
    return tenant_from_plain(plain(item))


class TenantAdmin:
    """Operator changes to the tenants table, shaped like Exchange Online's per-domain cmdlets.

    Every change stamps ``updated_at`` (UTC, ISO 8601) and ``updated_by`` and returns the item as
    stored (plain values; ``tenant_from_plain`` says whether the gate can use it). Inputs are
    validated by the caller before anything is written.
    """

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def enable(self, domain: str, *, mode: Mode, by: str, now: str) -> dict[str, Any]:
        return self._update(
            domain,
            "SET ipv6_inbound = :on, #mode = :mode",
            {":on": True, ":mode": mode.value},
            by=by,
            now=now,
        )

    def disable(self, domain: str, *, by: str, now: str) -> dict[str, Any]:
        return self._update(domain, "SET ipv6_inbound = :off", {":off": False}, by=by, now=now)

    def add_partner(self, domain: str, prefix: str, *, by: str, now: str) -> dict[str, Any]:
        return self._update(domain, "ADD partner_prefixes :p", {":p": {prefix}}, by=by, now=now)

    def remove_partner(self, domain: str, prefix: str, *, by: str, now: str) -> dict[str, Any]:
        return self._update(domain, "DELETE partner_prefixes :p", {":p": {prefix}}, by=by, now=now)

    def seed(self, domain: str, *, mode: Mode, by: str, now: str) -> bool:
        """Create the domain's item (opted in, in ``mode``) unless it has one; ``True`` if created.

        A conditional put: an existing item, whatever it says (off, enforce, partners), is never
        touched, so an operator's choice always wins over a deploy's default.
        """
        item = wire({"domain": domain, "ipv6_inbound": True, "mode": mode.value, "updated_at": now, "updated_by": by})
        try:
            self._call(
                "put_item",
                Item=item,
                ConditionExpression="attribute_not_exists(#d)",
                ExpressionAttributeNames={"#d": "domain"},
            )
        except _ConditionFailed:
            return False
        return True

    def remove(self, domain: str) -> dict[str, Any] | None:
        """Delete the domain's item and return it; ``None`` (nothing deleted) when there is none."""
        try:
            old = self._call(
                "delete_item",
                Key=wire({"domain": domain}),
                ConditionExpression="attribute_exists(#d)",
                ExpressionAttributeNames={"#d": "domain"},
                ReturnValues="ALL_OLD",
            )
        except _ConditionFailed:
            return None
        return plain(old["Attributes"])

    def get(self, domain: str) -> dict[str, Any] | None:
        item = self._call("get_item", Key=wire({"domain": domain}), ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def scan(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        while True:
            page = self._call("scan", **kwargs)
            items.extend(plain(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return sorted(items, key=lambda i: str(i.get("domain")))
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _update(self, domain: str, expression: str, values: Mapping[str, Any], *, by: str, now: str) -> dict[str, Any]:
        # Split "SET a = :x" / "ADD ..." / "DELETE ..." and append the audit stamp to the SET part.
        stamp = "updated_at = :now, updated_by = :by"
        expression = f"{expression}, {stamp}" if expression.startswith("SET") else f"SET {stamp} {expression}"
        names = {"#mode": "mode"} if "#mode" in expression else None
        kwargs: dict[str, Any] = {
            "Key": wire({"domain": domain}),
            "UpdateExpression": expression,
            "ExpressionAttributeValues": wire({**values, ":now": now, ":by": by}),
            "ReturnValues": "ALL_NEW",
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        return plain(self._call("update_item", **kwargs)["Attributes"])

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            result: dict[str, Any] = getattr(self._client, operation)(TableName=self._table, **kwargs)
            return result
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ConditionalCheckFailedException":
                raise _ConditionFailed from None
            raise TenantLookupError(
                f"DynamoDB {self._table}: {error.get('Code')}: {error.get('Message', '')}"
            ) from None
        except BotoCoreError as exc:
            raise TenantLookupError(f"DynamoDB {self._table}: {exc}") from None


class _ConditionFailed(Exception):
    """A conditional write's condition did not hold (the caller says what that means)."""


def _said(exc: Exception) -> str:
    """botocore's own sentence ("Could not connect to the endpoint URL: ..."), never its class name."""
    return " ".join(str(exc).split()) or "AWS SDK error"
