"""The caps hold whatever the sender sends: DKIM_MAX_SIGNATURES, DNS_QUERY_LIMIT, MESSAGE_MAX_BYTES."""

from __future__ import annotations

import io
import threading
import time
from typing import Any
from unittest import mock

import dkim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack import invariants, world
from ipv6gate.aws.s3 import S3MessageStore
from ipv6gate.checks.dkim import check_dkim
from ipv6gate.checks.results import Result
from ipv6gate.decision.rule import Verdict
from ipv6gate.dns import Deadline, DnsSession
from ipv6gate.evaluation import evaluator as gate_module
from ipv6gate.mail.event import parse_event
from ipv6gate.ports import MessageStoreError
from ipv6gate.ports.memory import InMemoryMessages
from tests.property import strategies as s
from tests.property.conftest import PropWorld

VALID_TAGS = "v=1; a=rsa-sha256; c=relaxed/relaxed; h=from:to; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA"
signature_lines = st.one_of(
    st.builds(lambda i: f"DKIM-Signature: {VALID_TAGS}; d=s{i}.dk.test; s=rsa", st.integers(0, 10_000)),
    st.builds(lambda i: f"DKIM-Signature: {VALID_TAGS}; d=dk.test; s=sel{i}", st.integers(0, 10_000)),
    st.just(f"DKIM-Signature: {VALID_TAGS}; d=dk.test; s=slow"),  # times out: temperror, keeps going
    st.just("DKIM-Signature: v=1; a=rsa-sha1; d=good.test; s=rsa; h=from; bh=AAAA; b=AAAA"),
    st.just("DKIM-Signature: garbage;;=="),
)


@settings(deadline=None, max_examples=30)
@given(
    lines=st.lists(signature_lines, min_size=1, max_size=5),
    max_signatures=st.integers(1, 50),
    valid_last=st.booleans(),
)
def test_a_thousand_signatures_cost_at_most_the_cap(
    prop_world: PropWorld, lines: list[str], max_signatures: int, valid_last: bool
) -> None:
    head = "\r\n".join(lines[i % len(lines)] for i in range(1000)).encode() + b"\r\n"
    raw = head + (prop_world.signed[0] if valid_last else world.message())
    session = prop_world.resolver.session(Deadline(10.0))
    real_verify = dkim.DKIM.verify
    calls = 0

    def counting_verify(self: dkim.DKIM, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real_verify(self, *args, **kwargs)

    with mock.patch.object(dkim.DKIM, "verify", counting_verify):
        result = check_dkim(session, raw, max_signatures=max_signatures)
    assert calls <= max_signatures
    assert session.queries <= max_signatures
    assert result.result is not Result.PASS  # the valid signature is the 1,001st: never reached
    assert result.result.value in invariants.RESULTS


@settings(deadline=None, max_examples=25)
@given(max_signatures=st.sampled_from([1, 5, 50]), pick=st.integers(0, 6))
def test_a_thousand_signatures_through_the_gate(prop_world: PropWorld, max_signatures: int, pick: int) -> None:
    lines = "\r\n".join(f"DKIM-Signature: {VALID_TAGS}; d=s{i}.dk.test; s=rsa" for i in range(1000))
    raw = lines.encode() + b"\r\n" + prop_world.signed[pick]
    gate = prop_world.gate(dkim_max_signatures=max_signatures, ptr_mode="fcrdns")
    event = s.ses_event(
        headers=[("Received", f"from h (h [{world.GOOD_IP}]) by {s.RECEIVER} with SMTP"), ("DKIM-Signature", "x")],
        mail_from="alice@nospf.test",
        recipients=["bob@tenant.test"],
        message_id="caps",
    )
    prop_world.messages.messages["caps"] = raw
    decision = gate.evaluate(parse_event(event))
    assert invariants.decision_problems(decision, parse_event(event), query_limit=gate.settings.dns_query_limit) == []
    # PTR (and its forward lookup), SPF's TXT, then at most one key lookup per signature tried.
    assert decision.dns_queries <= max_signatures + 3 + 2


EXPLOSIVE = st.sampled_from(
    [
        "alice@boom.test",  # 10 mx: terms x 10 IPv4-only hosts: ~211 queries for an IPv6 client
        "alice@deep.boom.test",
        "alice@wide.boom.test",
        "alice@loop.boom.test",
        "alice@redir.boom.test",
        "alice@cname.boom.test",
        "alice@void.boom.test",
        "%{l}@macro.boom.test",
        "",
    ]
)


@settings(deadline=None)
@given(
    mail_from=EXPLOSIVE,
    helo=st.sampled_from(["h.boom.test", "boom.test", "mail.good.test"]),
    ip=st.sampled_from([world.GOOD_IP, world.NO_PTR_IP, "2001:db8:7::25", "2001:db8:99::1"]),
    limit=st.sampled_from([5, 20, 60, 200, 500]),
    ptr_mode=st.sampled_from(["exists", "fcrdns"]),
)
def test_dns_queries_never_exceed_the_limit(
    prop_world: PropWorld, mail_from: str, helo: str, ip: str, limit: int, ptr_mode: str
) -> None:
    """DNS_QUERY_LIMIT caps each check's session (README), so a decision asks at most three times it."""
    gate = prop_world.gate(dns_query_limit=limit, ptr_mode=ptr_mode)
    event = s.ses_event(
        headers=[("Received", f"from {helo} (x [{ip}]) by {s.RECEIVER} with SMTP")],
        mail_from=mail_from,
        recipients=["bob@tenant.test", "dave@watch.test"],
    )
    sessions: list[DnsSession] = []
    real_session = gate.dns.session

    def recording_session(deadline: Deadline) -> DnsSession:
        sessions.append(real_session(deadline))
        return sessions[-1]

    started = time.monotonic()
    with mock.patch.object(gate.dns, "session", recording_session):
        decision = gate.evaluate(parse_event(event))
    assert invariants.decision_problems(decision, parse_event(event), query_limit=limit) == []
    assert all(session.queries <= limit for session in sessions)
    assert decision.dns_queries == sum(session.queries for session in sessions) <= 3 * limit
    assert time.monotonic() - started < gate.settings.decision_budget_seconds + 2.5


class FakeBody:
    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.read_bytes = 0
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        chunk = self._data.read(n)
        self.read_bytes += len(chunk)
        return chunk

    def close(self) -> None:
        self.closed = True


class FakeS3:
    def __init__(self, data: bytes) -> None:
        self.body = FakeBody(data)
        self.size = len(data)

    def get_object(self, **_: Any) -> dict[str, Any]:
        return {"Body": self.body, "ContentLength": self.size}


@given(max_bytes=st.integers(1024, 64 * 1024), delta=st.integers(-3, 3) | st.integers(4, 10_000_000))
def test_the_s3_store_never_reads_a_message_over_the_limit(max_bytes: int, delta: int) -> None:
    size = max(0, max_bytes + delta)
    client = FakeS3(b"x" * size if size <= 1_100_000 else b"")
    client.size = size  # what S3 reports; the body itself is never read when it is too big
    store = S3MessageStore(client, "bucket", "inbound/")
    if size > max_bytes:
        with pytest.raises(MessageStoreError):
            store.open("m", max_bytes)
        assert client.body.read_bytes == 0
    else:
        assert len(store.open("m", max_bytes).read()) == size


@given(max_bytes=st.integers(1024, 8192), delta=st.integers(-3, 3) | st.integers(4, 100_000))
def test_the_in_memory_store_keeps_the_limit(max_bytes: int, delta: int) -> None:
    size = max(0, max_bytes + delta)
    store = InMemoryMessages({"m": b"x" * size})
    if size > max_bytes:
        with pytest.raises(MessageStoreError):
            store.open("m", max_bytes)
    else:
        assert len(store.open("m", max_bytes).read()) == size


class SpyStore:
    """Records the limit the gate asks the store to keep, then behaves as the in-memory store."""

    def __init__(self, raw: bytes) -> None:
        self.inner = InMemoryMessages({"big": raw})
        self.limits: list[int] = []

    def open(self, message_id: str, max_bytes: int) -> io.BytesIO:
        self.limits.append(max_bytes)
        return self.inner.open(message_id, max_bytes)


@settings(deadline=None, max_examples=20)
@given(max_bytes=st.sampled_from([1024, 4096, 65536]), extra=st.integers(1, 200_000))
def test_the_gate_does_not_read_a_message_over_message_max_bytes(
    prop_world: PropWorld, max_bytes: int, extra: int
) -> None:
    signed = prop_world.signed[0]  # a valid good.test signature that would pass if the body were read
    raw = signed + b"x" * max(0, max_bytes - len(signed) + extra)
    assert len(raw) > max_bytes
    gate = prop_world.gate(message_max_bytes=max_bytes)
    spy = SpyStore(raw)
    event = s.ses_event(
        headers=[("Received", f"from h (h [{world.GOOD_IP}]) by {s.RECEIVER} with SMTP"), ("DKIM-Signature", "x")],
        mail_from="alice@nospf.test",
        recipients=["bob@tenant.test"],
        message_id="big",
    )
    with mock.patch.object(gate, "messages", spy):
        decision = gate.evaluate(parse_event(event))
    assert spy.limits and set(spy.limits) == {max_bytes}
    assert decision.checks.dkim.result is not Result.PASS


def test_a_client_without_ptr_is_never_accepted_whatever_its_spf_record_costs(prop_world: PropWorld) -> None:
    """A sender's SPF record (here ~211 queries for an IPv6 client) must not spend the PTR lookup's queries.

    Regression test: with one cap shared by the three checks, the PTR lookup lost this race in about
    half of all runs and the client was accepted ("iprev temperror decides"). The iprev check is started
    late here, after SPF has spent its queries, which is the losing order.
    """
    gate = prop_world.gate()
    event = world.ses_event(ip=world.NO_PTR_IP, mail_from="alice@boom.test", helo="mail.boom.test")
    real_iprev = gate_module.check_iprev

    def late_iprev(session: Any, *args: Any) -> Any:
        threading.Event().wait(0.1)
        return real_iprev(session, *args)

    with mock.patch.object(gate_module, "check_iprev", late_iprev):
        decision = gate.evaluate(parse_event(event))
    assert [v.verdict for v in decision.verdicts] == [Verdict.REJECT], decision.to_dict()


def test_an_oversize_message_is_not_a_temporary_failure(prop_world: PropWorld) -> None:
    """Regression test: over MESSAGE_MAX_BYTES on every retry, so not temperror (which accepted by default)."""
    raw = world.sign(world.message(body="x" * 5000), prop_world.keys)
    event = s.ses_event(
        headers=[("Received", f"from h (h [{world.OTHER_IP}]) by {s.RECEIVER} with SMTP"), ("DKIM-Signature", "x")],
        mail_from="alice@nospf.test",  # no SPF record: only DKIM could authenticate
        recipients=["bob@tenant.test"],
        message_id="oversize",
    )
    prop_world.messages.messages["oversize"] = raw
    decision = prop_world.gate(message_max_bytes=4096).evaluate(parse_event(event))
    assert decision.checks.dkim.result is not Result.TEMPERROR, decision.checks.dkim.reason
