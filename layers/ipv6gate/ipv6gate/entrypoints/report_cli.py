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

from ipv6gate.decision.tenants import tenant_domain
from ipv6gate.entrypoints.exits import AWS_ENV, Commands, Exit, command, fail, whole
from ipv6gate.mail.domains import DomainError
from ipv6gate.ports import TenantLookupError, TraceError
from ipv6gate.settings import Settings

if TYPE_CHECKING:
    from ipv6gate.aws.dynamodb import TenantAdmin
    from ipv6gate.evaluation.domain_report import Report

FORMATS = ("text", "json", "csv")


def add_report_parser(commands: Commands) -> None:
    report = command(
        commands,
        "report",
        "per recipient domain over the last days: decisions, replies, would-rejects and who gets them "
        "(TRACE_TABLE, and TENANTS_TABLE's tenants)",
        ("TRACE_TABLE", "TENANTS_TABLE", *AWS_ENV),
        (Exit.OK, Exit.INPUT, Exit.USAGE, Exit.AWS),
    )
    report.add_argument(
        "--domain", help="one recipient domain (default: every tenant in TENANTS_TABLE and every domain decided for)"
    )
    report.add_argument("--days", type=whole(1, 3650), default=7, help="how many days back from now (default 7)")
    report.add_argument("--format", choices=FORMATS, default="text", help="text (a table, default), json or csv")
    report.add_argument(
        "--limit", type=whole(1, 1_000_000), default=10000, help="most index items to read (default 10000)"
    )


def run_report(
    args: argparse.Namespace,
    settings: Settings,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    *,
    region: str | None = None,
) -> int:
    try:
        domain = tenant_domain(args.domain) if args.domain is not None else None  # not an IP address either
    except DomainError as exc:
        return fail("report", f"--domain: {exc}", Exit.INPUT)
    missing = _missing_configuration(settings, one_domain=domain is not None)
    if missing:
        return fail("report", f"configuration: {missing}", Exit.USAGE)
    from botocore.exceptions import BotoCoreError

    from ipv6gate.evaluation.domain_report import build_report
    from ipv6gate.wiring import Clients, build_tenant_admin, build_trace_reader

    until = now()
    try:
        clients = Clients(region)
        admin = build_tenant_admin(settings, region, clients) if settings.tenants_table else None
        domains = _domains(admin, domain)
        trace = build_trace_reader(settings, region, clients)
        since = until - timedelta(days=args.days)
        report = build_report(trace, domains, since, until, args.limit, every_decided=domain is None)
    except (TraceError, TenantLookupError) as exc:
        return fail("report", str(exc), Exit.AWS)
    except BotoCoreError as exc:  # e.g. no region configured: raised when the client is made
        return fail("report", f"configuration: AWS: {exc}", Exit.USAGE)
    from ipv6gate.entrypoints.report_render import csv_text, text

    render: dict[str, Callable[[Report], str]] = {"text": text, "csv": csv_text, "json": _json}
    sys.stdout.write(render[args.format](report))
    return Exit.OK


def _json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


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
