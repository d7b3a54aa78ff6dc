"""The OpenSPF RFC 7208 test suite (rfc7208-tests.yml), run through the project's own DNS layer and SPF check.

Each YAML document's ``zonedata`` becomes one dnspython zone at the root, served by ``ZoneBackend``
behind a ``DnsResolver``; each test then calls ``check_spf`` exactly as the gate does. Conventions
of the suite (those of pyspf's ``test/testspf.py`` driver) that the zone building reproduces:

- ``SPF`` entries are served as type SPF (99) and also as TXT, unless the name lists a TXT of its own;
  ``TXT: NONE`` means "this name has no TXT record", and suppresses the generated ones too.
- a TXT/SPF value that is a list is the several strings of one record; strings are encoded to
  bytes as Latin-1 when possible, so ``"\\xEF\\xBB\\xBF"`` in the YAML becomes those three octets.
- a bare ``TIMEOUT`` means queries for that name time out (``ZoneBackend(timeouts=...)``). In the
  pyspf driver a TIMEOUT only affects the types the name does not list; ``ZoneBackend`` times out
  every type, so names that list records *and* TIMEOUT get the driver's semantics from a thin
  wrapper (``_TypedTimeouts``) that answers the listed types from the zone and times out the rest.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SPF
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.zone
import pytest
import yaml

from ipv6gate.checks.spf import check_spf
from ipv6gate.dns import Answer, Backend, Deadline, DnsNameError, DnsResolver, DnsTempError
from ipv6gate.dns.session import to_name
from ipv6gate.dns.zones import ZoneBackend

SUITE = Path(__file__).with_name("rfc7208-tests.yml")
EXPECTED_DOCUMENTS = 16
EXPECTED_TESTS = 203
IN = dns.rdataclass.IN
TTL = 300

# dnspython's rdata constructors are untyped; pin the one signature used here.
_Make = Callable[..., dns.rdata.Rdata]
_A: _Make = dns.rdtypes.IN.A.A
_AAAA: _Make = dns.rdtypes.IN.AAAA.AAAA
_MX: _Make = dns.rdtypes.ANY.MX.MX
_PTR: _Make = dns.rdtypes.ANY.PTR.PTR
_CNAME: _Make = dns.rdtypes.ANY.CNAME.CNAME


@dataclass(frozen=True)
class Case:
    id: str
    document: str
    name: str
    helo: str
    host: str
    mailfrom: str
    accepted: tuple[str, ...]
    resolver: DnsResolver


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _octets(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _strings(value: str | list[str]) -> list[bytes]:
    parts = [value] if isinstance(value, str) else list(value)
    # The suite's "SPF: []" is an empty record; DNS (and dnspython) need at least one string per
    # TXT record, and a single empty string joins to the same empty text.
    return [_octets(p) for p in parts] or [b""]


def _target(text: str) -> dns.name.Name:
    # "MX: [0, '']" is a host-less MX; the only DNS form of that is the root (a null MX, RFC 7505).
    return dns.name.root if text in ("", ".") else to_name(text)


def _rdata(kind: str, value: Any) -> dns.rdata.Rdata:
    t = dns.rdatatype.RdataType
    if kind == "A":
        return _A(IN, t.A, str(value))
    if kind == "AAAA":
        return _AAAA(IN, t.AAAA, str(value))
    if kind == "MX":
        preference, exchange = value
        return _MX(IN, t.MX, int(preference), _target(str(exchange)))
    if kind == "PTR":
        return _PTR(IN, t.PTR, _target(str(value)))
    if kind == "CNAME":
        return _CNAME(IN, t.CNAME, _target(str(value)))
    if kind == "TXT":
        return dns.rdtypes.ANY.TXT.TXT(IN, t.TXT, _strings(value))
    if kind == "SPF":
        return dns.rdtypes.ANY.SPF.SPF(IN, t.SPF, _strings(value))
    raise ValueError(f"unknown record type in zonedata: {kind}")


class _TypedTimeouts:
    """The driver's TIMEOUT next to records: listed types answer, every other type times out."""

    def __init__(self, inner: Backend, served: dict[dns.name.Name, frozenset[dns.rdatatype.RdataType]]) -> None:
        self._inner = inner
        self._served = served

    def lookup(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, timeout: float) -> Answer:
        served = self._served.get(name)
        if served is not None and rdtype not in served:
            raise DnsTempError(f"timeout asking {name} {rdtype.name}")
        return self._inner.lookup(name, rdtype, timeout)


def build_backend(zonedata: dict[str, list[Any]]) -> Backend:
    zone = dns.zone.Zone(origin=dns.name.root, relativize=False)
    timeouts: list[dns.name.Name] = []
    partial: dict[dns.name.Name, frozenset[dns.rdatatype.RdataType]] = {}
    for owner_text, entries in zonedata.items():
        try:
            owner = to_name(owner_text)
        except DnsNameError:
            # Not a DNS name at all (none in the 2014.04 suite): the project could never ask for
            # it either, so its records are left out.
            continue
        records: list[tuple[str, Any]] = [
            (kind, value) for entry in entries if isinstance(entry, dict) for kind, value in entry.items()
        ]
        has_own_txt = any(kind == "TXT" for kind, _ in records)
        rdatas: list[dns.rdata.Rdata] = []
        for kind, value in records:
            if value == "NONE":
                continue
            rdatas.append(_rdata(kind, value))
            if kind == "SPF" and not has_own_txt:
                rdatas.append(_rdata("TXT", value))
        for rd in rdatas:
            zone.find_rdataset(owner, rd.rdtype, create=True).add(rd, TTL)
        if "TIMEOUT" in entries:
            if rdatas:
                partial[owner] = frozenset(rd.rdtype for rd in rdatas)
            else:
                timeouts.append(owner)
    backend: Backend = ZoneBackend([zone], timeouts=timeouts)
    return _TypedTimeouts(backend, partial) if partial else backend


def load_suite() -> tuple[int, list[Case]]:
    with SUITE.open(encoding="utf-8") as fh:
        documents: list[dict[str, Any]] = [d for d in yaml.safe_load_all(fh) if d is not None]
    cases: list[Case] = []
    for document in documents:
        description = str(document["description"])
        resolver = DnsResolver(build_backend(document.get("zonedata") or {}), query_timeout=1.0, query_limit=200)
        for name, test in document["tests"].items():
            result = test["result"]
            accepted = (result,) if isinstance(result, str) else tuple(result)
            cases.append(
                Case(
                    id=f"{_slug(description)}/{name}",
                    document=description,
                    name=str(name),
                    helo=str(test["helo"]),
                    host=str(test["host"]),
                    mailfrom=str(test["mailfrom"]),
                    accepted=accepted,
                    resolver=resolver,
                )
            )
    return len(documents), cases


DOCUMENTS, CASES = load_suite()


def _ids(cases: Iterable[Case]) -> list[str]:
    return [c.id for c in cases]


def test_suite_loaded_completely() -> None:
    assert DOCUMENTS == EXPECTED_DOCUMENTS
    assert len(CASES) == EXPECTED_TESTS
    assert len(set(_ids(CASES))) == EXPECTED_TESTS


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_rfc7208(case: Case) -> None:
    session = case.resolver.session(Deadline(10.0))
    outcome = check_spf(session, ipaddress.ip_address(case.host), case.mailfrom, case.helo, void_limit=2)
    assert outcome.result.value in case.accepted, (
        f"{case.id}: got {outcome.result.value} ({outcome.reason!r}), suite accepts {list(case.accepted)}"
    )
