"""Answers from real DNS servers, asked with dnspython's message and query functions.

Not ``dns.resolver.Resolver``: for an IPv6 PTR name (34 labels) its query's wire form (name
compression) and its walk up the name for an NXDOMAIN's SOA cost about a millisecond of CPU per
query, most of the gate's own time on a decision. Here the query's wire form is ``wire.py``'s, the
answer is read in one pass over the sections, and dnspython still sends, receives, matches and
parses every message (and follows CNAME chains). The resolver's behaviour is kept: servers tried in
turn with a growing back-off between rounds, a server dropped after a SERVFAIL, refusal or
unreadable reply, TCP after a truncated UDP answer, answers cached for their TTL.
"""

from __future__ import annotations

import socket
import time
from typing import cast

import dns.exception
import dns.inet
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.resolver

from ipv6gate.dns import wire
from ipv6gate.dns.cache import AnswerCache
from ipv6gate.dns.model import Answer, DnsServer, DnsTempError, Status

_MAX_NEGATIVE_TTL = 3 * 3600.0
_ATTEMPT_TIMEOUT = 2.0  # the longest wait on one server before the next is asked (dnspython's default)
_FIRST_BACKOFF, _MAX_BACKOFF = 0.1, 2.0  # pause before asking the servers again (dnspython's)
# What makes a server useless for this question (dnspython's resolver drops it too); a timeout does not.
_BROKEN = (dns.exception.DNSException, EOFError, OSError)


class NetworkBackend:
    """Asks ``servers`` (or those of /etc/resolv.conf) in turn; caches answers by TTL.

    The cache (``cache_size`` answers, LRU) lives as long as the backend, i.e. across the warm
    invocations of one Lambda container. Each answer is kept for its TTL, negative ones for
    min(SOA TTL, SOA MINIMUM, 3 h) (RFC 2308), and a negative answer without its zone's SOA is not
    kept; a CNAME chain that ends in no data is kept for the chain's shortest TTL.
    """

    def __init__(self, servers: tuple[DnsServer, ...] = (), *, cache_size: int = 4096) -> None:
        self.servers = servers or _system_servers()
        self._cache = AnswerCache(cache_size) if cache_size else None

    def lookup(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, timeout: float) -> Answer:
        try:
            question = wire.question(name, rdtype)
        except dns.exception.DNSException as exc:
            raise DnsTempError(f"{name} {rdtype.name}: {exc.__class__.__name__}") from None
        key = wire.cache_key(question)
        if self._cache is not None and (cached := self._cache.get(key)) is not None:
            return cached
        answer, ttl = self._ask(name, rdtype, question, timeout)
        if self._cache is not None:
            self._cache.put(key, answer, ttl)
        return answer

    def _ask(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, question: bytes, timeout: float
    ) -> tuple[Answer, float]:
        query = dns.message.make_query(name, rdtype)  # never written out over UDP: it matches the reply
        packet = wire.query(query.id, query.flags, question)
        deadline = time.monotonic() + timeout
        usable = list(self.servers)
        backoff = 0.0
        while usable:
            if backoff:
                if deadline - time.monotonic() <= backoff:
                    raise _timed_out(name, rdtype, timeout)
                time.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF) if backoff else _FIRST_BACKOFF
            this_round = tuple(usable)
            for server in this_round:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _timed_out(name, rdtype, timeout)
                # Each server gets up to the attempt's time, as dnspython gave it: a share of the query's
                # time (remaining / servers left) threw away slow but working servers' answers.
                try:
                    response = _exchange(query, packet, server, min(_ATTEMPT_TIMEOUT, remaining))
                    rcode = response.rcode()
                    if rcode == dns.rcode.NXDOMAIN:
                        return Answer(name, rdtype, Status.NXDOMAIN), _negative_ttl(response, name)
                    if rcode == dns.rcode.NOERROR:
                        return _read(response, name, rdtype)
                except dns.exception.Timeout:
                    continue
                except _BROKEN:
                    usable.remove(server)
                    continue
                if rcode == dns.rcode.YXDOMAIN:
                    raise DnsTempError(f"{name} {rdtype.name}: YXDOMAIN")
                usable.remove(server)  # SERVFAIL, REFUSED, NOTIMP, FORMERR: not asked again
        raise DnsTempError(f"no server answered {name} {rdtype.name} (SERVFAIL or refused)")

    def probe(self, timeout: float) -> None:
        """One query (the root's SOA) to each server; ``DnsTempError`` names those that did not answer.

        Any response counts, whatever its rcode: it shows the server is there (an authoritative
        server refuses the root); timeouts and unreachable servers are what this catches.
        """
        silent = []
        for server in self.servers:
            query = dns.message.make_query(dns.name.root, dns.rdatatype.SOA)
            try:
                dns.query.udp(query, server.host, timeout=timeout, port=server.port)
            except (dns.exception.DNSException, OSError) as exc:
                why = "no answer" if isinstance(exc, dns.exception.Timeout) else str(exc) or type(exc).__name__
                silent.append(f"{server.host}:{server.port} ({why} within {timeout:g}s)")
        if silent:
            raise DnsTempError(f"DNS server not answering: {', '.join(silent)}")


def _system_servers() -> tuple[DnsServer, ...]:
    try:
        system = dns.resolver.Resolver()
    except dns.resolver.NoResolverConfiguration as exc:
        raise DnsTempError(f"no system resolver configured and DNS_SERVERS unset: {exc}") from None
    return tuple(
        DnsServer(ns, system.nameserver_ports.get(ns, system.port)) for ns in system.nameservers if isinstance(ns, str)
    )


def _timed_out(name: dns.name.Name, rdtype: dns.rdatatype.RdataType, timeout: float) -> DnsTempError:
    return DnsTempError(f"timeout after {timeout:.2g}s asking {name} {rdtype.name}")


def _exchange(query: dns.message.Message, packet: bytes, server: DnsServer, timeout: float) -> dns.message.QueryMessage:
    """``packet`` (``query``'s wire form) over UDP, again over TCP if the answer is truncated.

    The socket is connected, so the kernel drops datagrams from elsewhere and an ICMP refusal
    ends the wait at once; ``receive_udp`` skips replies that do not match ``query``.
    """
    expiration = time.time() + timeout
    with socket.socket(dns.inet.af_for_address(server.host), socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect((server.host, server.port))
        dns.query.send_udp(sock, packet, None, expiration)
        try:
            # With no destination given: (message, time received, sender).
            response = dns.query.receive_udp(
                sock,
                None,
                expiration,
                ignore_unexpected=True,
                raise_on_truncation=True,
                ignore_errors=True,
                query=query,
            )
        except dns.message.Truncated:
            left = expiration - time.time()
            if left <= 0:
                raise dns.exception.Timeout from None
            return cast(dns.message.QueryMessage, dns.query.tcp(query, server.host, timeout=left, port=server.port))
    return cast(dns.message.QueryMessage, response[0])


def _read(
    response: dns.message.QueryMessage, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> tuple[Answer, float]:
    """A NOERROR reply: the records and how long they may be kept."""
    for rrset in response.answer:
        if rrset.rdtype == rdtype and rrset.rdclass == dns.rdataclass.IN and rrset.name == name:
            return Answer(name, rdtype, Status.OK, tuple(rrset)), rrset.ttl
    if any(rrset.rdtype == dns.rdatatype.CNAME for rrset in response.answer):
        chain = response.resolve_chaining()
        if chain.answer is not None:
            return Answer(name, rdtype, Status.OK, tuple(chain.answer)), chain.minimum_ttl
        return Answer(name, rdtype, Status.NODATA), chain.minimum_ttl
    return Answer(name, rdtype, Status.NODATA), _negative_ttl(response, name)


def _negative_ttl(response: dns.message.Message, name: dns.name.Name) -> float:
    """RFC 2308 §5: min(SOA TTL, SOA MINIMUM) of the SOA in the authority section, capped at three
    hours (§5's suggestion); 0 without one. The SOA must be of a zone above ``name``, as dnspython
    required: a server cannot have another zone's SOA keep a name out of the cache for days."""
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and rrset and name.is_subdomain(rrset.name):
            soa = cast(dns.rdtypes.ANY.SOA.SOA, rrset[0])
            return min(rrset.ttl, soa.minimum, _MAX_NEGATIVE_TTL)
    return 0.0
