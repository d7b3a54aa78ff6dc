"""The bouncer's half of the bounce policy: prove the envelope sender before sending a DSN.

The gate stops waiting as soon as its verdict is certain (a missing PTR decides 4.7.25 whatever
SPF says), so it may queue a bounce whose sender is not yet authenticated. The bouncer, which has
no SMTP client waiting on it, finishes the job here with the same checks and the same rule as
``bounce.policy.decide_bounce``: SPF pass for the MAIL FROM, or a DKIM pass aligned with it.
"""

from __future__ import annotations

import ipaddress

from ipv6gate.bounce.policy import BounceAction, BounceDecision, sender_authenticated
from ipv6gate.bounce.request import BounceRequest
from ipv6gate.checks.results import CheckResult, skipped
from ipv6gate.checks.spf import check_spf
from ipv6gate.decision.policy import Checks
from ipv6gate.dns import Deadline, DnsResolver
from ipv6gate.evaluation.stored_message import check_stored_dkim
from ipv6gate.ports import MessageStore
from ipv6gate.settings import Settings


def authenticate_sender(
    request: BounceRequest, *, dns: DnsResolver, messages: MessageStore | None, settings: Settings
) -> BounceDecision:
    """SEND when proven, SUPPRESS when not, DEFER when DNS or S3 failed for now (retry later)."""
    session = dns.session(Deadline(settings.decision_budget_seconds))
    ip = ipaddress.ip_address(request.client_ip)
    spf = check_spf(session, ip, request.mail_from, request.helo, void_limit=settings.spf_void_lookup_limit)
    dkim: CheckResult = skipped("dkim", "SPF passed" if spf.passed else "message not DKIM-signed")
    if not spf.passed and request.dkim_signed:
        dkim = check_stored_dkim(
            messages,
            request.message_id,
            session,
            max_bytes=settings.message_max_bytes,
            max_signatures=settings.dkim_max_signatures,
        )
    checks = Checks(skipped("iprev", "not needed for the bounce"), spf, dkim)
    proof = sender_authenticated(request.mail_from, checks)
    if proof is not None:
        return BounceDecision(BounceAction.SEND, proof)
    if spf.temporary or dkim.temporary:
        return BounceDecision(BounceAction.DEFER, f"spf {spf.result}, dkim {dkim.result}: try again later")
    return BounceDecision(BounceAction.SUPPRESS, f"sender not authenticated (spf {spf.result}, dkim {dkim.result})")
