"""``ipv6gate tenants ...``: operator commands on the tenants table (TENANTS_TABLE)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from ipv6gate.decision.tenants import Mode, parse_prefix, tenant_domain, tenant_from_plain
from ipv6gate.entrypoints.exits import Exit, fail
from ipv6gate.mail.domains import DomainError
from ipv6gate.ports import TenantLookupError
from ipv6gate.settings import Settings


def run_tenants(args: argparse.Namespace, settings: Settings, *, region: str, local_user: str) -> int:
    try:
        # The same canonical form (and refusals) as a stored tenant item and a recipient domain.
        domain = tenant_domain(args.domain) if getattr(args, "domain", None) is not None else None
        prefix = str(parse_prefix(args.prefix)) if getattr(args, "prefix", None) is not None else None
    except (DomainError, ValueError) as exc:
        return fail(str(exc), Exit.INPUT)
    table = settings.tenants_table
    if getattr(args, "stack", None):
        from ipv6gate.aws.stack import StackOutputError
        from ipv6gate.wiring import stack_output_of

        try:
            table = stack_output_of(args.stack, "TenantsTableName", region)
        except StackOutputError as exc:
            return fail(str(exc), Exit.USAGE if exc.missing else Exit.AWS)
    if not table:
        return fail(
            "configuration: TENANTS_TABLE: not set (the DynamoDB table of tenant domains; or name the stack: --stack)",
            Exit.USAGE,
        )

    from ipv6gate.wiring import build_tenant_admin

    admin = build_tenant_admin(settings, region, table=table)
    try:
        return _dispatch(args, admin, domain, prefix, lambda: args.by or _caller(local_user, region))
    except TenantLookupError as exc:
        return fail(str(exc), Exit.AWS)


def _dispatch(args: argparse.Namespace, admin: Any, domain: str | None, prefix: str | None, by: Any) -> int:
    action: str = args.action
    if action in ("status", "list"):
        items = [admin.get(domain)] if domain else admin.scan()
        if domain and items[0] is None:
            items = [{"domain": domain, "ipv6_inbound": False, "tenant": False}]
        for item in items:
            _show(item, args.json, names_only=action == "list")
        return Exit.OK
    assert domain is not None  # every other action requires DOMAIN (argparse)
    if action == "remove":
        removed = admin.remove(domain)
        if removed is None:
            return fail(f"{domain}: no tenant record to remove", Exit.NOT_FOUND)
        _show(removed | {"removed": True}, args.json, names_only=False)
        return Exit.OK
    stamp = {"by": by(), "now": datetime.now(UTC).isoformat(timespec="seconds")}
    if action == "enable":
        item = admin.enable(domain, mode=Mode.MONITOR if args.monitor else Mode.ENFORCE, **stamp)
    elif action == "disable":
        item = admin.disable(domain, **stamp)
    elif action == "add-partner":
        item = admin.add_partner(domain, prefix, **stamp)
    else:
        item = admin.remove_partner(domain, prefix, **stamp)
    _show(item, args.json, names_only=False)
    return Exit.OK


def _show(item: dict[str, Any], as_json: bool, *, names_only: bool) -> None:
    problem = _problem(item)
    if as_json:
        shown = item if not names_only else {"domain": item["domain"]}
        print(json.dumps(shown | ({"invalid": problem} if problem else {}), default=str))
        return
    parts = [str(item["domain"])]
    if not names_only:
        state = "on" if item.get("ipv6_inbound") is True else "off"
        parts += [f"ipv6={state}", f"mode={item.get('mode', Mode.ENFORCE.value)}"]
        if item.get("removed"):
            parts.insert(0, "removed")
        if item.get("tenant") is False:
            parts.append("(no tenant record: IPv6 mail is refused with 550 5.2.1)")
        if item.get("partner_prefixes"):
            parts.append("partners=" + ",".join(map(str, item["partner_prefixes"])))
        if item.get("updated_at"):
            parts.append(f"updated={item['updated_at']} by={item.get('updated_by', '?')}")
    if problem:
        parts.append(f"INVALID ({problem}): the gate fails open for this domain")
    print("  ".join(parts))


def _problem(item: dict[str, Any]) -> str | None:
    """Why the gate cannot use this stored item (an item written by hand, or by an older version)."""
    if item.get("tenant") is False:
        return None  # "no record", shown by status
    try:
        tenant_from_plain({k: v for k, v in item.items() if k != "removed"})
    except ValueError as exc:
        return str(exc)
    return None


def _caller(local_user: str, region: str) -> str:
    """The AWS identity making the change; the local user when STS cannot say."""
    try:
        from ipv6gate.wiring import caller_identity

        return caller_identity(region)
    except Exception:
        return local_user
