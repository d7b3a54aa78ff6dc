"""The query's wire form written by ``ipv6gate.dns.wire`` is dnspython's, byte for byte."""

from __future__ import annotations

import ipaddress

import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import dns.reversename
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ipv6gate.dns import wire

# Any octets in a label (dnspython escapes them), any case, up to DNS's 255-octet limit.
labels = st.binary(min_size=1, max_size=63)
random_names = (
    st.lists(labels, min_size=0, max_size=8)
    .map(lambda ls: dns.name.Name([*ls, b""]))
    .filter(lambda n: len(n.to_wire() or b"") <= 255)
)
ptr_names = st.ip_addresses(v=6).map(lambda ip: dns.reversename.from_address(str(ip)))  # 34 labels
rdtypes = st.sampled_from([dns.rdatatype.PTR, dns.rdatatype.TXT, dns.rdatatype.A, dns.rdatatype.AAAA, 65535])
flag_sets = st.sampled_from([dns.flags.RD, 0, dns.flags.RD | dns.flags.CD, dns.flags.AD | dns.flags.RD])


@settings(max_examples=300, deadline=None)
@given(name=random_names | ptr_names, rdtype=rdtypes, qid=st.integers(0, 0xFFFF), flags=flag_sets)
@example(name=dns.reversename.from_address("2001:db8::25"), rdtype=dns.rdatatype.PTR, qid=0, flags=dns.flags.RD)
@example(name=dns.name.root, rdtype=dns.rdatatype.TXT, qid=0xFFFF, flags=0)
def test_query_equals_dnspythons_and_parses_the_same(
    name: dns.name.Name, rdtype: dns.rdatatype.RdataType, qid: int, flags: int
) -> None:
    rdtype = dns.rdatatype.RdataType.make(rdtype)
    theirs = dns.message.make_query(name, rdtype, id=qid, flags=flags)
    ours = wire.query(qid, flags, wire.question(name, rdtype))

    assert ours == theirs.to_wire()
    parsed = dns.message.from_wire(ours)
    assert parsed == theirs  # id, flags, sections
    assert parsed.question[0].name == name and parsed.question[0].rdtype == rdtype


@settings(max_examples=100, deadline=None)
@given(ip=st.ip_addresses(v=6), other=st.ip_addresses(v=6), rdtype=rdtypes)
def test_cache_key_ignores_case_and_nothing_else(
    ip: ipaddress.IPv6Address, other: ipaddress.IPv6Address, rdtype: dns.rdatatype.RdataType
) -> None:
    rdtype = dns.rdatatype.RdataType.make(rdtype)
    name = dns.reversename.from_address(str(ip))
    upper = dns.name.from_text(name.to_text().upper())
    assert wire.cache_key(wire.question(upper, rdtype)) == wire.cache_key(wire.question(name, rdtype))
    assert wire.question(upper, rdtype) != wire.question(name, rdtype)  # the query keeps the spelling

    other_name = dns.reversename.from_address(str(other))
    same = other_name == name
    assert (wire.cache_key(wire.question(other_name, rdtype)) == wire.cache_key(wire.question(name, rdtype))) is same
    assert wire.cache_key(wire.question(name, dns.rdatatype.SOA)) != wire.cache_key(wire.question(name, rdtype))
