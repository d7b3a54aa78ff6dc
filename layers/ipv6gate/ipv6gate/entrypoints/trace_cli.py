"""``ipv6gate trace``: read the decision trace (TRACE_TABLE), newest first. JSON lines on stdout."""

from __future__ import annotations

import argparse
import ipaddress
import json

from ipv6gate.entrypoints.exits import Exit, fail
from ipv6gate.mail.domains import DomainError, normalize_domain
from ipv6gate.ports import TraceError
from ipv6gate.settings import Settings


def run_trace(args: argparse.Namespace, settings: Settings, *, region: str) -> int:
    lookups = [(k, getattr(args, k)) for k in ("ip", "sender", "domain") if getattr(args, k) is not None]
    if args.message_id is not None and lookups:
        return fail(f"MESSAGE_ID and --{lookups[0][0]} are exclusive: give one", Exit.USAGE)
    if args.message_id is None and not lookups:
        return fail("trace needs a MESSAGE_ID or one of --ip, --sender, --domain", Exit.USAGE)
    if not 1 <= args.limit <= 1000:
        return fail(f"--limit {args.limit} is outside 1..1000", Exit.INPUT)
    from ipv6gate.aws.trace import ip_key, sender_key

    key: tuple[str, str] | None = None
    if lookups:
        kind, value = lookups[0]
        try:
            canonical = {"ip": ip_key, "sender": sender_key, "domain": normalize_domain}[kind](value)
        except (ValueError, DomainError) as exc:
            return fail(f"--{kind} {value[:80]!r}: {exc}", Exit.INPUT)
        if kind == "ip" and ipaddress.ip_address(canonical).version == 4:
            # The function records IPv6 (and unknown-client) decisions only: IPv4 is outside the rule.
            return fail(f"--ip {canonical}: IPv4 mail is never recorded (the trace holds IPv6 decisions)", Exit.INPUT)
        key = (kind, canonical)
    table = settings.trace_table
    if not table:
        return fail("configuration: TRACE_TABLE: not set (the DynamoDB table of decisions)", Exit.USAGE)
    from ipv6gate.wiring import build_trace_reader

    store = build_trace_reader(settings, region)
    try:
        if key is None:
            record = store.get(args.message_id)
            if record is None:
                return fail(f"no recorded decision for message {args.message_id!r}", Exit.NOT_FOUND)
            print(json.dumps(record))
        else:
            for summary in store.recent(*key, limit=args.limit):
                print(json.dumps(summary))
    except TraceError as exc:
        return fail(str(exc), Exit.AWS)
    return Exit.OK
