"""``ipv6gate trace``: read the decision trace (TRACE_TABLE), newest first. JSON lines on stdout."""

from __future__ import annotations

import argparse
import json
import sys

from ipv6gate.mail.domains import DomainError, normalize_domain
from ipv6gate.ports import TraceError
from ipv6gate.settings import Settings


def run_trace(args: argparse.Namespace, settings: Settings) -> int:
    lookups = [(k, getattr(args, k)) for k in ("ip", "sender", "domain") if getattr(args, k)]
    if bool(args.message_id) == bool(lookups):
        print("ipv6gate: trace needs a MESSAGE_ID or one of --ip, --sender, --domain", file=sys.stderr)
        return 1
    if not 1 <= args.limit <= 1000:
        print(f"ipv6gate: --limit {args.limit} is outside 1..1000", file=sys.stderr)
        return 1
    from ipv6gate.aws.trace import DynamoTraceStore, ip_key, sender_key

    key: tuple[str, str] | None = None
    if lookups:
        kind, value = lookups[0]
        try:
            canonical = {"ip": ip_key, "sender": sender_key, "domain": normalize_domain}[kind](value)
        except (ValueError, DomainError) as exc:
            print(f"ipv6gate: --{kind} {value[:80]!r}: {exc}", file=sys.stderr)
            return 1
        key = (kind, canonical)
    table = settings.trace_table
    if not table:
        print("ipv6gate: configuration: TRACE_TABLE: not set (the DynamoDB table of decisions)", file=sys.stderr)
        return 2
    from ipv6gate.wiring import aws_client

    store = DynamoTraceStore(aws_client("dynamodb"), table, ttl_days=settings.trace_ttl_days)
    try:
        if key is None:
            record = store.get(args.message_id)
            if record is None:
                print(f"ipv6gate: no recorded decision for message {args.message_id!r}", file=sys.stderr)
                return 4
            print(json.dumps(record))
        else:
            for summary in store.recent(*key, limit=args.limit):
                print(json.dumps(summary))
    except TraceError as exc:
        print(f"ipv6gate: {exc}", file=sys.stderr)
        return 3
    return 0
