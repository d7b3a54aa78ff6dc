"""Answers from real DNS servers through dnspython's stub resolver."""

from __future__ import annotations

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from ipv6gate.dns.model import Answer, DnsServer, DnsTempError, Status


class NetworkBackend:
    """dnspython's resolver: retries over TCP when a UDP answer is truncated, and caches by TTL.

    The cache (``cache_size`` entries, LRU) lives as long as the backend, i.e. across the warm
    invocations of one Lambda container; dnspython keeps each answer, negative ones included,
    only for its TTL (for NXDOMAIN/NODATA the SOA minimum, RFC 2308).
    """

    def __init__(self, servers: tuple[DnsServer, ...] = (), *, cache_size: int = 4096) -> None:
        try:
            self._resolver = dns.resolver.Resolver(configure=not servers)
        except dns.resolver.NoResolverConfiguration as exc:
            raise DnsTempError(f"no system resolver configured and DNS_SERVERS unset: {exc}") from None
        if servers:
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(s.host, s.port) for s in servers]
        self._resolver.cache = dns.resolver.LRUCache(cache_size) if cache_size else None

    def lookup(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, timeout: float) -> Answer:
        try:
            answer = self._resolver.resolve(name, rdtype, lifetime=timeout, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return Answer(name, rdtype, Status.NXDOMAIN)
        except dns.resolver.LifetimeTimeout:
            raise DnsTempError(f"timeout after {timeout:.2g}s asking {name} {rdtype.name}") from None
        except dns.resolver.NoNameservers:
            raise DnsTempError(f"no server answered {name} {rdtype.name} (SERVFAIL or refused)") from None
        except dns.exception.DNSException as exc:
            raise DnsTempError(f"{name} {rdtype.name}: {exc.__class__.__name__}") from None
        if answer.rrset is None:
            return Answer(name, rdtype, Status.NODATA)
        return Answer(name, rdtype, Status.OK, tuple(answer.rrset))
