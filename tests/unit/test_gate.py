import io
import json
from collections.abc import Callable

import pytest

from devstack import world
from ipv6gate.decision.tenants import Tenant
from ipv6gate.dns import Deadline, DnsResolver
from ipv6gate.evaluation.gate import Gate
from ipv6gate.mail.event import parse_event
from ipv6gate.ports import TenantLookupError
from ipv6gate.ports.memory import InMemoryMessages, InMemoryTenants

MakeGate = Callable[..., Gate]


def test_accept_via_spf_without_fetching_the_message(make_gate: MakeGate, messages: InMemoryMessages) -> None:
    d = make_gate().evaluate(parse_event(world.ses_event()))
    out = d.to_dict()
    assert out["disposition"] == "CONTINUE" and out["client_ip"] == world.GOOD_IP and out["ip_version"] == 6
    assert out["recipients"][0]["verdict"] == "accept"  # type: ignore[index]
    assert out["checks"]["spf"]["result"] == "pass"  # type: ignore[index]
    assert out["checks"]["dkim"]["result"] in ("none", "skipped")  # type: ignore[index]  # not needed after SPF
    assert messages.fetches == 0
    json.dumps(out)  # the CLI's line must be serialisable


def test_accept_via_dkim_only_fetches_the_raw_message(
    make_gate: MakeGate, messages: InMemoryMessages, keys: world.Keys
) -> None:
    raw = world.sign(world.message(), keys, selector="ed", algorithm="ed25519")
    event = world.ses_event(ip=world.OTHER_IP, raw=raw)
    messages.messages["o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1"] = raw
    d = make_gate().evaluate(parse_event(event))
    assert [v.verdict.value for v in d.verdicts] == ["accept"]
    assert d.checks.spf.result.value == "fail" and d.checks.dkim.result.value == "pass"
    assert messages.fetches == 1


def test_missing_raw_message_is_temperror_and_does_not_reject(make_gate: MakeGate, keys: world.Keys) -> None:
    raw = world.sign(world.message(), keys)
    d = make_gate().evaluate(parse_event(world.ses_event(ip=world.OTHER_IP, raw=raw)))
    assert d.checks.dkim.result.value == "temperror" and "raw message unavailable" in d.checks.dkim.reason
    assert d.verdicts[0].verdict.value == "accept" and "temperror decides" in d.verdicts[0].reason


def test_no_ptr_and_not_authenticated_replies(make_gate: MakeGate) -> None:
    gate = make_gate()
    no_ptr = gate.evaluate(parse_event(world.ses_event(ip=world.NO_PTR_IP)))
    assert str(no_ptr.verdicts[0].reply) == (
        "450 4.7.25 Service unavailable, sending IPv6 address [2001:db8:2::25] must have reverse DNS record."
    )
    assert no_ptr.disposition == "STOP_RULE_SET"
    unauth = gate.evaluate(parse_event(world.ses_event(ip=world.OTHER_IP)))
    assert str(unauth.verdicts[0].reply) == (
        "450 4.7.26 Service unavailable, message sent over IPv6 [2001:db8:6::25] "
        "must pass either SPF or DKIM validation."
    )


def test_mixed_recipients(make_gate: MakeGate) -> None:
    d = make_gate().evaluate(parse_event(world.ses_event(recipients=("a@tenant.test", "b@optout.test", "c@x.test"))))
    assert [v.verdict.value for v in d.verdicts] == ["accept", "reject", "reject"]
    assert str(d.verdicts[1].reply) == "550 5.2.1 Service unavailable, [optout.test] does not accept email over IPv6."
    assert d.disposition == "CONTINUE"


def test_nothing_is_checked_when_no_recipient_opted_in(make_gate: MakeGate) -> None:
    d = make_gate().evaluate(parse_event(world.ses_event(recipients=("b@optout.test",))))
    assert d.dns_queries == 0 and d.checks.iprev.result.value == "skipped"
    assert d.disposition == "STOP_RULE_SET"


def test_ipv4_needs_no_tenant_lookup_and_no_dns(make_gate: MakeGate, tenants: InMemoryTenants) -> None:
    d = make_gate().evaluate(parse_event(world.ses_event(ip=world.V4_IP)))
    assert d.disposition == "CONTINUE" and d.dns_queries == 0 and tenants.lookups == 0


def test_untrusted_top_received_is_accepted_with_a_reason(make_gate: MakeGate) -> None:
    forged = "from x (x [2001:db8:2::25]) by mx.elsewhere.test with SMTP id 1"
    d = make_gate().evaluate(parse_event(world.ses_event(ip=world.NO_PTR_IP, received=forged)))
    assert d.client_ip is None and d.verdicts[0].verdict.value == "accept"
    assert "not a trusted receiver" in d.verdicts[0].reason


def test_trusted_receivers_setting(make_gate: MakeGate) -> None:
    gate = make_gate(trusted_receivers="mx.other.test")
    d = gate.evaluate(parse_event(world.ses_event(ip=world.NO_PTR_IP)))
    assert d.verdicts[0].verdict.value == "accept"


def test_fcrdns_mode(make_gate: MakeGate) -> None:
    event = parse_event(world.ses_event(ip=world.MISMATCH_IP, mail_from="a@good.test"))
    assert make_gate(ptr_mode="fcrdns").evaluate(event).verdicts[0].reply.status == "4.7.25"  # type: ignore[union-attr]
    assert make_gate(ptr_mode="exists").evaluate(event).verdicts[0].reply.status == "4.7.26"  # type: ignore[union-attr]


def test_temperror_action_reject(make_gate: MakeGate) -> None:
    event = parse_event(world.ses_event(ip=world.PTR_TIMEOUT_IP))
    assert make_gate().evaluate(event).verdicts[0].verdict.value == "accept"
    rejected = make_gate(temperror_action="reject").evaluate(event).verdicts[0]
    assert rejected.verdict.value == "reject" and rejected.reply is not None and rejected.reply.status == "4.7.25"


def test_monitor_mode_tenant(make_gate: MakeGate) -> None:
    d = make_gate().evaluate(parse_event(world.ses_event(ip=world.NO_PTR_IP, recipients=("a@watch.test",))))
    assert d.disposition == "CONTINUE" and d.verdicts[0].monitor


def test_partner_prefix(make_gate: MakeGate, tenants: InMemoryTenants) -> None:
    from ipv6gate.decision.tenants import parse_prefix

    tenants.tenants["tenant.test"] = Tenant("tenant.test", True, partner_prefixes=(parse_prefix("2001:db8:2::/48"),))
    d = make_gate().evaluate(parse_event(world.ses_event(ip=world.NO_PTR_IP)))
    assert d.verdicts[0].verdict.value == "accept" and d.dns_queries == 0


def test_tenant_store_failure_fails_open_with_a_note(make_gate: MakeGate, tenants: InMemoryTenants) -> None:
    def broken(domains: object) -> dict[str, Tenant]:
        raise TenantLookupError("DynamoDB t: ProvisionedThroughputExceededException")

    tenants.get_many = broken  # type: ignore[method-assign]
    d = make_gate().evaluate(parse_event(world.ses_event(ip=world.NO_PTR_IP)))
    assert d.disposition == "CONTINUE"
    assert any("ProvisionedThroughputExceeded" in n for n in d.notes)
    assert d.verdicts[0].reason.startswith("accepted (fail open): tenant lookup failed")
    assert d.faults == ("tenant_lookup",)


def test_a_crashing_check_is_temperror_not_reject(make_gate: MakeGate, monkeypatch: pytest.MonkeyPatch) -> None:
    import ipv6gate.evaluation.evaluator as gate_module

    def boom(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(gate_module, "check_iprev", boom)
    d = make_gate().evaluate(parse_event(world.ses_event()))
    assert d.checks.iprev.result.value == "temperror" and "crashed" in d.checks.iprev.reason
    assert d.verdicts[0].verdict.value == "accept"


def test_unusable_recipient_is_noted_not_fatal(make_gate: MakeGate) -> None:
    d = make_gate().evaluate(parse_event(world.ses_event(recipients=("a@tenant.test", "postmaster"))))
    assert [v.verdict.value for v in d.verdicts] == ["accept", "accept"]
    assert any("postmaster" in n for n in d.notes)


def test_an_oversize_message_is_dkim_permerror(
    make_gate: MakeGate, messages: InMemoryMessages, keys: world.Keys
) -> None:
    raw = world.sign(world.message(body="x" * 4000 + "\n"), keys)
    messages.messages["o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1"] = raw
    gate = make_gate(message_max_bytes=2048)
    d = gate.evaluate(parse_event(world.ses_event(ip=world.OTHER_IP, raw=raw)))
    assert d.checks.dkim.result.value == "permerror" and "over the 2048 limit" in d.checks.dkim.reason
    assert d.verdicts[0].reply is not None and d.verdicts[0].reply.status == "4.7.26"  # no retry would help


def test_each_check_has_its_own_query_cap(make_gate: MakeGate) -> None:
    # v4only.test's record needs 4 queries; with a cap of 3 SPF runs out (temperror), and the PTR
    # lookup, with a cap of its own, is still asked: no PTR, so 4.7.25 and not "temperror decides".
    gate = make_gate()
    runner = gate.evaluator.runner
    runner.dns = DnsResolver(runner.dns.backend, query_timeout=1.0, query_limit=3)
    gate.complete_checks = True
    d = gate.evaluate(parse_event(world.ses_event(mail_from="x@v4only.test", ip=world.NO_PTR_IP)))
    assert d.checks.spf.result.value == "temperror" and "query limit of 3" in d.checks.spf.reason
    assert d.checks.iprev.result.value == "permerror"
    assert d.verdicts[0].reply is not None and d.verdicts[0].reply.status == "4.7.25"


def test_an_abandoned_dkim_check_stops_reading_the_message(
    make_gate: MakeGate, messages: InMemoryMessages, keys: world.Keys
) -> None:
    # Once the verdict is certain the DKIM session is cancelled; the body must not be read any further.
    raw = world.sign(world.message(body="x" * 200_000 + "\n"), keys)
    messages.messages["o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1"] = raw
    reads: list[int] = []
    opened = messages.open

    class Counting(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            chunk = super().read(size)
            reads.append(len(chunk))
            return chunk

    def counting_open(message_id: str, max_bytes: int) -> io.BytesIO:
        return Counting(opened(message_id, max_bytes).read())

    messages.open = counting_open  # type: ignore[method-assign]
    gate = make_gate()
    session = gate.evaluator.runner.dns.session(Deadline(5.0))
    session.cancel()
    result = gate._dkim(parse_event(world.ses_event(ip=world.OTHER_IP, raw=raw)), session, None)
    assert result.result.value == "temperror" and "decision already made" in result.reason
    assert reads == []
