"""Answers from zone files (offline demo, unit tests) with the semantics an authoritative server has."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from ipv6gate.dns.model import Answer, DnsTempError, Status

_MAX_CNAME_CHAIN = 8


class ZoneBackend:
    """Serves names from dnspython ``Zone`` objects: CNAME chasing, simple wildcards, NXDOMAIN/NODATA.

    Names in ``timeouts`` behave like an unresponsive server, for tests of temporary failures.
    A name outside every zone is NXDOMAIN, as if the (absent) internet had nothing there.
    """

    def __init__(self, zones: Iterable[dns.zone.Zone], timeouts: Iterable[dns.name.Name] = ()) -> None:
        # Longest origin first, so a child zone wins over its parent.
        self._zones = sorted(zones, key=lambda z: len(z.origin or dns.name.root), reverse=True)
        self._timeouts = frozenset(timeouts)

    @classmethod
    def from_directory(cls, directory: str | Path) -> ZoneBackend:
        """Load every ``<origin>.zone`` file in ``directory`` (the file name gives the origin)."""
        folder = Path(directory)
        if not folder.is_dir():
            raise ValueError(f"DNS_ZONE_DIR: {folder} is not a directory")
        zones = []
        for path in sorted(folder.glob("*.zone")):
            origin = path.name.removesuffix(".zone")
            try:
                zones.append(dns.zone.from_file(str(path), origin=origin, relativize=False))
            except dns.exception.DNSException as exc:
                raise ValueError(f"DNS_ZONE_DIR: {path.name}: {exc}") from None
        if not zones:
            raise ValueError(f"DNS_ZONE_DIR: no *.zone files in {folder}")
        return cls(zones)

    def lookup(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, timeout: float) -> Answer:
        qname = name
        for _ in range(_MAX_CNAME_CHAIN):
            if qname in self._timeouts:
                raise DnsTempError(f"timeout asking {qname} {rdtype.name}")
            zone = self._zone_for(qname)
            node = self._node(zone, qname) if zone is not None else None
            if node is None:
                return Answer(name, rdtype, Status.NXDOMAIN)
            rdataset = node.get_rdataset(dns.rdataclass.IN, rdtype)
            if rdataset is not None:
                return Answer(name, rdtype, Status.OK, tuple(rdataset))
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None or rdtype == dns.rdatatype.CNAME:
                return Answer(name, rdtype, Status.NODATA)
            qname = next(iter(cname)).target
        # A loop or an over-long chain: a recursive server answers SERVFAIL.
        raise DnsTempError(f"CNAME chain from {name} longer than {_MAX_CNAME_CHAIN}")

    def _zone_for(self, name: dns.name.Name) -> dns.zone.Zone | None:
        for zone in self._zones:
            if zone.origin is not None and name.is_subdomain(zone.origin):
                return zone
        return None

    @staticmethod
    def _node(zone: dns.zone.Zone, name: dns.name.Name) -> dns.node.Node | None:
        node = zone.get_node(name)
        if node is not None:
            return node
        # Wildcard synthesis (RFC 4592), simplified: the nearest "*.ancestor" that exists,
        # provided no closer ancestor exists as a node of its own.
        assert zone.origin is not None
        parent = name
        while parent != zone.origin and len(parent) > 1:
            parent = parent.parent()
            wildcard = zone.get_node(dns.name.Name((b"*", *parent.labels)))
            if wildcard is not None:
                return wildcard
            if zone.get_node(parent) is not None:
                return None
        return None
