"""Tenants in DynamoDB: partition key ``domain`` (lower-case A-label), ``ipv6_inbound`` (Boolean),
optional ``mode`` (``enforce``|``monitor``) and ``partner_prefixes`` (string set of IPv6 prefixes)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ipv6gate.ports import TenantLookupError
from ipv6gate.tenants import Mode, Tenant, parse_prefix

_BATCH = 100  # BatchGetItem's limit per request
_MAX_ROUNDS = 5  # retries of UnprocessedKeys before giving up (throttling)


class DynamoTenantDirectory:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def get_many(self, domains: Iterable[str]) -> dict[str, Tenant]:
        from botocore.exceptions import BotoCoreError, ClientError

        wanted = list(dict.fromkeys(domains))
        found: dict[str, Tenant] = {}
        try:
            for start in range(0, len(wanted), _BATCH):
                keys = [{"domain": {"S": d}} for d in wanted[start : start + _BATCH]]
                request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": False}}
                for _ in range(_MAX_ROUNDS):
                    response = self._client.batch_get_item(RequestItems=request)
                    for item in response.get("Responses", {}).get(self._table, []):
                        tenant = tenant_from_item(item)
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
            raise TenantLookupError(f"DynamoDB {self._table}: {exc.__class__.__name__}") from None
        except ValueError as exc:
            raise TenantLookupError(f"DynamoDB {self._table}: malformed tenant item: {exc}") from None
        return found


def tenant_from_item(item: Mapping[str, Mapping[str, Any]]) -> Tenant:
    """A tenant from a DynamoDB item in the wire format (``{"domain": {"S": ...}}``)."""
    plain: dict[str, Any] = {}
    for key, typed in item.items():
        ((kind, value),) = typed.items()
        if kind == "L":
            plain[key] = [next(iter(v.values())) for v in value]
        else:
            plain[key] = list(value) if kind == "SS" else value
    return tenant_from_plain(plain)


def tenant_from_plain(item: Mapping[str, Any]) -> Tenant:
    domain = item.get("domain")
    if not isinstance(domain, str) or not domain:
        raise ValueError("tenant item has no 'domain' string")
    enabled = item.get("ipv6_inbound", False)
    mode = str(item.get("mode") or Mode.ENFORCE.value).lower()
    if mode not in {m.value for m in Mode}:
        raise ValueError(f"tenant {domain}: mode {mode!r} is not enforce|monitor")
    prefixes = item.get("partner_prefixes") or []
    return Tenant(
        domain=domain.lower(),
        ipv6_inbound=enabled is True,
        mode=Mode(mode),
        partner_prefixes=tuple(parse_prefix(str(p)) for p in prefixes),
    )
