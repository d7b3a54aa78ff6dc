"""DNS sessions: one per check of a decision, each with its own query cap, all under the decision's deadline."""

from __future__ import annotations

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

    def cancel(self) -> None:
        """The decision is made: any check still running gets a temporary error at its next query."""
        self._cancelled = True

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
        """Each TXT record's strings joined, as RFC 7208 and RFC 6376 both read them."""
        answer = self.query(name, "TXT")
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
