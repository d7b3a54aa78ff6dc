"""``ipv6gate tenants ...``: operator commands on the tenants table (TENANTS_TABLE)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from ipv6gate.decision.tenants import Mode, check_partner_width, parse_prefix, tenant_domain, tenant_from_plain
from ipv6gate.entrypoints.exits import AWS_ENV, Commands, Exit, command, fail, warn
from ipv6gate.mail.domains import DomainError
from ipv6gate.ports import TenantLookupError
from ipv6gate.settings import Settings

ACTIONS = ("enable", "disable", "remove", "status", "list", "add-partner", "remove-partner")
FORMATS = ("text", "json")
_ENV = ("TENANTS_TABLE (or --stack NAME: CloudFormation DescribeStacks)", *AWS_ENV)
_CHANGES = ("enable", "disable", "add-partner", "remove-partner")  # the actions that stamp updated_by


def add_tenant_commands(commands: Commands) -> None:
    tenants = command(commands, "tenants", "switch IPv6 on or off per recipient domain (TENANTS_TABLE)", _ENV)
    sub = tenants.add_subparsers(dest="action", metavar="ACTION")  # none given: main says which there are
    texts = {
        "enable": "accept IPv6 mail for DOMAIN (like Enable-IPv6ForAcceptedDomain)",
        "disable": "refuse IPv6 mail for DOMAIN with 550 5.2.1",
        "remove": "delete DOMAIN's tenant record, as tenants list shows it (exit 4 if there is none)",
        "status": "show one domain, or every tenant",
        "list": "list tenant domains",
        "add-partner": "mail from PREFIX to DOMAIN is not anonymous",
        "remove-partner": "undo add-partner (a warning when DOMAIN has no such partner)",
    }
    never_not_found = (Exit.OK, Exit.INPUT, Exit.USAGE, Exit.AWS)  # only remove can find nothing (4)
    for action in ACTIONS:
        statuses = tuple(Exit) if action == "remove" else never_not_found
        p = command(sub, action, texts[action], _ENV, statuses)
        if action == "status":
            p.add_argument("domain", nargs="?")
        elif action != "list":
            p.add_argument("domain")
        if action == "remove":
            p.add_argument(
                "--exact",
                action="store_true",
                help="DOMAIN is a stored key exactly as tenants list shows it, even one that is not a domain "
                "(an item written by hand)",
            )
        if action == "enable":
            p.add_argument("--monitor", action="store_true", help="evaluate and log, but never reject")
        if action.endswith("-partner"):
            p.add_argument("prefix", help="an IPv6 prefix, e.g. 2001:db8:10::/48")
        if action in _CHANGES:
            p.add_argument("--by", help="who makes the change (default: the AWS caller identity)")
        p.add_argument("--format", choices=FORMATS, default="text", help="text (default) or json (JSON lines)")
        p.add_argument(
            "--stack",
            metavar="NAME",
            help="the deployed stack: its TenantsTableName output is the table (instead of TENANTS_TABLE)",
        )


def run_tenants(args: argparse.Namespace, settings: Settings, *, region: str, local_user: str) -> int:
    name = f"tenants {args.action}"
    given: str | None = getattr(args, "domain", None)
    try:
        # The same canonical form (and refusals) as a stored tenant item and a recipient domain.
        exact = getattr(args, "exact", False)
        domain = _domain(given, args.action) if given is not None and not exact else None
        if exact and not (given or "").strip():
            raise DomainError("empty key")
        prefix = str(parse_prefix(args.prefix)) if getattr(args, "prefix", None) is not None else None
        if prefix is not None and args.action == "add-partner":
            check_partner_width(parse_prefix(prefix))
    except (DomainError, ValueError) as exc:
        return fail(name, str(exc), Exit.INPUT)
    table = _table(args, settings, region, name)
    if isinstance(table, Exit):
        return table

    from ipv6gate.wiring import build_tenant_admin

    admin = build_tenant_admin(settings, region, table=table)
    as_json = args.format == "json"
    try:
        if args.action == "remove":
            assert given is not None  # argparse: remove requires DOMAIN
            return _remove(admin, domain, given, as_json)
        by = lambda: getattr(args, "by", None) or _caller(local_user, region)  # noqa: E731
        return _dispatch(args, admin, domain, prefix, by)
    except TenantLookupError as exc:
        return fail(name, str(exc), Exit.AWS)


def _table(args: argparse.Namespace, settings: Settings, region: str, name: str) -> str | Exit:
    """TENANTS_TABLE, or the ``TenantsTableName`` output of ``--stack NAME``; an ``Exit`` once reported."""
    stack: str | None = getattr(args, "stack", None)
    if stack is None:
        if not settings.tenants_table:
            why = "TENANTS_TABLE: not set (the DynamoDB table of tenant domains; or name the stack: --stack)"
            return fail(name, f"configuration: {why}", Exit.USAGE)
        return settings.tenants_table
    if not stack.strip():
        return fail(name, "--stack: empty stack name", Exit.INPUT)
    from ipv6gate.aws.stack import StackOutputError
    from ipv6gate.wiring import stack_output_of

    try:
        return stack_output_of(stack, "TenantsTableName", region)
    except StackOutputError as exc:  # no such stack or output: the setup is wrong; a failed read: AWS
        return fail(name, f"configuration: {exc}" if exc.missing else str(exc), Exit.USAGE if exc.missing else Exit.AWS)


def _domain(text: str, action: str) -> str:
    """The canonical domain; ``tenants remove --exact`` takes a stored key that is not one."""
    try:
        return tenant_domain(text)
    except DomainError as exc:
        if action != "remove" or not text.strip():
            raise
        raise DomainError(f"{exc} (a stored key that is not a domain: tenants remove --exact KEY)") from None


def _dispatch(args: argparse.Namespace, admin: Any, domain: str | None, prefix: str | None, by: Any) -> int:
    action: str = args.action
    as_json = args.format == "json"
    if action in ("status", "list"):
        items = [admin.get(domain)] if domain else admin.scan()
        if domain and items[0] is None:
            items = [{"domain": domain, "ipv6_inbound": False, "tenant": False}]
        for item in items:
            _show(item, as_json, names_only=action == "list")
        if not domain and not items:
            warn(f"tenants {action}", "TENANTS_TABLE has no tenants: every IPv6 recipient gets 550 5.2.1")
        return Exit.OK
    assert domain is not None  # every other action requires DOMAIN (argparse)
    stamp = {"by": by(), "now": datetime.now(UTC).isoformat(timespec="seconds")}
    if action == "enable":
        item = admin.enable(domain, mode=Mode.MONITOR if args.monitor else Mode.ENFORCE, **stamp)
    elif action == "disable":
        item = admin.disable(domain, **stamp)
    elif action == "add-partner":
        item = admin.add_partner(domain, prefix, **stamp)
    else:
        before = admin.get(domain)
        if before is None or prefix not in {_prefix(p) for p in before.get("partner_prefixes") or ()}:
            # Not a failure (the prefix is not a partner, as asked), but nothing was changed: say so.
            warn("tenants remove-partner", f"{domain} has no partner {prefix}: nothing to remove")
            _show(before or {"domain": domain, "ipv6_inbound": False, "tenant": False}, as_json, names_only=False)
            return Exit.OK
        item = admin.remove_partner(domain, prefix, **stamp)
    _show(item, as_json, names_only=False)
    return Exit.OK


def _remove(admin: Any, domain: str | None, given: str, as_json: bool) -> int:
    """Remove by the canonical domain, else by the key exactly as given: ``tenants list`` shows items
    stored under a key that is not canonical (written by hand, or by an older version), and those
    must be removable too."""
    removed = admin.remove(domain) if domain else None
    if removed is None and given != domain:
        removed = admin.remove(given)
    if removed is None:
        return fail("tenants remove", f"{given[:80]!r}: no tenant record to remove", Exit.NOT_FOUND)
    _show(removed | {"removed": True}, as_json, names_only=False)
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


def _prefix(stored: object) -> str:
    try:
        return str(parse_prefix(str(stored)))
    except ValueError:
        return str(stored)


def _caller(local_user: str, region: str) -> str:
    """The AWS identity making the change; the local user when STS cannot say."""
    try:
        from ipv6gate.wiring import caller_identity

        return caller_identity(region)
    except Exception:
        return local_user
