"""The milter asks a DKIM key as its DKIM-Signature header arrives, in the session the DKIM check verifies with."""

from __future__ import annotations

import threading
import time

import dns.rdatatype

from devstack import world
from ipv6gate.checks.dkim import check_dkim
from ipv6gate.dns import Deadline, DnsResolver
from ipv6gate.evaluation.staged import SmtpGate
from ipv6gate.ports.memory import InMemoryTenants
from ipv6gate.settings import Settings
from ipv6gate.wiring import assemble_smtp_gate
from tests.unit.test_staged import feed_message

KEY = "rsa._domainkey.good.test."


class _Seen:
    """The test world's zone answers; TXT lookups under ``_domainkey`` recorded, and held while ``hold`` is clear."""

    def __init__(self, keys: world.Keys) -> None:
        self.inner = world.zone_backend(keys)
        self.keys: list[str] = []
        self.asked = threading.Event()
        self.hold = threading.Event()
        self.hold.set()

    def lookup(self, name, rdtype, timeout):
        if rdtype == dns.rdatatype.TXT and "._domainkey." in name.to_text():
            self.keys.append(name.to_text().lower())
            self.asked.set()
            self.hold.wait(5)
        return self.inner.lookup(name, rdtype, timeout)


def _gate(backend: _Seen, workers: int = 6) -> SmtpGate:
    settings = Settings.from_env({"AWS_REGION": "eu-west-1"})
    resolver = DnsResolver(backend, query_timeout=1.0, query_limit=60)
    return assemble_smtp_gate(settings, resolver, InMemoryTenants(_tenants()), check_threads=workers)


def _tenants() -> list:
    from ipv6gate.decision.tenants import Tenant

    return [Tenant("tenant.test", ipv6_inbound=True)]


def _headers(raw: bytes) -> list[tuple[bytes, bytes]]:
    head = raw.partition(b"\r\n\r\n")[0]
    fields: list[list[bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            fields[-1][1] += b"\n" + line
        else:
            name, _, value = line.partition(b":")
            fields.append([name, value])
    return [(n, v) for n, v in fields]


def test_the_key_is_asked_when_its_header_arrives_and_asked_only_once(keys: world.Keys) -> None:
    backend = _Seen(keys)
    raw = world.sign(world.message(), keys)  # SPF fails for OTHER_IP: DKIM decides
    session = _gate(backend).connect(world.OTHER_IP)
    session.mail_from("<alice@good.test>")
    assert session.rcpt("<bob@tenant.test>") is None
    for name, value in _headers(raw):
        session.header(name, value)
        if name.lower() == b"dkim-signature":
            assert backend.asked.wait(2), "no key lookup started at the DKIM-Signature header"
    feed_message_body_only(session, raw)
    outcome = session.end_of_message("Q")
    assert outcome.reply is None
    assert outcome.decision.checks.dkim.result.value == "pass"
    assert backend.keys == [KEY]  # the check took the early answer: no second query


def feed_message_body_only(session, raw: bytes) -> None:
    session.end_of_headers()
    session.body(raw.partition(b"\r\n\r\n")[2])


def test_a_forged_extra_signature_changes_nothing(keys: world.Keys) -> None:
    """A DKIM-Signature naming another key (asked early too) gives the verdict and reason the plain check gives."""
    forged = b"DKIM-Signature: v=1; a=rsa-sha256; d=good.test; s=nokey; h=from; bh=AAAA; b=AAAA\r\n"
    raw = forged + world.sign(world.message(), keys)
    backend = _Seen(keys)
    session = _gate(backend).connect(world.OTHER_IP)
    session.mail_from("<alice@good.test>")
    assert session.rcpt("<bob@tenant.test>") is None
    feed_message(session, raw)
    early = session.end_of_message("Q").decision.checks.dkim

    plain = check_dkim(
        DnsResolver(world.zone_backend(keys), query_timeout=1.0, query_limit=60).session(Deadline(5)),
        raw,
        max_signatures=5,
    )
    assert (early.result, early.reason) == (plain.result, plain.reason)
    assert early.result.value == "pass"
    assert sorted(backend.keys) == sorted(["nokey._domainkey.good.test.", KEY])  # each asked once


def test_an_aborted_transaction_calls_its_early_lookups_off(keys: world.Keys) -> None:
    """One pool thread: the first key is in flight (held), the second waits; the abort calls the second off."""
    second = b"DKIM-Signature: v=1; a=rsa-sha256; d=good.test; s=second; h=from; bh=AAAA; b=AAAA\r\n"
    raw = world.sign(world.message(), keys).replace(b"\r\n\r\n", b"\r\n" + second.rstrip(b"\r\n") + b"\r\n\r\n", 1)
    backend = _Seen(keys)
    backend.hold.clear()
    session = _gate(backend, workers=1).connect(world.OTHER_IP)
    session.mail_from("<alice@good.test>")
    assert session.rcpt("<bob@tenant.test>") is None
    for name, value in _headers(raw):
        session.header(name, value)
    assert backend.asked.wait(2)
    session.reset()  # the abort: the transaction ends before the message
    backend.hold.set()
    time.sleep(0.3)  # the one pool thread would now run the second lookup, were it not called off
    assert backend.keys == [KEY]
