"""``ipv6gate``: evaluate SES events the way the Lambda function would, from a shell.

Errors in input are one line on stderr naming the file, and a non-zero exit; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ipv6gate.entrypoints.report_cli import add_report_parser, run_report
from ipv6gate.mail.event import EventError, parse_event
from ipv6gate.settings import Settings, SettingsError

EXIT_INPUT = 1
EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ipv6gate", description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    ev = commands.add_parser("evaluate", help="decide SES receipt events; one JSON line per event")
    ev.add_argument("events", nargs="+", type=Path, metavar="EVENT.json")
    ev.add_argument(
        "--message",
        type=Path,
        metavar="RAW.eml",
        help="the raw message for DKIM (default: fetched from MESSAGE_BUCKET like the function)",
    )
    ev.add_argument(
        "--tenants",
        type=Path,
        metavar="TENANTS.json",
        help="tenants from a JSON list instead of the TENANTS_TABLE DynamoDB table",
    )
    ev.add_argument(
        "--all-checks",
        action="store_true",
        help="run every check to the end (the function stops once its verdict is certain)",
    )
    _tenant_commands(commands)
    trace = commands.add_parser("trace", help="why was this mail rejected? (TRACE_TABLE)")
    trace.add_argument("message_id", nargs="?", help="show the recorded decision for this SES message id")
    which = trace.add_mutually_exclusive_group()
    which.add_argument("--ip", help="recent decisions for a client address")
    which.add_argument("--sender", help="recent decisions for an envelope sender (MAIL FROM; <> for null)")
    which.add_argument("--domain", help="recent decisions for a recipient domain")
    trace.add_argument("--limit", type=int, default=20, help="how many recent decisions (default 20)")
    from ipv6gate.entrypoints.milter_cli import add_milter_command, run_milter

    add_milter_command(commands)
    add_report_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "milter":
        return run_milter(args)
    if args.command in ("tenants", "trace", "report"):
        try:
            settings = Settings.from_env(os.environ)  # the entry point reads the environment, once
        except SettingsError as exc:
            print(f"ipv6gate: configuration: {exc}", file=sys.stderr)
            return 2
        if args.command == "tenants":
            from ipv6gate.entrypoints.tenant_cli import run_tenants

            return run_tenants(args, settings, local_user=os.environ.get("USER") or "unknown")
        if args.command == "report":
            return run_report(args, settings)
        from ipv6gate.entrypoints.trace_cli import run_trace

        return run_trace(args, settings)
    return _evaluate(args)


def _tenant_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tenants = commands.add_parser("tenants", help="switch IPv6 on or off per recipient domain (DynamoDB)")
    sub = tenants.add_subparsers(dest="action", required=True)
    enable = sub.add_parser("enable", help="accept IPv6 mail for DOMAIN (like Enable-IPv6ForAcceptedDomain)")
    enable.add_argument("domain")
    enable.add_argument("--monitor", action="store_true", help="evaluate and log, but never reject")
    sub.add_parser("disable", help="refuse IPv6 mail for DOMAIN with 550 5.2.1").add_argument("domain")
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


def _evaluate(args: argparse.Namespace) -> int:
    from ipv6gate.wiring import build_gate

    try:
        settings = Settings.from_env(os.environ)
        raw = _read_bytes(args.message) if args.message else None
        tenants = None
        if args.tenants:
            from ipv6gate.ports.memory import InMemoryTenants

            try:
                tenants = InMemoryTenants.from_json_file(args.tenants)
            except (OSError, ValueError) as exc:
                raise _InputError(f"{args.tenants}: {_reason(exc)}") from None
        gate = build_gate(settings, tenants=tenants, act=False)
        gate.complete_checks = args.all_checks
    except SettingsError as exc:
        print(f"ipv6gate: configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except _InputError as exc:
        print(f"ipv6gate: {exc}", file=sys.stderr)
        return EXIT_INPUT

    status = 0
    for path in args.events:
        try:
            mail = parse_event(json.loads(_read_bytes(path)))
        except _InputError as exc:
            print(f"ipv6gate: {exc}", file=sys.stderr)
            status = EXIT_INPUT
            continue
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            print(f"ipv6gate: {path}: invalid JSON: {_reason(exc)}", file=sys.stderr)
            status = EXIT_INPUT
            continue
        except EventError as exc:
            print(f"ipv6gate: {path}: {exc}", file=sys.stderr)
            status = EXIT_INPUT
            continue
        decision = gate.evaluate(mail, raw_message=raw)
        print(json.dumps({"event": str(path), **decision.to_dict()}, ensure_ascii=False), flush=True)
    return status


class _InputError(Exception):
    pass


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _InputError(f"{path}: cannot read: {exc.strerror or exc.__class__.__name__}") from None


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


if __name__ == "__main__":
    raise SystemExit(main())
