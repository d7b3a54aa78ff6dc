"""How ``NetworkBackend`` reads a reply (records, CNAME chains, how long to keep it) and keeps answers."""

from __future__ import annotations

import dns.message
import dns.name
import dns.rdatatype
import pytest

from ipv6gate.dns import Status
from ipv6gate.dns import cache as cache_module
from ipv6gate.dns.cache import AnswerCache
from ipv6gate.dns.model import Answer
from ipv6gate.dns.network import _negative_ttl, _read

NAME = dns.name.from_text("www.z.test")


def reply(
    rcode: str, answer: str = "", authority: str = "", question: str = "www.z.test. IN A"
) -> dns.message.QueryMessage:
    lines = ["id 1", "opcode QUERY", f"rcode {rcode}", "flags QR RD RA", ";QUESTION", question]
    lines += [";ANSWER", *answer.splitlines(), ";AUTHORITY", *authority.splitlines()]
    message = dns.message.from_text("\n".join(lines))
    assert isinstance(message, dns.message.QueryMessage)
    return message


SOA = "z.test. 3600 IN SOA ns.z.test. hostmaster.z.test. 1 3600 600 86400 {minimum}"


def test_records_and_their_ttl() -> None:
    records = "www.z.test. 120 IN A 192.0.2.1\nwww.z.test. 120 IN A 192.0.2.2"
    answer, ttl = _read(reply("NOERROR", records), NAME, dns.rdatatype.A)
    assert answer.status is Status.OK
    assert sorted(rd.address for rd in answer.records) == ["192.0.2.1", "192.0.2.2"]
    assert ttl == 120


def test_owner_name_case_does_not_matter_and_other_records_are_ignored() -> None:
    answer, _ = _read(
        reply("NOERROR", "other.z.test. 60 IN A 192.0.2.9\nWWW.Z.TEST. 60 IN A 192.0.2.1"), NAME, dns.rdatatype.A
    )
    assert [rd.address for rd in answer.records] == ["192.0.2.1"]


def test_cname_chain_is_followed_and_kept_for_its_shortest_ttl() -> None:
    chain = "www.z.test. 30 IN CNAME a.z.test.\na.z.test. 300 IN CNAME b.y.test.\nb.y.test. 600 IN A 192.0.2.7"
    answer, ttl = _read(reply("NOERROR", chain), NAME, dns.rdatatype.A)
    assert answer.status is Status.OK and answer.name == NAME
    assert [rd.address for rd in answer.records] == ["192.0.2.7"]
    assert ttl == 30


def test_cname_to_nothing_is_nodata() -> None:
    dangling = reply("NOERROR", "www.z.test. 30 IN CNAME a.z.test.", SOA.format(minimum=10))
    answer, ttl = _read(dangling, NAME, dns.rdatatype.A)
    assert answer.status is Status.NODATA and answer.empty
    assert ttl == 10


@pytest.mark.parametrize(("minimum", "expected"), [(60, 60), (86400, 3600)])
def test_negative_ttl_is_the_smaller_of_soa_ttl_and_minimum(minimum: int, expected: int) -> None:
    nodata, ttl = _read(reply("NOERROR", authority=SOA.format(minimum=minimum)), NAME, dns.rdatatype.A)
    assert nodata.status is Status.NODATA and ttl == expected
    assert _negative_ttl(reply("NXDOMAIN", authority=SOA.format(minimum=minimum)), NAME) == expected


def test_negative_answer_without_soa_is_not_kept() -> None:  # RFC 2308 §5
    assert _negative_ttl(reply("NXDOMAIN"), NAME) == 0
    assert _read(reply("NOERROR"), NAME, dns.rdatatype.A)[1] == 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(cache_module.time, "monotonic", fake)
    return fake


def answer(label: str) -> Answer:
    return Answer(dns.name.from_text(label), dns.rdatatype.A, Status.NXDOMAIN)


def test_cache_keeps_an_answer_for_its_ttl(clock: Clock) -> None:
    cache = AnswerCache(4)
    cache.put(b"a", answer("a"), 30)
    cache.put(b"none", answer("none"), 0)  # a TTL of 0: not kept
    clock.now += 29.9
    assert cache.get(b"a") == answer("a")
    assert cache.get(b"none") is None
    clock.now += 0.1
    assert cache.get(b"a") is None


def test_cache_drops_the_least_recently_used(clock: Clock) -> None:
    cache = AnswerCache(2)
    cache.put(b"a", answer("a"), 60)
    cache.put(b"b", answer("b"), 60)
    assert cache.get(b"a") is not None  # a is now the most recently used
    cache.put(b"c", answer("c"), 60)
    assert cache.get(b"b") is None
    assert cache.get(b"a") == answer("a") and cache.get(b"c") == answer("c")


def test_another_zones_soa_does_not_keep_a_name_out_and_no_soa_keeps_it_past_three_hours() -> None:
    foreign = "attacker.example. 999999 IN SOA ns.attacker.example. h.attacker.example. 1 1 1 1 999999"
    assert _negative_ttl(reply("NXDOMAIN", authority=foreign), NAME) == 0
    huge = "z.test. 999999 IN SOA ns.z.test. hostmaster.z.test. 1 3600 600 86400 999999"
    assert _negative_ttl(reply("NXDOMAIN", authority=huge), NAME) == 3 * 3600
