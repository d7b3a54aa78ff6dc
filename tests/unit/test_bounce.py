"""The bounce policy matrix: every reply code x how the envelope sender stands."""

from __future__ import annotations

import ipaddress

import pytest

from ipv6gate.bounce.backscatter import BounceAction, BounceMode, decide_bounce
from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.decision import replies
from ipv6gate.decision.replies import Reply
from ipv6gate.decision.rule import Checks, RecipientVerdict, Verdict

IP = ipaddress.IPv6Address("2001:db8::25")
REPLIES = {
    "4.7.25": replies.no_reverse_dns(IP),
    "4.7.26": replies.not_authenticated(IP),
    "5.2.1": replies.ipv6_not_accepted("tenant.test"),
}


def checks(spf: Result = Result.FAIL, dkim: Result = Result.NONE, d: str = "", helo_only: bool = False) -> Checks:
    spf_props = {"smtp.helo": "h"} if helo_only else {"smtp.mailfrom": "a@sender.test"}
    return Checks(
        CheckResult("iprev", Result.PASS, ""),
        CheckResult("spf", spf, "", spf_props),
        CheckResult("dkim", dkim, "", {"header.d": d} if d else {}),
    )


def rejected(reply: Reply) -> list[RecipientVerdict]:
    return [RecipientVerdict("bob@tenant.test", Verdict.REJECT, reply, "r")]


SENDERS = {
    "spf-authenticated": ("a@sender.test", [], checks(Result.PASS), BounceAction.SEND),
    "dkim-aligned": ("a@mail.sender.test", [], checks(dkim=Result.PASS, d="sender.test"), BounceAction.SEND),
    "dkim-unaligned": ("a@sender.test", [], checks(dkim=Result.PASS, d="other.test"), BounceAction.SUPPRESS),
    "dkim-lookalike": ("a@evilsender.test", [], checks(dkim=Result.PASS, d="sender.test"), BounceAction.SUPPRESS),
    "unauthenticated": ("a@sender.test", [], checks(Result.SOFTFAIL), BounceAction.SUPPRESS),
    "temperror-only": ("a@sender.test", [], checks(Result.TEMPERROR, Result.TEMPERROR), BounceAction.DEFER),
    "null-sender": ("", [], checks(Result.PASS, helo_only=True), BounceAction.SUPPRESS),
    "auto-submitted": (
        "a@sender.test",
        [("Auto-Submitted", "auto-replied")],
        checks(Result.PASS),
        BounceAction.SUPPRESS,
    ),
    "auto-submitted-no": ("a@sender.test", [("Auto-Submitted", "no")], checks(Result.PASS), BounceAction.SEND),
    "list-precedence": ("a@sender.test", [("Precedence", "List")], checks(Result.PASS), BounceAction.SUPPRESS),
    "a-dsn": (
        "a@sender.test",
        [("Content-Type", 'multipart/report; report-type="delivery-status";\r\n boundary=x')],
        checks(Result.PASS),
        BounceAction.SUPPRESS,
    ),
}


@pytest.mark.parametrize("status", sorted(REPLIES))
@pytest.mark.parametrize("sender", sorted(SENDERS))
def test_matrix(status: str, sender: str) -> None:
    mail_from, headers, c, expected = SENDERS[sender]
    decision = decide_bounce(
        mail_from=mail_from,
        headers=headers,
        verdicts=rejected(REPLIES[status]),
        checks=c,
        mode=BounceMode.AUTHENTICATED,
    )
    assert decision is not None and decision.action is expected, decision
    assert decision.reason


def test_not_authenticated_never_bounces_by_default() -> None:
    # 4.7.26 means neither SPF nor DKIM passed, so there is nothing to authenticate the sender with.
    d = decide_bounce(
        mail_from="a@sender.test",
        headers=[],
        verdicts=rejected(REPLIES["4.7.26"]),
        checks=checks(Result.FAIL, Result.FAIL),
        mode=BounceMode.AUTHENTICATED,
    )
    assert d is not None and d.action is BounceAction.SUPPRESS and "backscatter" in d.reason


@pytest.mark.parametrize(
    ("mode", "mail_from", "expected"),
    [
        (BounceMode.ALWAYS, "a@sender.test", BounceAction.SEND),
        (BounceMode.ALWAYS, "", BounceAction.SUPPRESS),  # not even "always" answers a null sender
        (BounceMode.NEVER, "a@sender.test", BounceAction.SUPPRESS),
    ],
)
def test_modes(mode: BounceMode, mail_from: str, expected: BounceAction) -> None:
    d = decide_bounce(
        mail_from=mail_from, headers=[], verdicts=rejected(REPLIES["4.7.25"]), checks=checks(Result.PASS), mode=mode
    )
    assert d is not None and d.action is expected


def test_a_message_that_continues_is_not_bounced() -> None:
    mixed = [*rejected(REPLIES["5.2.1"]), RecipientVerdict("c@other.test", Verdict.ACCEPT, None, "ok")]
    d = decide_bounce(
        mail_from="a@sender.test", headers=[], verdicts=mixed, checks=checks(Result.PASS), mode=BounceMode.ALWAYS
    )
    assert d is not None and d.action is BounceAction.SUPPRESS


def test_nothing_rejected_means_no_bounce_decision() -> None:
    accepted = [RecipientVerdict("b@tenant.test", Verdict.ACCEPT, None, "ok")]
    monitor = [RecipientVerdict("b@tenant.test", Verdict.ACCEPT, REPLIES["4.7.25"], "would", monitor=True)]
    for verdicts in (accepted, monitor, []):
        assert (
            decide_bounce(
                mail_from="a@sender.test",
                headers=[],
                verdicts=verdicts,
                checks=checks(Result.PASS),
                mode=BounceMode.ALWAYS,
            )
            is None
        )
