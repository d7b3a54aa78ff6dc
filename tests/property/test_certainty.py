"""The policy's "is the verdict already certain?" (``policy.certain``), proved exhaustively.

For every partial set of check results (each of iprev, spf and dkim missing or any RFC 8601 value)
and every tenant situation a recipient can be in (one recipient, and every pair), with both
TEMPERROR_ACTIONs: whenever ``certain`` says yes, every completion of the missing results, over
every value, gives the same verdicts and replies; whenever it says no, two completions differ.
The check runner stops waiting on this answer, so a wrong "yes" would change mail flow.
"""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.decision.rule import CHECK_NAMES, Checks, Recipient, TempErrorAction, certain, decide
from ipv6gate.decision.tenants import Mode, Tenant
from ipv6gate.mail.source import Source

CLIENT = ipaddress.IPv6Address("2001:db8:5::25")
SOURCE = Source(CLIENT, "mail.example.net")
PARTNER = ipaddress.IPv6Network("2001:db8:5::/48")

SITUATIONS = {
    "not a tenant": Recipient("a@none.test", "none.test", None),
    "opted out": Recipient("a@out.test", "out.test", Tenant("out.test", ipv6_inbound=False)),
    "enforced": Recipient("a@on.test", "on.test", Tenant("on.test", ipv6_inbound=True)),
    "monitor": Recipient("a@mon.test", "mon.test", Tenant("mon.test", ipv6_inbound=True, mode=Mode.MONITOR)),
    "partner": Recipient("a@p.test", "p.test", Tenant("p.test", ipv6_inbound=True, partner_prefixes=(PARTNER,))),
    "tenant lookup failed": Recipient("a@err.test", "err.test", None, "tenant lookup failed: boom"),
    "no domain": Recipient("nobody", None, None),
}
RECIPIENT_LISTS = [[r] for r in SITUATIONS.values()] + [
    [a, b] for a, b in itertools.combinations(SITUATIONS.values(), 2)
]
VALUES = list(Result)


def _verdicts(recipients: list[Recipient], results: dict[str, CheckResult], action: TempErrorAction) -> tuple:
    checks = Checks(results["iprev"], results["spf"], results["dkim"])
    return tuple((v.verdict, v.reply, v.monitor) for v in decide(SOURCE, recipients, checks, action))


@pytest.mark.parametrize("action", list(TempErrorAction))
@pytest.mark.parametrize("recipients", RECIPIENT_LISTS, ids=lambda rs: "+".join(r.address for r in rs))
def test_certain_exactly_when_every_completion_agrees(recipients: list[Recipient], action: TempErrorAction) -> None:
    said_yes = said_no = 0
    for partial in itertools.product([None, *VALUES], repeat=len(CHECK_NAMES)):
        known = {n: CheckResult(n, r, "known") for n, r in zip(CHECK_NAMES, partial, strict=True) if r is not None}
        missing = [n for n in CHECK_NAMES if n not in known]
        outcomes = {
            _verdicts(
                recipients, known | {n: CheckResult(n, r, "") for n, r in zip(missing, fill, strict=True)}, action
            )
            for fill in itertools.product(VALUES, repeat=len(missing))
        }
        if certain(SOURCE, recipients, known, action):
            said_yes += 1
            assert len(outcomes) == 1, (known, outcomes)
        else:
            said_no += 1
            assert len(outcomes) > 1, known
    assert said_yes  # every complete set of results is certain
    if any(r.tenant and r.tenant.ipv6_inbound and not r.tenant.is_partner(CLIENT) for r in recipients):
        assert said_no  # an opted-in, anonymous recipient must wait for something


def test_a_ptr_failure_is_certain_before_spf_and_dkim() -> None:
    enforced = [SITUATIONS["enforced"]]
    assert certain(SOURCE, enforced, {"iprev": CheckResult("iprev", Result.PERMERROR, "no PTR")})
    assert not certain(SOURCE, enforced, {"iprev": CheckResult("iprev", Result.PASS, "ok")})
    assert not certain(SOURCE, [SITUATIONS["monitor"]], {"iprev": CheckResult("iprev", Result.PASS, "ok")})
