"""``ipv6gate milter --listen HOST:PORT``: the composition root of the SMTP-time front door.

Settings come from the environment exactly as the Lambda reads them (TENANTS_TABLE,
AWS_ENDPOINT_URL, DNS_SERVERS, TEMPERROR_ACTION, ...) plus the MILTER_* ones, so an operator's
Postfix needs nothing but ``smtpd_milters``. Decisions go to the same trace table (TRACE_TABLE)
with ``"front_door": "milter"``, one JSON log line each, and the Lambda's metrics as CloudWatch
embedded-metric (EMF) lines on stdout, for the CloudWatch agent to pick up.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import socket
import threading
from pathlib import Path
from typing import Any

from ipv6gate.entrypoints.exits import NO_REGION, Exit, fail
from ipv6gate.settings import MilterSettings, SettingsError


def add_milter_command(commands: argparse._SubParsersAction[Any]) -> None:
    milter = commands.add_parser("milter", help="apply the rule at SMTP time as a Postfix/Sendmail milter")
    milter.add_argument(
        "--listen",
        required=True,
        metavar="HOST:PORT|unix:PATH",
        help="where the MTA connects: 127.0.0.1:8894, [::1]:8894 or unix:/run/ipv6gate/milter.sock",
    )
    milter.add_argument(
        "--tenants", type=Path, metavar="TENANTS.json", help="read tenants from this file instead of TENANTS_TABLE"
    )


def socket_spec(listen: str) -> str:
    """libmilter's socket name for ``HOST:PORT``, ``[V6]:PORT`` or ``unix:PATH``; ``ValueError`` says why not."""
    if listen.startswith("unix:"):
        if len(listen) == len("unix:"):
            raise ValueError("unix: needs a socket path")
        return listen
    m = re.fullmatch(
        r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<v4>[0-9.]+)|(?P<name>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})", listen
    )
    if not m or not 0 < int(m["port"]) < 65536:
        raise ValueError(f"--listen {listen!r} is not HOST:PORT, [IPV6]:PORT or unix:PATH")
    if m["v6"]:
        ipaddress.IPv6Address(m["v6"])  # ValueError names it
        return f"inet6:{m['port']}@[{m['v6']}]"
    return f"inet:{m['port']}@{m['v4'] or m['name']}"


def run_milter(args: argparse.Namespace) -> int:
    from aws_lambda_powertools import Logger, Metrics

    from ipv6gate.entrypoints.lambda_gate import count_decision, log_json
    from ipv6gate.entrypoints.milter import ListenError, serve
    from ipv6gate.evaluation.record import Decision
    from ipv6gate.wiring import aws_region, build_smtp_gate

    try:
        spec = socket_spec(args.listen)
        settings = MilterSettings.from_env(os.environ, hostname=socket.getfqdn())
        tenants = None
        if args.tenants:
            from ipv6gate.ports.memory import InMemoryTenants

            try:
                tenants = InMemoryTenants.from_json_file(args.tenants)
            except (OSError, ValueError) as exc:
                raise SettingsError(f"--tenants {args.tenants}: {exc}") from None
        region = aws_region(os.environ)
        if region is None and (tenants is None or settings.checks.trace_table):
            raise SettingsError(f"{NO_REGION}; the tenants and trace tables are DynamoDB")
        gate = build_smtp_gate(settings, tenants=tenants, region=region)
    except (SettingsError, ValueError) as exc:
        return fail(f"configuration: {exc}", Exit.USAGE)

    service = os.environ.get("POWERTOOLS_SERVICE_NAME") or "ipv6gate-milter"
    logger = Logger(service=service, json_serializer=log_json)
    # The template's namespace by default, so the stack's dashboard and alarms can show the milter too.
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "IPv6Gate"
    metrics = Metrics(namespace=namespace, service=service)
    emf = threading.Lock()  # Metrics keeps one set of values: one decision's at a time

    def report(decision: Decision) -> None:
        level = logger.warning if decision.notes else logger.info
        level("decision", extra={"message_id": decision.message_id, "decision": decision.to_dict()})
        with emf:
            count_decision(decision, metrics)
            metrics.flush_metrics()

    def on_error(stage: str, exc: BaseException) -> None:
        logger.error("milter callback failed; message accepted", extra={"stage": stage}, exc_info=exc)

    # A long-running process: load the checks now, not on the first message (~0.8 s of imports).
    import ipv6gate.checks.dkim
    import ipv6gate.checks.spf  # noqa: F401

    logger.info("milter listening", extra={"socket": spec, "authserv_id": settings.authserv_id})
    try:
        serve(gate, spec, settings.authserv_id, report, on_error)
    except ListenError as exc:
        return fail(f"configuration: {exc}", Exit.USAGE)
    return Exit.OK
