"""DNS sessions: one per check of a decision, each with its own query cap, all under the decision's deadline."""

from __future__ import annotations

import concurrent.futures as cf
import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdatatype
import dns.reversename

from ipv6gate.dns.model import Answer, Backend, DnsNameError, DnsTempError


@dataclass
class Deadline:
    """A point in monotonic time after which no more DNS is asked."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    start: float = field(init=False)

    def __post_init__(self) -> None:
        self.start = self.clock()

    def remaining(self) -> float:
        return self.seconds - (self.clock() - self.start)

    def elapsed(self) -> float:
        return self.clock() - self.start


class DnsResolver:
    """Long-lived (one per cold start): holds the backend and the limits; hands out sessions."""

    def __init__(self, backend: Backend, *, query_timeout: float, query_limit: int) -> None:
        self.backend = backend
        self.query_timeout = query_timeout
        self.query_limit = query_limit

    def session(self, deadline: Deadline) -> DnsSession:
        return DnsSession(self, deadline)


class DnsSession:
    """The DNS a single decision may use. Safe to share between the checks' threads."""

    def __init__(self, resolver: DnsResolver, deadline: Deadline) -> None:
        self._resolver = resolver
        self.deadline = deadline
        self._lock = threading.Lock()
        self.queries = 0
        self.temp_errors = 0
        self._cancelled = False
        self._early: dict[dns.name.Name, cf.Future[list[bytes]]] = {}  # TXT lookups asked ahead (``ask_txt_early``)

    def cancel(self) -> None:
        """The decision is made: any check still running gets a temporary error at its next query.

        Lookups asked early and not yet started are called off; one in flight ends with its query.
        """
        with self._lock:
            self._cancelled = True
            early, self._early = list(self._early.values()), {}
        for future in early:
            future.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def query(self, name: str | bytes | dns.name.Name, rdtype: str | dns.rdatatype.RdataType) -> Answer:
        qname = to_name(name)
        qtype = dns.rdatatype.RdataType.make(rdtype)
        remaining = self.deadline.remaining()
        with self._lock:
            if self._cancelled:
                raise DnsTempError("decision already made")
            if remaining <= 0:
                self.temp_errors += 1
                raise DnsTempError(f"decision time budget of {self.deadline.seconds:g}s spent")
            if self.queries >= self._resolver.query_limit:
                self.temp_errors += 1
                raise DnsTempError(f"DNS query limit of {self._resolver.query_limit} per check reached")
            self.queries += 1
        try:
            return self._resolver.backend.lookup(qname, qtype, min(self._resolver.query_timeout, remaining))
        except DnsTempError:
            with self._lock:
                self.temp_errors += 1
            raise

    def addresses(self, name: str | dns.name.Name, version: int) -> Answer:
        return self.query(name, "AAAA" if version == 6 else "A")

    def ptr(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Answer:
        return self.query(dns.reversename.from_address(str(address)), "PTR")

    def txt(self, name: str | bytes | dns.name.Name) -> list[bytes]:
        """Each TXT record's strings joined, as RFC 7208 and RFC 6376 both read them.

        A lookup of the same name asked early in this session is taken instead of a new query (its
        answer or its error, once); one that has not started yet is called off and asked now.
        """
        qname = to_name(name)
        with self._lock:
            early = self._early.pop(qname, None)
        if early is not None and not early.cancel():
            return early.result()
        return self._txt_now(qname)

    def ask_txt_early(self, name: str, submit: Callable[..., cf.Future[list[bytes]]]) -> None:
        """Start the TXT lookup of ``name`` now (through ``submit``, a pool's), for a later ``txt(name)``.

        Counted, capped and cancelled like any query of this session; a name asked already, a bad
        name or a pool that no longer takes work asks nothing (the later ``txt`` then asks itself).
        """
        try:
            qname = to_name(name)
        except DnsNameError:
            return
        with self._lock:
            if self._cancelled or qname in self._early:
                return
            try:
                self._early[qname] = submit(self._txt_now, qname)
            except RuntimeError:  # the pool is shut down (the server is stopping)
                return

    def _txt_now(self, qname: dns.name.Name) -> list[bytes]:
        answer = self.query(qname, "TXT")
        return [b"".join(rd.strings) for rd in answer.records]  # type: ignore[attr-defined]


def to_name(name: str | bytes | dns.name.Name) -> dns.name.Name:
    """An absolute DNS name, or ``DnsNameError`` naming what is wrong with it."""
    if isinstance(name, dns.name.Name):
        return name if name.is_absolute() else name.concatenate(dns.name.root)
    try:
        text = name.decode("ascii") if isinstance(name, bytes) else name
        if not text or text.startswith(".") or ".." in text:
            raise DnsNameError(f"not a domain name: {text!r}")
        return dns.name.from_text(text, origin=dns.name.root)
    except (UnicodeError, dns.exception.DNSException) as exc:
        raise DnsNameError(f"not a domain name: {name!r:.80} ({exc.__class__.__name__})") from None
