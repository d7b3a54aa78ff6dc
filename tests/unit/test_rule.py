import ipaddress

import pytest

from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.decision import replies
from ipv6gate.decision.rule import (
    Checks,
    Disposition,
    Recipient,
    RecipientVerdict,
    TempErrorAction,
    Verdict,
    decide,
    disposition,
    needs_checks,
)
from ipv6gate.decision.tenants import Mode, Tenant, parse_prefix
from ipv6gate.mail.source import Source, Unknown

IP = ipaddress.IPv6Address("2001:db8::25")
V6 = Source(IP, "mx.sender.test")
ON = Tenant("tenant.test", ipv6_inbound=True)


def checks(iprev: str = "pass", spf: str = "pass", dkim: str = "none") -> Checks:
    return Checks(
        CheckResult("iprev", Result(iprev), "r"),
        CheckResult("spf", Result(spf), "r"),
        CheckResult("dkim", Result(dkim), "r"),
    )


def rcpt(tenant: Tenant | None = ON, domain: str = "tenant.test") -> Recipient:
    return Recipient(f"bob@{domain}", domain, tenant)


def one(
    source: Source | Unknown, r: Recipient, c: Checks, action: TempErrorAction = TempErrorAction.ACCEPT
) -> RecipientVerdict:
    [verdict] = decide(source, [r], c, action)
    return verdict


NO_PTR = str(replies.no_reverse_dns(IP))
NO_AUTH = str(replies.not_authenticated(IP))


@pytest.mark.parametrize(
    ("iprev", "spf", "dkim", "reply"),
    [
        ("pass", "pass", "none", None),
        ("pass", "fail", "pass", None),
        ("pass", "softfail", "fail", NO_AUTH),
        ("pass", "neutral", "none", NO_AUTH),
        ("pass", "none", "permerror", NO_AUTH),
        ("pass", "permerror", "fail", NO_AUTH),
        ("permerror", "pass", "pass", NO_PTR),  # no PTR comes first
        ("fail", "fail", "fail", NO_PTR),
        ("temperror", "fail", "none", NO_AUTH),  # the temperror does not decide: auth failed anyway
        ("fail", "temperror", "none", NO_PTR),  # likewise for a definite PTR failure
        ("temperror", "pass", "none", None),  # undecided: accept by default
        ("pass", "temperror", "fail", None),
        ("pass", "fail", "temperror", None),
    ],
)
def test_decision_order_and_replies(iprev: str, spf: str, dkim: str, reply: str | None) -> None:
    v = one(V6, rcpt(), checks(iprev, spf, dkim))
    assert (str(v.reply) if v.reply else None) == reply
    assert v.verdict is (Verdict.REJECT if reply else Verdict.ACCEPT)


@pytest.mark.parametrize(
    ("iprev", "spf", "dkim", "reply"),
    [
        ("temperror", "pass", "none", NO_PTR),
        ("pass", "temperror", "fail", NO_AUTH),
        ("pass", "fail", "temperror", NO_AUTH),
    ],
)
def test_temperror_rejects_only_when_configured(iprev: str, spf: str, dkim: str, reply: str) -> None:
    v = one(V6, rcpt(), checks(iprev, spf, dkim), TempErrorAction.REJECT)
    assert v.verdict is Verdict.REJECT and str(v.reply) == reply
    assert "temperror" in v.reason


@pytest.mark.parametrize("tenant", [None, Tenant("tenant.test", ipv6_inbound=False)])
def test_not_opted_in_is_550_before_any_check(tenant: Tenant | None) -> None:
    v = one(V6, rcpt(tenant), checks("fail", "fail", "fail"))
    assert v.verdict is Verdict.REJECT
    assert str(v.reply) == "550 5.2.1 Service unavailable, [tenant.test] does not accept email over IPv6."


def test_ipv4_and_unknown_sources_are_accepted_with_a_reason() -> None:
    v4 = Source(ipaddress.IPv4Address("192.0.2.1"), "h")
    assert one(v4, rcpt(None), checks("fail", "fail", "fail")).verdict is Verdict.ACCEPT
    unknown = one(Unknown("no Received header"), rcpt(None), checks())
    assert unknown.verdict is Verdict.ACCEPT and "no Received header" in unknown.reason


def test_monitor_mode_accepts_but_reports_the_would_be_reply() -> None:
    watch = Tenant("tenant.test", ipv6_inbound=True, mode=Mode.MONITOR)
    v = one(V6, rcpt(watch), checks("permerror", "fail", "none"))
    assert v.verdict is Verdict.ACCEPT and v.monitor
    assert v.to_dict()["would_reply"] == NO_PTR and v.to_dict()["reply"] is None


def test_partner_prefix_skips_the_checks() -> None:
    partner = Tenant("tenant.test", ipv6_inbound=True, partner_prefixes=(parse_prefix("2001:db8::/64"),))
    v = one(V6, rcpt(partner), checks("permerror", "fail", "fail"))
    assert v.verdict is Verdict.ACCEPT and "partner" in v.reason
    outsider = Source(ipaddress.IPv6Address("2001:db8:1::25"), "h")
    assert one(outsider, rcpt(partner), checks("permerror", "fail", "fail")).verdict is Verdict.REJECT


def test_mixed_recipients_continue_and_all_rejected_stops() -> None:
    mixed = decide(V6, [rcpt(), rcpt(None, "other.test")], checks())
    assert [v.verdict for v in mixed] == [Verdict.ACCEPT, Verdict.REJECT]
    assert disposition(mixed) is Disposition.CONTINUE
    rejected = decide(V6, [rcpt(), rcpt(None, "other.test")], checks("permerror"))
    assert disposition(rejected) is Disposition.STOP_RULE_SET
    assert disposition([]) is Disposition.CONTINUE


def test_needs_checks_only_for_ipv6_with_an_opted_in_non_partner_recipient() -> None:
    assert needs_checks(V6, [rcpt()])
    assert not needs_checks(V6, [rcpt(None)])
    assert not needs_checks(V6, [rcpt(Tenant("tenant.test", ipv6_inbound=False))])
    assert not needs_checks(Source(ipaddress.IPv4Address("192.0.2.1"), "h"), [rcpt()])
    assert not needs_checks(Unknown("x"), [rcpt()])
    partner = Tenant("tenant.test", ipv6_inbound=True, partner_prefixes=(parse_prefix("2001:db8::/32"),))
    assert not needs_checks(V6, [rcpt(partner)])
