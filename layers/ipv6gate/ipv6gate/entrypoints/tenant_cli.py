"""``ipv6gate tenants ...``: operator commands on the tenants table (TENANTS_TABLE)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from ipv6gate.decision.tenants import Mode, Tenant, parse_prefix
from ipv6gate.mail.domains import DomainError, normalize_domain
from ipv6gate.ports import TenantLookupError
from ipv6gate.settings import Settings


def run_tenants(args: argparse.Namespace, settings: Settings, *, local_user: str) -> int:
    try:
        domain = normalize_domain(args.domain) if getattr(args, "domain", None) else None
        prefix = str(parse_prefix(args.prefix)) if getattr(args, "prefix", None) else None
    except (DomainError, ValueError) as exc:
        print(f"ipv6gate: {exc}", file=sys.stderr)
        return 1
    table = settings.tenants_table
    if not table:
        print("ipv6gate: configuration: TENANTS_TABLE: not set (the DynamoDB table of tenant domains)", file=sys.stderr)
        return 2

    from ipv6gate.aws.dynamodb import TenantAdmin
    from ipv6gate.wiring import aws_client

    admin = TenantAdmin(aws_client("dynamodb"), table)
    try:
        return _dispatch(args, admin, domain, prefix, local_user)
    except TenantLookupError as exc:
        print(f"ipv6gate: {exc}", file=sys.stderr)
        return 3


def _dispatch(args: argparse.Namespace, admin: Any, domain: str | None, prefix: str | None, local_user: str) -> int:
    action: str = args.action
    if action in ("status", "list"):
        items = [admin.get(domain)] if domain else admin.scan()
        if domain and items[0] is None:
            items = [{"domain": domain, "ipv6_inbound": False, "tenant": False}]
        for item in items:
            _show(item, args.json, names_only=action == "list")
        return 0
    assert domain is not None
    stamp = {"by": args.by or _caller(local_user), "now": datetime.now(UTC).isoformat(timespec="seconds")}
    tenant: Tenant
    if action == "enable":
        tenant = admin.enable(domain, mode=Mode.MONITOR if args.monitor else Mode.ENFORCE, **stamp)
    elif action == "disable":
        tenant = admin.disable(domain, **stamp)
    elif action == "add-partner":
        tenant = admin.add_partner(domain, prefix, **stamp)
    else:
        tenant = admin.remove_partner(domain, prefix, **stamp)
    _show(admin.get(tenant.domain) or {"domain": tenant.domain}, args.json, names_only=False)
    return 0


def _show(item: dict[str, Any], as_json: bool, *, names_only: bool) -> None:
    if as_json:
        print(json.dumps(item if not names_only else {"domain": item["domain"]}, default=str))
        return
    if names_only:
        print(item["domain"])
        return
    state = "on" if item.get("ipv6_inbound") is True else "off"
    parts = [f"{item['domain']}", f"ipv6={state}", f"mode={item.get('mode', Mode.ENFORCE.value)}"]
    if item.get("tenant") is False:
        parts.append("(no tenant record: IPv6 mail is refused with 550 5.2.1)")
    if item.get("partner_prefixes"):
        parts.append("partners=" + ",".join(item["partner_prefixes"]))
    if item.get("updated_at"):
        parts.append(f"updated={item['updated_at']} by={item.get('updated_by', '?')}")
    print("  ".join(parts))


def _caller(local_user: str) -> str:
    """The AWS identity making the change; the local user when STS cannot say."""
    try:
        from ipv6gate.wiring import aws_client

        arn: str = aws_client("sts").get_caller_identity()["Arn"]
        return arn
    except Exception:
        return local_user
