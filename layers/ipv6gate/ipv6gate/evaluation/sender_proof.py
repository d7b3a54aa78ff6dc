"""The bouncer's half of the bounce policy: prove the envelope sender before sending a DSN.

The gate stops waiting as soon as its verdict is certain (a missing PTR decides 4.7.25 whatever
SPF says), so it may queue a bounce whose sender is not yet authenticated. The bouncer, which has
no SMTP client waiting on it, finishes the job here through the same ``Evaluator`` (SPF, then DKIM
only when SPF did not prove the sender) and the same rule as ``bounce.backscatter.decide_bounce``:
SPF pass for the MAIL FROM, or a DKIM pass aligned with it.
"""

from __future__ import annotations

from ipv6gate.bounce.backscatter import BounceAction, BounceDecision, sender_authenticated
from ipv6gate.bounce.request import BounceRequest
from ipv6gate.decision.rule import Checks
from ipv6gate.evaluation.evaluator import Draft, Evaluator
from ipv6gate.evaluation.stored_message import check_stored_dkim
from ipv6gate.mail.source import Source, client_address
from ipv6gate.ports import MessageStore


def authenticate_sender(
    request: BounceRequest, *, evaluator: Evaluator, messages: MessageStore | None
) -> BounceDecision:
    """SEND when proven, SUPPRESS when not, DEFER when DNS or S3 failed for now (retry later)."""
    source = Source(client_address(request.client_ip), request.helo)
    draft = Draft(source, request.mail_from, evaluator.clock())
    deadline = evaluator.deadline()
    results = evaluator.collect([evaluator.start_spf(source, request.mail_from, deadline)], draft, complete=True)
    spf_passed = results["spf"].passed
    if not spf_passed and request.dkim_signed:
        settings = evaluator.settings
        dkim = evaluator.start_dkim(
            lambda session: check_stored_dkim(
                messages,
                request.message_id,
                session,
                max_bytes=settings.message_max_bytes,
                max_signatures=settings.dkim_max_signatures,
            ),
            deadline,
        )
        results |= evaluator.collect([dkim], draft, complete=True)
    why = "SPF passed" if spf_passed else "message not DKIM-signed"
    checks = Checks.of(results, why)
    proof = sender_authenticated(request.mail_from, checks)
    if proof is not None:
        return BounceDecision(BounceAction.SEND, proof)
    if checks.spf.temporary or checks.dkim.temporary:
        return BounceDecision(
            BounceAction.DEFER, f"spf {checks.spf.result}, dkim {checks.dkim.result}: try again later"
        )
    return BounceDecision(
        BounceAction.SUPPRESS, f"sender not authenticated (spf {checks.spf.result}, dkim {checks.dkim.result})"
    )
