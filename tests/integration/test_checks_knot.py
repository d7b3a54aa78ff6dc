"""The three checks and whole decisions, with every DNS answer coming from Knot over the network."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from devstack import world
from devstack.knot import KnotServer
from ipv6gate.checks.dkim import check_dkim
from ipv6gate.checks.iprev import PtrMode, check_iprev
from ipv6gate.checks.results import Result
from ipv6gate.checks.spf import check_spf
from ipv6gate.decision.rule import Disposition, Verdict
from ipv6gate.decision.tenants import Tenant
from ipv6gate.dns import Deadline, DnsSession
from ipv6gate.dns.network import NetworkBackend
from ipv6gate.evaluation.gate import Gate
from ipv6gate.evaluation.record import Decision
from ipv6gate.mail.event import parse_event
from ipv6gate.ports.memory import InMemoryMessages, InMemoryTenants
from ipv6gate.settings import Settings
from ipv6gate.wiring import build_gate

pytestmark = pytest.mark.integration

NO_PTR_REPLY = "450 4.7.25 Service unavailable, sending IPv6 address [2001:db8:2::25] must have reverse DNS record."
NOT_AUTH_REPLY = (
    "450 4.7.26 Service unavailable, message sent over IPv6 [2001:db8:6::25] must pass either SPF or DKIM validation."
)


def gate_for(knot: KnotServer, **env: str) -> Gate:
    settings = Settings.from_env(
        {"AWS_REGION": "eu-west-1", "DNS_SERVERS": knot.servers_env, "DNS_QUERY_TIMEOUT_SECONDS": "1", **env}
    )
    gate = build_gate(
        settings, tenants=InMemoryTenants([Tenant("tenant.test", ipv6_inbound=True)]), messages=InMemoryMessages()
    )
    assert isinstance(gate.dns.backend, NetworkBackend)  # DNS_SERVERS wires the real network backend
    return gate


def evaluate(gate: Gate, raw: bytes | None = None, **event: Any) -> Decision:
    return gate.evaluate(parse_event(world.ses_event(raw=raw, **event)), raw_message=raw)


def only_verdict(decision: Decision) -> dict[str, Any]:
    """The one recipient's verdict as the function logs it (``Decision.to_dict``)."""
    recipients = decision.to_dict()["recipients"]
    assert isinstance(recipients, list) and len(recipients) == 1
    verdict: dict[str, Any] = recipients[0]
    return verdict


@pytest.fixture
def session(knot: KnotServer) -> DnsSession:
    return gate_for(knot).dns.session(Deadline(5.0))


# -- the checks one by one ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "mode", "expected", "name"),
    [
        (world.GOOD_IP, PtrMode.EXISTS, Result.PASS, "mail.good.test"),
        (world.GOOD_IP, PtrMode.FCRDNS, Result.PASS, "mail.good.test"),
        (world.OTHER_IP, PtrMode.FCRDNS, Result.PASS, "mail.other.test"),
        (world.MISMATCH_IP, PtrMode.EXISTS, Result.PASS, "mail.nomatch.test"),
        (world.MISMATCH_IP, PtrMode.FCRDNS, Result.FAIL, None),
        (world.NO_PTR_IP, PtrMode.EXISTS, Result.PERMERROR, None),
        (world.NUMERIC_PTR_IP, PtrMode.EXISTS, Result.FAIL, None),
    ],
)
def test_iprev(session: DnsSession, ip: str, mode: PtrMode, expected: Result, name: str | None) -> None:
    result = check_iprev(session, ipaddress.ip_address(ip), mode)
    assert result.result is expected, result
    assert result.properties.get("policy.iprev.name") == name


@pytest.mark.parametrize(
    ("ip", "mail_from", "expected"),
    [
        (world.GOOD_IP, "alice@good.test", Result.PASS),
        (world.OTHER_IP, "alice@good.test", Result.FAIL),
        (world.GOOD_IP, "alice@softfail.test", Result.SOFTFAIL),
        (world.GOOD_IP, "alice@nospf.test", Result.NONE),
        # The IPv6 trap: three IPv4-only a: hosts are AAAA-less but not void; the ip6: range matches.
        (world.GOOD_IP, "alice@v4only.test", Result.PASS),
        # ... whereas hosts that do not exist at all are void: three of them exceed the limit of two.
        (world.GOOD_IP, "alice@gone.v4only.test", Result.PERMERROR),
    ],
)
def test_spf(session: DnsSession, ip: str, mail_from: str, expected: Result) -> None:
    result = check_spf(session, ipaddress.ip_address(ip), mail_from, "mail.example.test", void_limit=2)
    assert result.result is expected, result
    assert result.properties == {"smtp.mailfrom": mail_from}


def test_spf_null_sender_checks_helo(session: DnsSession) -> None:
    result = check_spf(session, ipaddress.ip_address(world.GOOD_IP), "", "good.test", void_limit=2)
    assert result.result is Result.PASS, result
    assert result.properties == {"smtp.helo": "good.test"}


@pytest.mark.parametrize(("selector", "algorithm"), [("rsa", "rsa"), ("ed", "ed25519")])
def test_dkim_pass(session: DnsSession, keys: world.Keys, selector: str, algorithm: str) -> None:
    signed = world.sign(world.message(), keys, selector=selector, algorithm=algorithm)
    result = check_dkim(session, signed, max_signatures=5)
    assert result.result is Result.PASS, result
    assert result.properties == {"header.d": "good.test", "header.s": selector}


def test_dkim_failures(session: DnsSession, keys: world.Keys) -> None:
    signed = world.sign(world.message(), keys)
    tampered = signed.replace(b"Hi.", b"Hi!")
    assert check_dkim(session, tampered, max_signatures=5).result is Result.FAIL
    small = world.sign(world.message(), keys, selector="small")  # 768-bit key: refused (RFC 8301)
    assert check_dkim(session, small, max_signatures=5).result is Result.PERMERROR
    no_key = world.sign(world.message(), keys, selector="nokey")
    assert check_dkim(session, no_key, max_signatures=5).result in (Result.FAIL, Result.PERMERROR)


# -- whole decisions ------------------------------------------------------------------------------------


def test_good_ip_accepted_via_spf(knot: KnotServer) -> None:
    decision = evaluate(gate_for(knot))
    assert decision.checks.iprev.result is Result.PASS
    assert decision.checks.spf.result is Result.PASS
    assert decision.checks.dkim.result in (Result.NONE, Result.SKIPPED)  # unsigned, and not needed after SPF
    verdict = only_verdict(decision)
    assert verdict["verdict"] == "accept"
    assert verdict["reply"] is None
    assert verdict["reason"] == "PTR published, spf pass"
    assert decision.disposition is Disposition.CONTINUE
    assert decision.dns_queries > 0


@pytest.mark.parametrize(("selector", "algorithm"), [("rsa", "rsa"), ("ed", "ed25519")])
def test_other_ip_accepted_via_dkim_only(knot: KnotServer, keys: world.Keys, selector: str, algorithm: str) -> None:
    signed = world.sign(world.message(), keys, selector=selector, algorithm=algorithm)
    gate = gate_for(knot)
    # Every result, to show SPF's fail: the Lambda stops once PTR and DKIM pass, and SPF may be skipped.
    gate.complete_checks = True
    decision = evaluate(gate, signed, ip=world.OTHER_IP, helo="mail.other.test")
    assert decision.checks.iprev.result is Result.PASS
    assert decision.checks.spf.result is Result.FAIL
    assert decision.checks.dkim.result is Result.PASS
    assert decision.checks.dkim.properties == {"header.d": "good.test", "header.s": selector}
    verdict = only_verdict(decision)
    assert verdict["verdict"] == "accept"
    assert verdict["reason"] == "PTR published, dkim pass"


def test_no_ptr_gets_4_7_25(knot: KnotServer) -> None:
    decision = evaluate(gate_for(knot), ip=world.NO_PTR_IP, helo="mail.good.test")
    assert decision.checks.iprev.result is Result.PERMERROR
    assert decision.verdicts[0].verdict is Verdict.REJECT
    assert str(decision.verdicts[0].reply) == NO_PTR_REPLY
    assert only_verdict(decision)["reply"] == NO_PTR_REPLY
    assert decision.disposition is Disposition.STOP_RULE_SET


def test_unsigned_from_unlisted_ip_gets_4_7_26(knot: KnotServer) -> None:
    decision = evaluate(gate_for(knot), ip=world.OTHER_IP, helo="mail.other.test", mail_from="alice@good.test")
    assert decision.checks.iprev.result is Result.PASS
    assert decision.checks.spf.result is Result.FAIL
    assert decision.checks.dkim.result is Result.NONE
    assert only_verdict(decision)["reply"] == NOT_AUTH_REPLY
    assert decision.disposition is Disposition.STOP_RULE_SET


def test_fcrdns_mode_rejects_a_ptr_that_does_not_resolve_back(knot: KnotServer, keys: world.Keys) -> None:
    signed = world.sign(world.message(), keys)  # DKIM passes, so only the PTR decides
    event = {"ip": world.MISMATCH_IP, "helo": "mail.nomatch.test"}

    strict = evaluate(gate_for(knot, PTR_MODE="fcrdns"), signed, **event)
    assert strict.checks.iprev.result is Result.FAIL
    assert only_verdict(strict)["reply"] == (
        "450 4.7.25 Service unavailable, sending IPv6 address [2001:db8:3::25] must have reverse DNS record."
    )

    lenient = evaluate(gate_for(knot, PTR_MODE="exists"), signed, **event)
    assert lenient.checks.iprev.result is Result.PASS
    assert lenient.checks.dkim.result is Result.PASS
    assert only_verdict(lenient)["verdict"] == "accept"


def test_void_lookup_trap_passes_spf_in_a_decision(knot: KnotServer) -> None:
    decision = evaluate(gate_for(knot), mail_from="alice@v4only.test", helo="mail.good.test")
    assert decision.checks.spf.result is Result.PASS, decision.checks.spf
    assert only_verdict(decision)["verdict"] == "accept"
