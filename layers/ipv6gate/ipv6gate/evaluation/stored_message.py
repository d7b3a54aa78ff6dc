"""DKIM over the raw message the S3 action stored, read as a stream, for the gate and the bouncer alike.

One answer for a message that cannot be read: over ``MESSAGE_MAX_BYTES`` is ``permerror`` (a property
of the message; no retry changes it). Anything else (no store configured, object missing, S3 denied or
unreachable, a read that breaks) is ``temperror``: it says nothing about the message's signatures, and
a fault of our own infrastructure must never turn into a rejection (the gate then follows
TEMPERROR_ACTION; the bouncer defers and retries within its window).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from ipv6gate.checks.dkim_body import ByteStream
from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.dns import DnsSession
from ipv6gate.ports import MessageStore, MessageStoreError

# How a DKIM result begins when the raw message could not be read (the core records fault message_store).
UNAVAILABLE = "raw message unavailable"


def check_stored_dkim(
    messages: MessageStore | None,
    message_id: str,
    session: DnsSession,
    *,
    max_bytes: int,
    max_signatures: int,
    wrap: Callable[[BinaryIO], ByteStream] = lambda stream: stream,
) -> CheckResult:
    """``check_dkim_stream`` over the stored message; ``wrap`` may stop the stream early (an abandoned check)."""
    # Imported here so an IPv4 decision never pays for dkimpy (cold start).
    from ipv6gate.checks.dkim import check_dkim_stream

    if messages is None:
        return CheckResult("dkim", Result.TEMPERROR, f"{UNAVAILABLE}: no message store configured")
    try:
        stream = messages.open(message_id, max_bytes)
    except MessageStoreError as exc:
        result = Result.PERMERROR if exc.too_large else Result.TEMPERROR
        return CheckResult("dkim", result, f"{UNAVAILABLE}: {exc}")
    try:
        return check_dkim_stream(session, wrap(stream), max_signatures=max_signatures)
    finally:
        stream.close()
