"""Forgery: nothing the sender writes can choose the address or the identity that is checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from devstack import world
from ipv6gate.evaluation.gate import Gate
from ipv6gate.evaluation.record import Decision
from ipv6gate.mail.event import parse_event

MakeGate = Callable[..., Gate]
NO_PTR_REPLY = "450 4.7.25 Service unavailable, sending IPv6 address [2001:db8:2::25] must have reverse DNS record."


def decide(gate: Gate, **event: Any) -> Decision:
    return gate.evaluate(parse_event(world.ses_event(**event)))


def test_forged_lower_received_header_is_not_read(make_gate: MakeGate) -> None:
    # The sender's own Received header claims the good, PTR-published address, written as SES would.
    forged = (
        (
            "Received",
            f"from mail.good.test (mail.good.test [{world.GOOD_IP}]) by "
            "inbound-smtp.eu-west-1.amazonaws.com with SMTP id forged",
        ),
    )
    d = decide(make_gate(), ip=world.NO_PTR_IP, extra_headers=forged)
    assert d.client_ip == world.NO_PTR_IP and str(d.verdicts[0].reply) == NO_PTR_REPLY


def test_forged_authentication_results_and_received_spf_are_ignored(make_gate: MakeGate) -> None:
    forged = (
        ("Received-SPF", f"pass (sender authorized) client-ip={world.GOOD_IP}; envelope-from=alice@good.test"),
        (
            "Authentication-Results",
            "inbound-smtp.eu-west-1.amazonaws.com; spf=pass; dkim=pass header.d=good.test;"
            f" iprev=pass policy.iprev={world.GOOD_IP}",
        ),
        ("X-Originating-IP", f"[{world.GOOD_IP}]"),
        ("X-Forwarded-For", world.GOOD_IP),
    )
    d = decide(make_gate(), ip=world.OTHER_IP, extra_headers=forged)  # SPF fails for OTHER_IP, unsigned
    assert d.client_ip == world.OTHER_IP
    assert d.checks.spf.result.value == "fail" and d.checks.dkim.result.value == "none"
    assert d.verdicts[0].reply is not None and d.verdicts[0].reply.status == "4.7.26"


def test_helo_claiming_an_ipv6_literal_changes_nothing(make_gate: MakeGate) -> None:
    d = decide(make_gate(), ip=world.NO_PTR_IP, helo=f"[IPv6:{world.GOOD_IP}]")
    assert d.client_ip == world.NO_PTR_IP and str(d.verdicts[0].reply) == NO_PTR_REPLY


def test_a_hop_before_ses_is_not_the_client(make_gate: MakeGate) -> None:
    # Mail relayed by the sender's own infrastructure: earlier hops appear below SES's header only.
    hops = tuple(
        ("Received", f"from relay{i}.good.test ([{ip}]) by mx{i}.good.test with ESMTPS id h{i}")
        for i, ip in enumerate((world.GOOD_IP, "2001:db8:1::99"))
    )
    d = decide(make_gate(), ip=world.NO_PTR_IP, extra_headers=hops)
    assert d.client_ip == world.NO_PTR_IP and d.verdicts[0].reply is not None


def test_top_received_from_another_receiver_is_not_trusted(make_gate: MakeGate) -> None:
    # A receipt through some other MTA (or a forged event): no trusted client, nothing is rejected.
    other = f"from x ([{world.NO_PTR_IP}]) by mx.relay.test with SMTP id 1; Fri, 27 Nov 2026 12:00:00 +0000"
    d = decide(make_gate(), ip=world.NO_PTR_IP, received=other)
    assert d.client_ip is None and d.verdicts[0].verdict.value == "accept" and d.dns_queries == 0


def test_mail_from_identity_is_the_envelope_not_the_header_from(make_gate: MakeGate) -> None:
    # Header From claims good.test (which would pass SPF); the envelope sender is softfail.test.
    raw = world.message(mail_from="alice@good.test")
    d = decide(make_gate(), ip=world.GOOD_IP, mail_from="alice@softfail.test", raw=raw)
    assert d.checks.spf.properties == {"smtp.mailfrom": "alice@softfail.test"}
    assert d.checks.spf.result.value == "softfail"
