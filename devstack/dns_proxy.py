"""A loopback DNS proxy that adds latency: every query waits ``delay`` seconds, then goes upstream.

Put it in front of the Knot server of the tests (``KnotServer``) to give DNS a realistic round trip,
so that latency can be counted in units of one query, and to inject faults per name::

    with KnotServer(zone_dir) as knot, DelayingDnsProxy.front(knot, delay=0.05) as proxy:
        env = {"DNS_SERVERS": proxy.servers_env}
        proxy.slow("_spf.example.test", 2.0)     # answered 2 s later than the others
        proxy.drop("gone.example.test")          # never answered: the client times out
        proxy.servfail("broken.example.test")    # answered SERVFAIL (after the delay)
        ...
        proxy.count("example.test", "TXT"), proxy.queries

- UDP and TCP on the same port of a loopback address (``127.0.0.1`` or ``::1``); the upstream must
  be on loopback too. A truncated UDP answer is passed on as it is, so the client retries over TCP
  (through the proxy: two queries are counted).
- Each query is handled on a thread of its own, so the delays of concurrent queries overlap: ten
  queries sent at once are all answered after about one ``delay``, not ten. (Queries pipelined on
  one TCP connection are answered in turn; stub resolvers open a connection per query.)
- Counts every query it receives, dropped ones included: in total, per transport, and per
  ``(qname, qtype)`` (lower-case absolute names such as ``"www.example.test."``); ``log`` keeps the
  last 10,000 queries with the monotonic times they arrived and were answered (for timelines).
- Bounded: it stops by itself after ``lifetime`` seconds, and it handles at most ``max_inflight``
  queries at once (beyond that a query is dropped and counted in ``overflow``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, Self

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from devstack.service import Service

__all__ = ["DelayingDnsProxy", "Fault", "QueryRecord"]

_POLL = 0.05  # how often the serving loops look at the stop flag and the lifetime


class Fault(StrEnum):
    DROP = "drop"  # never answered
    SERVFAIL = "servfail"  # answered SERVFAIL without asking upstream
    SLOW = "slow"  # forwarded after delay + extra


@dataclass(frozen=True, slots=True)
class QueryRecord:
    """One query as the proxy saw it; times are ``time.monotonic()``."""

    received: float
    answered: float | None  # None: never answered (dropped, or the proxy stopped first)
    qname: str
    qtype: str
    transport: str
    fate: str  # "forwarded", "servfail", "dropped", "upstream-error", "stopped"


@dataclass(frozen=True, slots=True)
class _Rule:
    name: dns.name.Name
    qtype: dns.rdatatype.RdataType | None
    subtree: bool
    fault: Fault
    extra: float = 0.0

    def matches(self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType) -> bool:
        if self.qtype is not None and qtype != self.qtype:
            return False
        return qname.is_subdomain(self.name) if self.subtree else qname == self.name


class _HasAddress(Protocol):
    host: str
    port: int


def _loopback(host: str, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{what} {host!r} is not an IP address") from None
    if not address.is_loopback:
        raise ValueError(f"{what} {host!r} is not a loopback address: the proxy only works on loopback")
    return address


def _name(value: str | dns.name.Name) -> dns.name.Name:
    if isinstance(value, dns.name.Name):
        return value if value.is_absolute() else value.concatenate(dns.name.root)
    return dns.name.from_text(value, origin=dns.name.root)


def _key(name: str | dns.name.Name) -> str:
    return _name(name).to_text().lower()


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    """Exactly ``size`` bytes, or None when the peer closed the connection first."""
    chunks: list[bytes] = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


class DelayingDnsProxy(Service):
    """Forwards DNS queries to ``upstream_host:upstream_port`` after a fixed delay; a context manager."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        delay: float = 0.05,
        host: str = "127.0.0.1",
        port: int = 0,
        lifetime: float = 120.0,
        upstream_timeout: float = 2.0,
        max_inflight: int = 256,
    ) -> None:
        if delay < 0 or lifetime <= 0 or upstream_timeout <= 0 or max_inflight < 1:
            raise ValueError("delay must be >= 0; lifetime, upstream_timeout and max_inflight > 0")
        self._family = socket.AF_INET6 if _loopback(host, "proxy address").version == 6 else socket.AF_INET
        upstream_family = _loopback(upstream_host, "upstream").version
        self._upstream_family = socket.AF_INET6 if upstream_family == 6 else socket.AF_INET
        self.host = host
        self._wanted_port = port  # 0: any free one (a fixed 53 for resolvers that cannot be given a port)
        self.port = 0
        self.upstream = (upstream_host, upstream_port)
        self.delay = delay
        self.lifetime = lifetime
        self.upstream_timeout = upstream_timeout
        self._slots = threading.BoundedSemaphore(max_inflight)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._rules: list[_Rule] = []
        self._counts: Counter[tuple[str, str]] = Counter()
        self._transport: Counter[str] = Counter()
        self.log: deque[QueryRecord] = deque(maxlen=10_000)
        self._inflight = 0
        self.dropped = 0  # queries deliberately left unanswered (drop rules)
        self.servfails = 0  # SERVFAIL answers made by a rule
        self.overflow = 0  # queries dropped because max_inflight were being handled
        self.upstream_errors = 0  # upstream did not answer in time (the client got SERVFAIL)
        self.malformed = 0  # datagrams that were not DNS queries (not answered)
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._loops: list[threading.Thread] = []
        self._workers: set[threading.Thread] = set()
        self._expires = 0.0

    @classmethod
    def front(cls, server: _HasAddress, **options: Any) -> DelayingDnsProxy:
        """A proxy in front of anything with ``host`` and ``port`` (such as a running ``KnotServer``)."""
        return cls(server.host, server.port, **options)

    # -- what tests and the bench read ------------------------------------------------------------------
    @property
    def servers_env(self) -> str:
        """``127.0.0.1:PORT`` (or ``[::1]:PORT``), the form ``DNS_SERVERS`` reads."""
        return f"[{self.host}]:{self.port}" if self._family == socket.AF_INET6 else f"{self.host}:{self.port}"

    @property
    def queries(self) -> int:
        with self._lock:
            return sum(self._transport.values())

    @property
    def udp_queries(self) -> int:
        with self._lock:
            return self._transport["udp"]

    @property
    def tcp_queries(self) -> int:
        with self._lock:
            return self._transport["tcp"]

    @property
    def inflight(self) -> int:
        with self._lock:
            return self._inflight

    @property
    def running(self) -> bool:
        return bool(self._loops) and not self._stop.is_set() and time.monotonic() < self._expires

    def count(self, name: str | dns.name.Name, qtype: str = "A") -> int:
        """Queries received for ``name`` (case-insensitive, final dot optional) and ``qtype``."""
        with self._lock:
            return self._counts[(_key(name), qtype.upper())]

    def counts(self) -> dict[tuple[str, str], int]:
        """Every ``(qname, qtype)`` seen so far and how often."""
        with self._lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self._transport.clear()
            self.log.clear()
            self.dropped = self.servfails = self.overflow = self.upstream_errors = self.malformed = 0

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no query is being handled (delayed or forwarded); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    # -- faults -----------------------------------------------------------------------------------------
    def drop(self, name: str | dns.name.Name, qtype: str | None = None, *, subtree: bool = False) -> None:
        """Never answer queries for ``name`` (and, with ``subtree``, every name below it)."""
        self._add(_Rule(_name(name), self._qtype(qtype), subtree, Fault.DROP))

    def servfail(self, name: str | dns.name.Name, qtype: str | None = None, *, subtree: bool = False) -> None:
        """Answer SERVFAIL for ``name`` after the usual delay."""
        self._add(_Rule(_name(name), self._qtype(qtype), subtree, Fault.SERVFAIL))

    def slow(self, name: str | dns.name.Name, extra: float, qtype: str | None = None, *, subtree: bool = False) -> None:
        """Answer ``name`` after ``delay + extra`` seconds."""
        if extra < 0:
            raise ValueError("extra delay must be >= 0")
        self._add(_Rule(_name(name), self._qtype(qtype), subtree, Fault.SLOW, extra))

    def clear_faults(self) -> None:
        with self._lock:
            self._rules.clear()

    def _add(self, rule: _Rule) -> None:
        with self._lock:
            self._rules.insert(0, rule)  # the newest rule for a name wins

    @staticmethod
    def _qtype(qtype: str | None) -> dns.rdatatype.RdataType | None:
        return None if qtype is None else dns.rdatatype.RdataType.make(qtype.upper())

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> Self:
        if self._loops:
            raise RuntimeError("proxy already started")
        self._bind()
        self._expires = time.monotonic() + self.lifetime
        assert self._udp is not None and self._tcp is not None
        self._loops = [
            threading.Thread(target=self._serve_udp, args=(self._udp,), name="dns-proxy-udp", daemon=True),
            threading.Thread(target=self._serve_tcp, args=(self._tcp,), name="dns-proxy-tcp", daemon=True),
        ]
        for thread in self._loops:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the sockets, and wait (briefly) for the query threads."""
        self._stop.set()
        for thread in self._loops:
            if thread is not threading.current_thread():
                thread.join(timeout=2)
        _close_quietly(self._udp)
        _close_quietly(self._tcp)
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(timeout=max(0.5, self.upstream_timeout))

    def _bind(self) -> None:
        """A UDP and a TCP socket on the same port: the one asked for, or a free one (retry if TCP has it taken)."""
        for _attempt in range(1 if self._wanted_port else 20):
            udp = socket.socket(self._family, socket.SOCK_DGRAM)
            try:
                udp.bind((self.host, self._wanted_port))
            except OSError as exc:
                udp.close()
                raise RuntimeError(f"cannot listen on {self.host}:{self._wanted_port}: {exc.strerror}") from None
            port = int(udp.getsockname()[1])
            tcp = socket.socket(self._family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(64)
            udp.settimeout(_POLL)
            tcp.settimeout(_POLL)
            self._udp, self._tcp, self.port = udp, tcp, port
            return
        raise RuntimeError(f"no port free for both UDP and TCP on {self.host}")

    def _expired(self) -> bool:
        return self._stop.is_set() or time.monotonic() >= self._expires

    # -- serving ----------------------------------------------------------------------------------------
    def _serve_udp(self, sock: socket.socket) -> None:
        stamped = _kernel_timestamps(sock)
        while not self._expired():
            try:
                wire, ancillary, _flags, client = sock.recvmsg(65535, _ANCILLARY if stamped else 0)
            except TimeoutError:
                continue
            except OSError:
                break
            self._spawn(self._udp_query, sock, wire, client, _arrival(ancillary))
        self._stop.set()

    def _serve_tcp(self, sock: socket.socket) -> None:
        while not self._expired():
            try:
                conn, _client = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            if not self._spawn(self._tcp_connection, conn):
                conn.close()
        self._stop.set()

    def _spawn(self, target: Callable[..., None], *args: object) -> bool:
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.overflow += 1
            return False

        def run() -> None:
            try:
                target(*args)
            except OSError:
                pass  # the client went away or the proxy was stopped: nothing to answer to
            finally:
                with self._lock:
                    self._workers.discard(threading.current_thread())
                self._slots.release()

        thread = threading.Thread(target=run, name="dns-proxy-query", daemon=True)
        with self._lock:
            self._workers.add(thread)
        thread.start()
        return True

    def _udp_query(self, sock: socket.socket, wire: bytes, client: tuple[str, int], arrived: float | None) -> None:
        reply = self._answer(wire, "udp", arrived)
        if reply is not None and not self._stop.is_set():
            sock.sendto(reply, client)

    def _tcp_connection(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(max(self.upstream_timeout, 1.0) + self.delay)
            while not self._expired():
                try:
                    header = _recv_exact(conn, 2)
                except TimeoutError:
                    return
                if header is None:
                    return
                wire = _recv_exact(conn, struct.unpack("!H", header)[0])
                if wire is None:
                    return
                reply = self._answer(wire, "tcp")
                if reply is not None and not self._stop.is_set():
                    conn.sendall(struct.pack("!H", len(reply)) + reply)

    def _answer(self, wire: bytes, transport: str, arrived: float | None = None) -> bytes | None:
        """The reply to one query (None: leave it unanswered), after the delay it is due.

        ``arrived``: when the kernel received the datagram (``time.monotonic()``'s clock), else now.
        """
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            with self._lock:
                self.malformed += 1
            return None
        if not query.question:
            with self._lock:
                self.malformed += 1
            return None
        received = arrived if arrived is not None else time.monotonic()
        question = query.question[0]
        qname, qtype = question.name, dns.rdatatype.RdataType.make(question.rdtype)
        key = (qname.to_text().lower(), qtype.name)
        with self._lock:
            self._transport[transport] += 1
            self._counts[key] += 1
            rule = next((r for r in self._rules if r.matches(qname, qtype)), None)
            if rule is not None and rule.fault is Fault.DROP:
                self.dropped += 1
                self.log.append(QueryRecord(received, None, *key, transport, "dropped"))
                return None
            self._inflight += 1
        fate, reply = "stopped", None
        try:
            wait = self.delay + (rule.extra if rule is not None else 0.0)
            if wait and self._stop.wait(wait):
                return None  # stopped while waiting
            if rule is not None and rule.fault is Fault.SERVFAIL:
                with self._lock:
                    self.servfails += 1
                fate, reply = "servfail", self._servfail(query)
                return reply
            try:
                fate, reply = "forwarded", self._forward(wire, transport)
            except (OSError, ValueError):
                with self._lock:
                    self.upstream_errors += 1
                fate, reply = "upstream-error", self._servfail(query)
            return reply
        finally:
            answered = time.monotonic() if reply is not None else None
            with self._idle:
                self.log.append(QueryRecord(received, answered, *key, transport, fate))
                self._inflight -= 1
                self._idle.notify_all()

    @staticmethod
    def _servfail(query: dns.message.Message) -> bytes:
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.SERVFAIL)
        return response.to_wire()

    def _forward(self, wire: bytes, transport: str) -> bytes:
        if transport == "udp":
            with socket.socket(self._upstream_family, socket.SOCK_DGRAM) as up:
                up.settimeout(self.upstream_timeout)
                up.connect(self.upstream)
                up.send(wire)
                deadline = time.monotonic() + self.upstream_timeout
                while True:  # skip any stray datagram whose id is not ours
                    reply = up.recv(65535)
                    if reply[:2] == wire[:2]:
                        return reply
                    if time.monotonic() > deadline:
                        raise TimeoutError("upstream did not answer")
        with socket.create_connection(self.upstream, timeout=self.upstream_timeout) as up:
            up.sendall(struct.pack("!H", len(wire)) + wire)
            header = _recv_exact(up, 2)
            answer = _recv_exact(up, struct.unpack("!H", header)[0]) if header else None
            if answer is None:
                raise ValueError("upstream closed the TCP connection without an answer")
            return answer


# Linux's SO_TIMESTAMPNS (not exported by the socket module): the kernel stamps each datagram as it
# arrives, so a query's arrival time does not include the wait for the interpreter lock of a busy process
# (the bench runs the gate in the proxy's process).
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)


def _kernel_timestamps(sock: socket.socket) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def _arrival(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The kernel's receive time of a datagram, on ``time.monotonic()``'s clock; None when not stamped."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanos = (int(x) for x in _TIMESPEC.unpack(data[: _TIMESPEC.size]))
            # The stamp is wall-clock time: moved onto the monotonic clock by their offset now
            # (taken a microsecond apart; this is read right after the datagram was).
            return seconds + nanos / 1e9 - (time.time() - time.monotonic())
    return None


def _close_quietly(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
