"""``ipv6gate milter --listen unix:PATH|HOST:PORT``: the composition root of the SMTP-time front door.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipv6gate.entrypoints.exits import FUNCTION_ENV, NO_REGION, Commands, Exit, command, fail, reason, warn
from ipv6gate.entrypoints.milter_socket import (
    DEFAULT_MODE,
    SocketError,
    UnixSocket,
    check_free,
    parse_group,
    parse_mode,
    unix_path,
)
from ipv6gate.settings import MilterSettings, SettingsError, env_names

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics

    from ipv6gate.evaluation.record import Decision
    from ipv6gate.evaluation.staged import SmtpGate


class _BadInput(Exception):
    """A value given on the command line is wrong (exit 1)."""


class _Usage(ValueError):
    """Options that do not go together (exit 2)."""


def add_milter_command(commands: Commands) -> None:
    milter = command(
        commands,
        "milter",
        "apply the rule at SMTP time as a Postfix/Sendmail milter (decisions to TRACE_TABLE, metrics as EMF on stdout)",
        (
            *FUNCTION_ENV,
            *(name for name in env_names(MilterSettings) if name.startswith("MILTER_")),
            "POWERTOOLS_SERVICE_NAME",
            "POWERTOOLS_METRICS_NAMESPACE",
        ),
        (Exit.OK, Exit.INPUT, Exit.USAGE),
    )
    milter.add_argument(
        "--listen",
        metavar="HOST:PORT|unix:PATH",
        help="where the MTA connects: unix:/var/spool/postfix/ipv6gate/milter.sock (reachable from a chrooted "
        "smtpd as smtpd_milters = unix:ipv6gate/milter.sock), 127.0.0.1:8894 or [::1]:8894",
    )
    milter.add_argument(
        "--socket-mode",
        metavar="OCTAL",
        help="permissions of a unix socket, set when it is created (default 0660: owner and group)",
    )
    milter.add_argument(
        "--socket-group",
        metavar="GROUP",
        help="group of a unix socket, e.g. postfix (default: the process's group); the process must be in it",
    )
    milter.add_argument(
        "--tenants", type=Path, metavar="TENANTS.json", help="read tenants from this file instead of TENANTS_TABLE"
    )
    milter.add_argument(
        "--check",
        action="store_true",
        help="run the start-time checks (settings, tables, DNS servers) and exit: 0 ready, 2 not (ExecStartPre)",
    )
    milter.add_argument(
        "--degraded-start",
        action="store_true",
        help="start even when a start-time check fails, with a warning logged (mail passes unjudged where it fails)",
    )


def host_name() -> str:
    """The default authserv-id: the host's FQDN, or its hostname when the FQDN lookup only says localhost."""
    fqdn = socket.getfqdn()
    if fqdn.split(".")[0] in ("localhost", "") or fqdn.startswith("localhost."):
        return socket.gethostname() or fqdn
    return fqdn


def unix_socket(spec: str, mode: str | None, group: str | None) -> UnixSocket | None:
    """The unix socket's path, mode and group; ``ValueError`` for bad values or options without a unix socket."""
    path = unix_path(spec)
    if path is None:
        if mode or group:
            raise _Usage("--socket-mode and --socket-group apply to a unix: socket only")
        return None
    return UnixSocket(
        Path(os.path.abspath(path)),
        parse_mode(mode) if mode else DEFAULT_MODE,
        parse_group(group) if group else None,
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


@dataclass(frozen=True)
class _Setup:
    spec: str | None  # libmilter's socket name; None with --check alone
    unix: UnixSocket | None
    settings: MilterSettings
    gate: SmtpGate
    tenants_from_file: bool
    region: str | None


def _configure(args: argparse.Namespace) -> _Setup:
    """Everything the command line and the environment say; raises SettingsError, ValueError or SocketError."""
    from ipv6gate.wiring import aws_region, build_smtp_gate, file_tenants

    if not args.listen and not args.check:
        raise ValueError("--listen is required (or --check)")
    spec = socket_spec(args.listen) if args.listen else None
    unix = unix_socket(spec, args.socket_mode, args.socket_group) if spec else None
    settings = MilterSettings.from_env(os.environ, hostname=host_name())
    tenants = None
    if args.tenants:
        try:
            tenants = file_tenants(args.tenants)
        except (OSError, ValueError) as exc:
            raise _BadInput(f"--tenants {args.tenants}: {reason(exc)}") from None
        if not getattr(tenants, "domains", True):
            warn("milter", f"--tenants {args.tenants} lists no tenants: every IPv6 recipient gets 550 5.2.1")
    region = aws_region(os.environ)
    if region is None and (tenants is None or settings.checks.trace_table):
        raise SettingsError(f"{NO_REGION}; the tenants and trace tables are DynamoDB")
    gate = build_smtp_gate(settings, tenants=tenants, region=region)
    if spec and not args.check:  # --check runs beside a live milter: its socket is not in question
        check_free(spec)
    return _Setup(spec, unix, settings, gate, tenants is not None, region)


def run_milter(args: argparse.Namespace) -> int:
    from ipv6gate.wiring import probe_smtp_stack

    if not args.listen and not args.check:
        return fail(
            "milter", "give --listen HOST:PORT|unix:PATH (or --check) (see: ipv6gate milter --help)", Exit.USAGE
        )
    try:
        setup = _configure(args)
    except SettingsError as exc:
        return fail("milter", f"configuration: {exc}", Exit.USAGE)
    except _Usage as exc:
        return fail("milter", f"{exc} (see: ipv6gate milter --help)", Exit.USAGE)
    except (_BadInput, ValueError) as exc:  # a value given on the command line
        return fail("milter", str(exc), Exit.INPUT)
    except SocketError as exc:
        return fail("milter", f"configuration: cannot listen on {exc}", Exit.USAGE)

    # Before listening: what would otherwise fail only at the first message, and fail open there.
    problems = probe_smtp_stack(setup.settings, tenants_from_file=setup.tenants_from_file, region=setup.region)
    if args.check:
        if problems:
            return fail("milter", f"start-time check failed: {'; '.join(problems)}", Exit.USAGE)
        print("ipv6gate milter: start-time checks passed")
        return Exit.OK
    if problems and not args.degraded_start:
        return fail(
            "milter", f"start-time check failed: {'; '.join(problems)} (--degraded-start to start anyway)", Exit.USAGE
        )
    return _serve(setup, problems)


def decision_publisher(logger: Logger, metrics: Metrics) -> Callable[[Decision], None]:
    """One JSON log line and one EMF line per decision, from any thread, never interleaved.

    Metrics keeps one set of values (one decision's at a time), and it prints its EMF line with
    ``print``: the text and the newline are two writes, and another thread's log line could land
    between them (measured: 2 of 40 decision lines lost under concurrent dropped sessions). So both
    lines are written under the log handler's own lock, which every other log call takes too.
    """
    from ipv6gate.entrypoints.telemetry import count_decision

    stdout = publish_lock(logger)

    def publish(decision: Decision) -> None:
        level = logger.warning if decision.notes else logger.info
        with stdout:  # an RLock: the log call below takes it again
            level("decision", extra={"message_id": decision.message_id, "decision": decision.to_dict()})
            count_decision(decision, metrics)
            metrics.flush_metrics()

    return publish


def publish_lock(logger: Logger) -> Any:
    """The log handler's own lock, which every log call takes: lines written under it never interleave."""
    return logger.registered_handler.lock or threading.RLock()


def unrecorded(logger: Logger, metrics: Metrics, stdout: Any) -> Callable[[Decision], None]:
    """A decision the full recorder queue did not take: its log line now (the decision, and why it has no
    trace record) and ``DecisionsNotRecorded``; the SMTP reply was already given."""
    from ipv6gate.metric_names import DECISIONS_NOT_RECORDED

    def report(decision: Decision) -> None:
        with stdout:
            logger.warning(
                "decision not recorded: the recorder queue is full (MILTER_MAX_SESSIONS); no trace item, no counts",
                extra={"message_id": decision.message_id, "decision": decision.to_dict()},
            )
            metrics.add_metric(name=DECISIONS_NOT_RECORDED, unit="Count", value=1)
            metrics.flush_metrics()

    return report


def _serve(setup: _Setup, problems: list[str]) -> int:
    from aws_lambda_powertools import Logger, Metrics

    from ipv6gate.entrypoints.milter import ListenError, serve
    from ipv6gate.entrypoints.telemetry import log_json

    settings, unix = setup.settings, setup.unix
    service = os.environ.get("POWERTOOLS_SERVICE_NAME") or "ipv6gate-milter"
    logger = Logger(service=service, json_serializer=log_json)
    for problem in problems:
        logger.warning(
            "DEGRADED START: a start-time check failed; mail it concerns passes unjudged", extra={"problem": problem}
        )
    # The template's namespace by default, so the stack's dashboard and alarms can show the milter too.
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "IPv6Gate"
    metrics = Metrics(namespace=namespace, service=service)
    publish = decision_publisher(logger, metrics)

    def on_error(stage: str, exc: BaseException) -> None:
        logger.error("milter callback failed; message accepted", extra={"stage": stage}, exc_info=exc)

    def listening() -> None:
        extra: dict[str, Any] = {"socket": setup.spec, "authserv_id": settings.authserv_id}
        if unix is not None:
            extra |= {"socket_mode": f"{unix.mode:04o}", "socket_gid": unix.path.stat().st_gid}
        logger.info("milter listening", extra=extra)

    # A long-running process: load the checks now, not on the first message (~0.8 s of imports).
    import ipv6gate.checks.dkim
    import ipv6gate.checks.spf  # noqa: F401

    assert setup.spec is not None  # --listen is required without --check
    try:
        cut_off = serve(
            setup.gate,
            setup.spec,
            settings.authserv_id,
            publish,
            on_error,
            unix=unix,
            listening=listening,
            drain_seconds=settings.drain_seconds,
            max_sessions=settings.max_sessions,
            on_unrecorded=unrecorded(logger, metrics, publish_lock(logger)),
            on_busy=lambda setting, reply: logger.warning(
                "refused at a ceiling", extra={"setting": setting, "reply": str(reply)}
            ),
        )
    except ListenError as exc:
        return fail("milter", f"configuration: {exc}", Exit.USAGE)
    logger.info("milter stopped", extra={"sessions_cut_off": cut_off, "drain_seconds": settings.drain_seconds})
    return Exit.OK
