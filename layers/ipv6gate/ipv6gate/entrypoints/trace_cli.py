"""``ipv6gate trace``: read the decision trace (TRACE_TABLE), newest first. JSON lines on stdout."""

from __future__ import annotations

import argparse
import ipaddress
import json

from ipv6gate.decision.tenants import tenant_domain
from ipv6gate.entrypoints.exits import Exit, fail
from ipv6gate.mail.domains import recipient_domain
from ipv6gate.ports import TraceError
from ipv6gate.settings import Settings


def _canonical(kind: str, value: str) -> str:
    """The form the trace is keyed by; ``ValueError`` (``DomainError``) says why ``value`` cannot be one."""
    from ipv6gate.aws.trace import ip_key, sender_key

    if kind == "domain":
        return tenant_domain(value)  # refuses an IP address (1.2.3.4) as well
    if kind == "sender":
        if value.strip() not in ("", "<>"):
            recipient_domain(value)  # an address with a domain, or the null sender
        return sender_key(value)
    canonical = ip_key(value)
    if ipaddress.ip_address(canonical).version == 4:
        # The function records IPv6 (and unknown-client) decisions only: IPv4 is outside the rule.
        raise ValueError(f"{canonical} is IPv4, and IPv4 mail is never recorded (the trace holds IPv6 decisions)")
    return canonical


def run_trace(args: argparse.Namespace, settings: Settings, *, region: str) -> int:
    lookups = [(k, getattr(args, k)) for k in ("ip", "sender", "domain") if getattr(args, k) is not None]
    if args.message_id is not None and lookups:
        return fail("trace", f"MESSAGE_ID and --{lookups[0][0]} are exclusive: give one", Exit.USAGE)
    if args.message_id is None and not lookups:
        return fail("trace", "give a MESSAGE_ID or one of --ip, --sender, --domain", Exit.USAGE)
    if args.message_id is not None and not args.message_id.strip():
        return fail("trace", "MESSAGE_ID is empty", Exit.INPUT)
    key: tuple[str, str] | None = None
    if lookups:
        kind, value = lookups[0]
        try:
            key = (kind, _canonical(kind, value))
        except ValueError as exc:
            return fail("trace", f"--{kind} {value[:80]!r}: {exc}", Exit.INPUT)
    table = settings.trace_table
    if not table:
        return fail("trace", "configuration: TRACE_TABLE: not set (the DynamoDB table of decisions)", Exit.USAGE)
    from ipv6gate.wiring import build_trace_reader

    store = build_trace_reader(settings, region)
    try:
        if key is None:
            record = store.get(args.message_id)
            if record is None:
                return fail("trace", f"no recorded decision for message {args.message_id!r}", Exit.NOT_FOUND)
            print(json.dumps(record))
        else:
            for summary in store.recent(*key, limit=args.limit):
                print(json.dumps(summary))
    except TraceError as exc:
        return fail("trace", str(exc), Exit.AWS)
    return Exit.OK
