"""``ipv6gate evaluate``: decide saved SES events as the function would; one JSON line per event on stdout.

A bad event file is one line on stderr and the other events are still decided. A decision that
recorded a fault (the tenants table could not be read, so it failed open; with ``--record``, the
trace write failed) is printed too, but it is no verdict: a line on stderr says so and the exit
status is ``Exit.AWS``, so a script never reads a fail-open accept as an all-clear.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from ipv6gate.entrypoints.exits import NO_REGION, Exit, fail, reason, warn
from ipv6gate.evaluation.record import Decision
from ipv6gate.mail.event import EventError, Mail, parse_event
from ipv6gate.mail.source import stored_message_id
from ipv6gate.ports import TenantDirectory
from ipv6gate.settings import Settings, SettingsError

_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")


def run_evaluate(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from ipv6gate.wiring import aws_region, build_gate

    if args.received_in is not None and not _REGION.fullmatch(args.received_in):
        return fail(
            "evaluate", f"--received-in {args.received_in[:40]!r}: not an AWS region name like eu-west-1", Exit.INPUT
        )
    try:
        # A saved event may come from any region: the trusted receiver is SES's there, not where
        # this shell's AWS_REGION points (see Settings.from_env).
        settings = Settings.from_env(env, received_in=args.received_in or "*")
        region = aws_region(env)
        if region is None and (args.record or not args.tenants):
            raise SettingsError(NO_REGION)
        tenants = _tenants_file(args.tenants) if args.tenants else None
        gate = build_gate(settings, tenants=tenants, act=False, record=args.record, region=region)
        gate.complete_checks = args.all_checks
        events, status = _read_events(args.events)
        raws = _match_messages(args.message, {mail.message_id for _, mail in events})
    except SettingsError as exc:
        return fail("evaluate", f"configuration: {exc}", Exit.USAGE)
    except _InputError as exc:
        return fail("evaluate", str(exc), Exit.INPUT)

    for path, mail in events:
        decision = gate.evaluate(mail, raw_message=raws.get(mail.message_id))
        if args.record:
            decision = gate.record(decision)  # the trace only: this gate queues no bounce
        print(json.dumps({"event": str(path), **decision.to_dict()}, ensure_ascii=False), flush=True)
        if decision.faults:  # the core records each (message_store too: mail let through unread)
            failed = ", ".join(decision.faults)
            status = max(status, fail("evaluate", f"{path}: {failed} failed: {_why(decision)}", Exit.AWS))
    return status


def _why(decision: Decision) -> str:
    return "; ".join(decision.notes) or "see the decision"


class _InputError(Exception):
    pass


def _tenants_file(path: Path) -> TenantDirectory:
    from ipv6gate.wiring import file_tenants

    try:
        tenants = file_tenants(path)
    except (OSError, ValueError) as exc:
        raise _InputError(f"--tenants {path}: {reason(exc)}") from None
    if not getattr(tenants, "domains", True):
        warn("evaluate", f"--tenants {path} lists no tenants: every IPv6 recipient gets 550 5.2.1")
    return tenants


def _read_events(paths: Sequence[Path]) -> tuple[list[tuple[Path, Mail]], Exit]:
    """The events that parse; each one that does not is reported (and the status says so)."""
    events: list[tuple[Path, Mail]] = []
    status = Exit.OK
    for path in paths:
        try:
            events.append((path, parse_event(json.loads(_read_bytes(path)))))
        except _InputError as exc:
            status = fail("evaluate", str(exc), Exit.INPUT)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            status = fail("evaluate", f"{path}: invalid JSON: {reason(exc)}", Exit.INPUT)
        except EventError as exc:
            status = fail("evaluate", f"{path}: {exc} (give SES receipt event files only)", Exit.INPUT)
    return events, status


def _match_messages(paths: Sequence[Path], event_ids: set[str]) -> dict[str, bytes]:
    """SES message id -> raw message, each file matched to exactly one of the events' ids.

    A raw message names its message id twice over when it comes from SES: SES's own topmost
    Received header says ``with SMTP id <id>``, and the S3 action stores it under ``<id>``. A file
    that names none of the events, or two, or an event that already has one, is refused: applying
    a message to the wrong event would turn its DKIM result into someone else's.
    """
    raws: dict[str, bytes] = {}
    source: dict[str, Path] = {}
    for path in paths:
        raw = _read_bytes(path)
        in_header = stored_message_id(raw)
        claimed = {path.name, path.stem} | ({in_header} if in_header else set())
        hits = sorted(claimed & event_ids)
        if not hits:
            said = f"its Received header says id {in_header}" if in_header else "no SES id in its Received header"
            raise _InputError(f"{path}: matches none of the events given ({said}; or name it <messageId>.eml)")
        if len(hits) > 1:
            raise _InputError(f"{path}: ambiguous: its name and its Received header name different events ({hits})")
        if hits[0] in source:
            raise _InputError(f"{source[hits[0]]} and {path} are both the raw message of {hits[0]}: give one")
        raws[hits[0]], source[hits[0]] = raw, path
    return raws


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _InputError(f"{path}: cannot read: {reason(exc)}") from None
