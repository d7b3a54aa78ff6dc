"""Answers from real DNS servers through dnspython's stub resolver."""

from __future__ import annotations

import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.query
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

    def probe(self, timeout: float) -> None:
        """One query (the root's SOA) to each server; ``DnsTempError`` names those that did not answer.

        Any response counts, whatever its rcode: it shows the server is there (an authoritative
        server refuses the root); timeouts and unreachable servers are what this catches.
        """
        silent = []
        for server in self._resolver.nameservers:
            address, port = getattr(server, "address", str(server)), getattr(server, "port", 53)
            query = dns.message.make_query(dns.name.root, dns.rdatatype.SOA)
            try:
                dns.query.udp(query, address, timeout=timeout, port=port)
            except (dns.exception.DNSException, OSError) as exc:
                why = "no answer" if isinstance(exc, dns.exception.Timeout) else str(exc) or type(exc).__name__
                silent.append(f"{address}:{port} ({why} within {timeout:g}s)")
        if silent:
            raise DnsTempError(f"DNS server not answering: {', '.join(silent)}")
