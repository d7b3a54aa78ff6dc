"""``ipv6gate``: evaluate SES events the way the Lambda function would, from a shell.

Every error is one line on stderr (``ipv6gate: <what was wrong>``) and an exit status of ``Exit``;
never a traceback.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from ipv6gate.entrypoints.exits import EPILOG, NO_REGION, Exit, Parser, fail
from ipv6gate.settings import Settings, SettingsError

type _Commands = argparse._SubParsersAction[Parser]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already reported in one line
        return int(exc.code or 0)
    try:
        if args.command == "evaluate":
            from ipv6gate.entrypoints.evaluate_cli import run_evaluate

            return run_evaluate(args, os.environ)
        if args.command == "milter":
            from ipv6gate.entrypoints.milter_cli import run_milter

            return run_milter(args)
        settings = Settings.from_env(os.environ)  # the entry point reads the environment, once
        from ipv6gate.wiring import aws_region

        region = aws_region(os.environ)
        if region is None:
            return fail(f"configuration: {NO_REGION}", Exit.USAGE)
        if args.command == "tenants":
            from ipv6gate.entrypoints.tenant_cli import run_tenants

            return run_tenants(args, settings, region=region, local_user=os.environ.get("USER") or "unknown")
        if args.command == "report":
            from ipv6gate.entrypoints.report_cli import run_report

            return run_report(args, settings, region=region)
        from ipv6gate.entrypoints.trace_cli import run_trace

        return run_trace(args, settings, region=region)
    except SettingsError as exc:
        return fail(f"configuration: {exc}", Exit.USAGE)
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="ipv6gate",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _evaluate_command(commands)
    _tenant_commands(commands)
    _trace_command(commands)
    from ipv6gate.entrypoints.milter_cli import add_milter_command
    from ipv6gate.entrypoints.report_cli import add_report_parser

    add_report_parser(commands)
    add_milter_command(commands)
    return parser


def _sub(commands: _Commands, name: str, text: str) -> argparse.ArgumentParser:
    # Subparsers are made with the parent's class (Parser): their usage errors are one line too.
    return commands.add_parser(
        name, help=text, description=text, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def _evaluate_command(commands: _Commands) -> None:
    ev = _sub(commands, "evaluate", "decide SES receipt events; one JSON line per event")
    ev.add_argument("events", nargs="+", type=Path, metavar="EVENT.json", help="SES receipt event files only")
    ev.add_argument(
        "--message",
        type=Path,
        nargs="+",
        action="extend",
        default=[],
        metavar="RAW.eml",
        help="raw messages for DKIM, each matched to its event by SES message id: the id in its topmost "
        "Received header (SES's), or its file name (<messageId>[.eml], as SES's S3 action stores it). "
        "Events without one: fetched from MESSAGE_BUCKET like the function",
    )
    ev.add_argument(
        "--tenants",
        type=Path,
        metavar="TENANTS.json",
        help="tenants from a JSON list instead of the TENANTS_TABLE DynamoDB table",
    )
    ev.add_argument(
        "--received-in",
        metavar="REGION",
        help="the SES region that received the events: trust only inbound-smtp.REGION.amazonaws.com's "
        "Received header (default: any SES region's; TRUSTED_RECEIVERS, when set, is used instead)",
    )
    ev.add_argument(
        "--all-checks",
        action="store_true",
        help="run every check to the end (the function stops once its verdict is certain)",
    )
    ev.add_argument(
        "--record",
        action="store_true",
        help="write each decision to TRACE_TABLE as the function does (IPv4 mail is never recorded); "
        "no bounce is ever queued",
    )


def _tenant_commands(commands: _Commands) -> None:
    tenants = _sub(commands, "tenants", "switch IPv6 on or off per recipient domain (TENANTS_TABLE)")
    sub = tenants.add_subparsers(dest="action", required=True)
    enable = sub.add_parser("enable", help="accept IPv6 mail for DOMAIN (like Enable-IPv6ForAcceptedDomain)")
    enable.add_argument("domain")
    enable.add_argument("--monitor", action="store_true", help="evaluate and log, but never reject")
    sub.add_parser("disable", help="refuse IPv6 mail for DOMAIN with 550 5.2.1").add_argument("domain")
    sub.add_parser("remove", help="delete DOMAIN's tenant record (exit 4 if there is none)").add_argument("domain")
    status = sub.add_parser("status", help="show one domain, or every tenant")
    status.add_argument("domain", nargs="?")
    sub.add_parser("list", help="list tenant domains")
    for verb, text in (("add-partner", "mail from PREFIX is not anonymous"), ("remove-partner", "undo add-partner")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("domain")
        p.add_argument("prefix", help="an IPv6 prefix, e.g. 2001:db8:10::/48")
    for p in sub.choices.values():
        p.add_argument("--by", help="who makes the change (default: the AWS caller identity)")
        p.add_argument("--json", action="store_true", help="print JSON lines")
        p.add_argument(
            "--stack",
            metavar="NAME",
            help="the deployed stack: its TenantsTableName output is the table (instead of TENANTS_TABLE)",
        )


def _trace_command(commands: _Commands) -> None:
    trace = _sub(commands, "trace", "why was this mail rejected? (TRACE_TABLE; IPv6 decisions only)")
    trace.add_argument("message_id", nargs="?", help="show the recorded decision for this SES message id")
    which = trace.add_mutually_exclusive_group()
    which.add_argument("--ip", help="recent decisions for a client address (IPv6: IPv4 mail is never recorded)")
    which.add_argument("--sender", help="recent decisions for an envelope sender (MAIL FROM; <> for null)")
    which.add_argument("--domain", help="recent decisions for a recipient domain")
    trace.add_argument("--limit", type=int, default=20, help="how many recent decisions (1..1000, default 20)")


if __name__ == "__main__":
    raise SystemExit(main())
