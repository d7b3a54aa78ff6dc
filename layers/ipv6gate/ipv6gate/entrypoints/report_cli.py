"""``ipv6gate report``: per recipient domain, what the gate decided over the last days (TRACE_TABLE) and
what enforcing would stop. Every tenant of TENANTS_TABLE and every other domain the gate decided for
(flagged as not a tenant), or one ``--domain``; Queries only, no Scan of the trace; at most ``--limit``
index items read, and the output says when that cut the window short.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ipv6gate.mail.domains import DomainError, normalize_domain
from ipv6gate.ports import TenantLookupError, TraceError
from ipv6gate.settings import Settings, integer

if TYPE_CHECKING:
    from ipv6gate.aws.dynamodb import TenantAdmin
    from ipv6gate.evaluation.domain_report import Report

FORMATS = ("text", "json", "csv")


def add_report_parser(commands: argparse._SubParsersAction[Any]) -> None:
    report = commands.add_parser("report", help="per domain: decisions, replies, would-rejects and who gets them")
    report.add_argument(
        "--domain", help="one recipient domain (default: every tenant in TENANTS_TABLE and every domain decided for)"
    )
    report.add_argument("--days", default="7", help="how many days back from now (default 7)")
    report.add_argument("--format", default="text", help="text (a table, default), json or csv")
    report.add_argument("--limit", default="10000", help="most index items to read (default 10000)")


def run_report(
    args: argparse.Namespace,
    settings: Settings,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    *,
    region: str | None = None,
) -> int:
    try:
        days = _whole(args.days, "--days", 1, 3650)
        limit = _whole(args.limit, "--limit", 1, 1_000_000)
        if args.format not in FORMATS:
            raise ValueError(f"--format {args.format[:20]!r} is not one of {', '.join(FORMATS)}")
        domain = normalize_domain(args.domain) if args.domain is not None else None
    except (ValueError, DomainError) as exc:
        print(f"ipv6gate: {exc}", file=sys.stderr)
        return 1
    missing = _missing_configuration(settings, one_domain=domain is not None)
    if missing:
        print(f"ipv6gate: configuration: {missing}", file=sys.stderr)
        return 2
    from botocore.exceptions import BotoCoreError

    from ipv6gate.evaluation.domain_report import build_report
    from ipv6gate.wiring import Clients, build_tenant_admin, build_trace_reader

    until = now()
    try:
        clients = Clients(region)
        admin = build_tenant_admin(settings, region, clients) if settings.tenants_table else None
        domains = _domains(admin, domain)
        trace = build_trace_reader(settings, region, clients)
        since = until - timedelta(days=days)
        report = build_report(trace, domains, since, until, limit, every_decided=domain is None)
    except (TraceError, TenantLookupError) as exc:
        print(f"ipv6gate: {exc}", file=sys.stderr)
        return 3
    except BotoCoreError as exc:  # e.g. no region configured: raised when the client is made
        print(f"ipv6gate: AWS: {exc}", file=sys.stderr)
        return 2
    from ipv6gate.entrypoints.report_render import csv_text, text

    render: dict[str, Callable[[Report], str]] = {"text": text, "csv": csv_text, "json": _json}
    sys.stdout.write(render[args.format](report))
    return 0


def _json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


def _whole(value: str, name: str, low: int, high: int) -> int:
    try:
        return integer(low, high)(value.strip())
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _missing_configuration(settings: Settings, *, one_domain: bool) -> str | None:
    if not settings.trace_table:
        return "TRACE_TABLE: not set (the DynamoDB table of decisions)"
    if not one_domain and not settings.tenants_table:
        return "TENANTS_TABLE: not set (the report lists its tenants and flags other domains; or give --domain)"
    return None


def _domains(admin: TenantAdmin | None, domain: str | None) -> dict[str, str | None]:
    """The tenants (or ``domain``), each with its mode: NOT_A_TENANT without an item, None when TENANTS_TABLE
    is not set. Domains that are not tenants are added by the report from the trace."""
    if admin is None:
        return {domain or "": None}
    from ipv6gate.evaluation.domain_report import NOT_A_TENANT

    if domain:
        item = admin.get(domain)
        return {domain: _mode(item) if item else NOT_A_TENANT}
    return {str(item["domain"]): _mode(item) for item in admin.scan()}


def _mode(item: dict[str, Any]) -> str:
    """A tenant's state; an item that exists is a tenant even when disabled ("off")."""
    if item.get("ipv6_inbound") is not True:
        return "off"
    return str(item.get("mode") or "enforce")
