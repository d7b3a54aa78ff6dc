"""Bounce policy, pure: whether the rejected recipients of a message get a DSN, and why.

SES has accepted the message before the gate runs, so a rejection reaches the sender only as a
bounce. Bouncing to an address the sender could not prove is backscatter (RFC 7208 §2.5,
RFC 5321 §6.2) and hurts the account's reputation, so by default a bounce goes out only when the
envelope sender is authenticated: SPF passed for the MAIL FROM domain, or a passing DKIM signature's
d= is that domain or a parent of it. Never to the null sender, to auto-submitted or list mail, or in
reply to a DSN.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from ipv6gate.checks.results import Result
from ipv6gate.decision.rule import Checks, RecipientVerdict, Verdict


class BounceMode(StrEnum):
    AUTHENTICATED = "authenticated"  # bounce only to an authenticated envelope sender (no backscatter)
    ALWAYS = "always"  # to any sender, except where a bounce is never right (null sender, DSNs, ...)
    NEVER = "never"


class BounceAction(StrEnum):
    SEND = "send"
    SUPPRESS = "suppress"
    # The verdict was certain before SPF/DKIM finished (or they failed temporarily): the bouncer
    # authenticates the sender itself, off the gate's critical path, then sends or suppresses.
    DEFER = "defer"
    # A bounce was due (send or defer) but no bounce queue is configured (BOUNCE_QUEUE_URL empty):
    # nothing was queued, and the decision must not say otherwise. Set by the evaluator, not the policy.
    NONE = "none"

    @property
    def queues(self) -> bool:
        """Whether this action puts a request on the bounce queue."""
        return self in (BounceAction.SEND, BounceAction.DEFER)


@dataclass(frozen=True, slots=True)
class BounceDecision:
    action: BounceAction
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"action": self.action.value, "reason": self.reason}


_REPORT = re.compile(
    r"multipart/report\s*;.*report-type\s*=\s*\"?(delivery-status|disposition-notification)", re.IGNORECASE | re.DOTALL
)


def decide_bounce(
    *,
    mail_from: str,
    headers: Sequence[tuple[str, str]],
    verdicts: Sequence[RecipientVerdict],
    checks: Checks,
    mode: BounceMode,
) -> BounceDecision | None:
    """``None`` when no recipient was rejected (monitor-mode would-rejects are not rejections)."""
    if not any(v.verdict is Verdict.REJECT for v in verdicts):
        return None
    if any(v.verdict is Verdict.ACCEPT for v in verdicts):
        # SES's disposition covers the whole message: it continues, and reaches every recipient.
        return BounceDecision(BounceAction.SUPPRESS, "message continues to other recipients: nothing was stopped")
    never = _never_bounce(mail_from, headers)
    if never:
        return BounceDecision(BounceAction.SUPPRESS, never)
    if mode is BounceMode.NEVER:
        return BounceDecision(BounceAction.SUPPRESS, "bounces are off (BOUNCE_MODE=never)")
    if mode is BounceMode.ALWAYS:
        return BounceDecision(BounceAction.SEND, "BOUNCE_MODE=always")
    proof = sender_authenticated(mail_from, checks)
    if proof is not None:
        return BounceDecision(BounceAction.SEND, proof)
    if any(c.result in (Result.SKIPPED, Result.TEMPERROR) for c in (checks.spf, checks.dkim)):
        return BounceDecision(BounceAction.DEFER, "sender authentication unfinished: the bouncer checks SPF and DKIM")
    return BounceDecision(
        BounceAction.SUPPRESS, "envelope sender not authenticated (no SPF pass, no aligned DKIM pass): backscatter risk"
    )


def sender_authenticated(mail_from: str, checks: Checks) -> str | None:
    """Why the MAIL FROM address is proven (SPF pass for it, or an aligned DKIM pass), or ``None``."""
    domain = mail_from.rpartition("@")[2].lower().rstrip(".")
    if checks.spf.passed and checks.spf.properties.get("smtp.mailfrom"):
        return f"SPF pass for MAIL FROM domain {domain}"
    signer = checks.dkim.properties.get("header.d", "").lower().rstrip(".")
    if checks.dkim.passed and signer and (domain == signer or domain.endswith("." + signer)):
        return f"DKIM pass by {signer}, aligned with MAIL FROM domain {domain}"
    return None


def _never_bounce(mail_from: str, headers: Sequence[tuple[str, str]]) -> str | None:
    if not mail_from:
        return "null sender <>: a bounce is never answered with a bounce"
    for name, value in headers:
        key, text = name.lower(), " ".join(value.split()).lower()
        if key == "auto-submitted" and text.split(";")[0].strip() != "no":
            return f"Auto-Submitted: {text[:40]}"
        if key == "precedence" and text in ("bulk", "junk", "list"):
            return f"Precedence: {text}"
        if key == "content-type" and _REPORT.search(text):
            return "the message is itself a delivery or disposition report"
    return None
