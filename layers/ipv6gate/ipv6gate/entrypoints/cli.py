"""ipv6gate: decide SES events as the Lambda function would, administer tenants, read the trace, from a shell.

One grammar for every command: errors are one line on stderr (``ipv6gate <command>: <what was wrong>``)
with an ``Exit`` status, never a traceback; warnings are one line too and leave the status 0; output
formats are chosen with ``--format``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from ipv6gate.entrypoints.exits import AWS_ENV, FUNCTION_ENV, NO_REGION, Exit, Parser, command, epilog, fail, whole
from ipv6gate.entrypoints.exits import Commands as _Commands
from ipv6gate.settings import Settings, SettingsError

DESCRIPTION = "ipv6gate: decide SES events as the Lambda function would, administer tenants, read the trace."


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args, unknown = _parser().parse_known_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already reported in one line
        return int(exc.code or 0)
    name = " ".join(filter(None, (args.command, getattr(args, "action", None))))
    if unknown:  # argparse would name no command here; the grammar does
        return fail(name, f"unrecognized arguments: {' '.join(unknown)} (see: ipv6gate {name} --help)", Exit.USAGE)
    if args.command == "tenants" and args.action is None:
        from ipv6gate.entrypoints.tenant_cli import ACTIONS

        return fail("tenants", f"give an action: {', '.join(ACTIONS)} (see: ipv6gate tenants --help)", Exit.USAGE)
    try:
        if args.command == "evaluate":
            from ipv6gate.entrypoints.evaluate_cli import run_evaluate

            return run_evaluate(args, os.environ)
        if args.command == "milter":
            from ipv6gate.entrypoints.milter_cli import run_milter

            return run_milter(args)
        return _table_command(args)
    except SettingsError as exc:  # an unusable AWS setting, found when the first client is made
        return fail(args.command, f"configuration: {exc}", Exit.USAGE)
    except KeyboardInterrupt:
        return 130


def _table_command(args: argparse.Namespace) -> int:
    """tenants, trace, report: commands on the stack's tables, so they need a region."""
    command: str = args.command
    try:
        settings = Settings.from_env(os.environ)  # the entry point reads the environment, once
        from ipv6gate.wiring import aws_region

        region = aws_region(os.environ)
        if region is None:
            return fail(command, f"configuration: {NO_REGION}", Exit.USAGE)
        if command == "tenants":
            from ipv6gate.entrypoints.tenant_cli import run_tenants

            return run_tenants(args, settings, region=region, local_user=os.environ.get("USER") or "unknown")
        if command == "report":
            from ipv6gate.entrypoints.report_cli import run_report

            return run_report(args, settings, region=region)
        from ipv6gate.entrypoints.trace_cli import run_trace

        return run_trace(args, settings, region=region)
    except SettingsError as exc:  # also an unusable AWS setting, found when a client is made
        return fail(command, f"configuration: {exc}", Exit.USAGE)


def version() -> str:
    try:
        return metadata.version("ipv6gate")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="ipv6gate",
        description=DESCRIPTION,
        epilog=epilog(FUNCTION_ENV),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ipv6gate {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _evaluate_command(commands)
    from ipv6gate.entrypoints.tenant_cli import add_tenant_commands

    add_tenant_commands(commands)
    _trace_command(commands)
    from ipv6gate.entrypoints.milter_cli import add_milter_command
    from ipv6gate.entrypoints.report_cli import add_report_parser

    add_report_parser(commands)
    add_milter_command(commands)
    return parser


def _evaluate_command(commands: _Commands) -> None:
    ev = command(
        commands,
        "evaluate",
        "decide SES receipt events as the function would; one JSON line per event on stdout",
        FUNCTION_ENV,
        (Exit.OK, Exit.INPUT, Exit.USAGE, Exit.AWS),
    )
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


def _trace_command(commands: _Commands) -> None:
    trace = command(
        commands,
        "trace",
        "why was this mail rejected? the recorded decisions (TRACE_TABLE; IPv6 only), JSON lines, newest first",
        ("TRACE_TABLE", *AWS_ENV),
    )
    trace.add_argument("message_id", nargs="?", help="show the recorded decision for this SES message id")
    which = trace.add_mutually_exclusive_group()
    which.add_argument("--ip", help="recent decisions for a client address (IPv6: IPv4 mail is never recorded)")
    which.add_argument("--sender", help="recent decisions for an envelope sender (MAIL FROM address; <> for null)")
    which.add_argument("--domain", help="recent decisions for a recipient domain")
    trace.add_argument(
        "--limit", type=whole(1, 1000), default=20, help="how many recent decisions (1..1000, default 20)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
