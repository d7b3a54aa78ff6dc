"""``NetworkBackend`` (dnspython's stub resolver) against a real Knot DNS server and small UDP fakes."""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from devstack import world
from devstack.knot import KnotServer
from ipv6gate.checks.dkim import check_dkim
from ipv6gate.checks.iprev import PtrMode, check_iprev
from ipv6gate.checks.results import Result
from ipv6gate.checks.spf import check_spf
from ipv6gate.decision.rule import Verdict
from ipv6gate.decision.tenants import Tenant
from ipv6gate.dns import Deadline, DnsResolver, DnsTempError, Status
from ipv6gate.dns.model import DnsServer
from ipv6gate.dns.network import NetworkBackend
from ipv6gate.mail.event import parse_event
from ipv6gate.ports.memory import InMemoryTenants
from ipv6gate.settings import Settings, parse_dns_servers
from ipv6gate.wiring import build_gate

pytestmark = pytest.mark.integration

TIMEOUT = 1.0
# Eight 255-octet strings: ~2 kB, over both the classic 512-byte and the EDNS 1232-byte UDP sizes.
BIG_STRINGS = [chr(ord("a") + i) * 255 for i in range(8)]
BIG_ZONE = f"""$ORIGIN big.test.
$TTL 300
@    IN SOA ns hostmaster 1 3600 600 86400 300
@    IN NS  ns
ns   IN A   192.0.2.53
big  IN TXT {" ".join(f'"{s}"' for s in BIG_STRINGS)}
"""


def make_resolver(*servers: DnsServer, cache_size: int = 0, timeout: float = TIMEOUT) -> DnsResolver:
    return DnsResolver(NetworkBackend(servers, cache_size=cache_size), query_timeout=timeout, query_limit=60)


class UdpResponder:
    """A loopback UDP server on its own thread: ``handler(query_wire)`` gives the reply bytes or None.

    Counts every datagram it receives; stops when the ``with`` block ends or after ``lifetime`` s.
    """

    def __init__(self, handler: Callable[[bytes], bytes | None], *, lifetime: float = 30.0) -> None:
        self._handler = handler
        self._lifetime = lifetime
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.port: int = self._sock.getsockname()[1]
        self.packets = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="udp-responder", daemon=True)

    @property
    def server(self) -> DnsServer:
        return DnsServer("127.0.0.1", self.port)

    def count(self) -> int:
        with self._lock:
            return self.packets

    def _run(self) -> None:
        end = time.monotonic() + self._lifetime
        while not self._stop.is_set() and time.monotonic() < end:
            try:
                data, peer = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.packets += 1
            reply = self._handler(data)
            if reply is not None:
                self._sock.sendto(reply, peer)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()


def servfail(data: bytes) -> bytes:
    response = dns.message.make_response(dns.message.from_wire(data))
    response.set_rcode(dns.rcode.SERVFAIL)
    return response.to_wire()


def forward_to(knot: KnotServer) -> Callable[[bytes], bytes | None]:
    """A counting proxy's handler: relay the query to Knot over UDP, hand back its reply as is."""

    def relay(data: bytes) -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
            upstream.settimeout(1.0)
            upstream.sendto(data, (knot.host, knot.port))
            return upstream.recv(65535)

    return relay


@pytest.fixture
def silent_socket() -> Iterator[socket.socket]:
    """A bound UDP socket nobody reads: queries to it are never answered (and no ICMP refusal)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


@pytest.fixture(scope="module")
def big_knot(tmp_path_factory: pytest.TempPathFactory, knot: KnotServer) -> Iterator[KnotServer]:
    # Depends on `knot` only so a missing knotd fails with the session fixture's message.
    zone_dir: Path = tmp_path_factory.mktemp("bigzone")
    (zone_dir / "big.test.zone").write_text(BIG_ZONE, encoding="ascii")
    with KnotServer(zone_dir) as server:
        yield server


@pytest.fixture
def resolver(knot: KnotServer) -> DnsResolver:
    return make_resolver(DnsServer(knot.host, knot.port))


# -- answers ---------------------------------------------------------------------------------------


def test_ptr_aaaa_txt_answers(resolver: DnsResolver, keys: world.Keys) -> None:
    apex_txt = re.search(r'^@\s+TXT\s+"([^"]+)"', world.zone_texts(keys)["good.test"], re.MULTILINE)
    assert apex_txt is not None
    session = resolver.session(Deadline(5.0))

    ptr = session.ptr(ipaddress.ip_address(world.GOOD_IP))
    assert ptr.status is Status.OK
    assert [rd.target.to_text() for rd in ptr.records] == ["mail.good.test."]

    aaaa = session.addresses("mail.good.test", 6)
    assert aaaa.status is Status.OK
    assert [rd.address for rd in aaaa.records] == [world.GOOD_IP]

    assert session.txt("good.test") == [apex_txt.group(1).encode()]
    assert session.txt("good.test")[0].startswith(b"v=spf1 ")
    assert session.queries == 4
    assert session.temp_errors == 0


def test_nxdomain_and_nodata(resolver: DnsResolver) -> None:
    session = resolver.session(Deadline(5.0))

    missing = session.query("nosuchhost.good.test", "AAAA")
    assert missing.status is Status.NXDOMAIN
    assert missing.empty

    no_ptr = session.ptr(ipaddress.ip_address(world.NO_PTR_IP))
    assert no_ptr.status is Status.NXDOMAIN

    # The apex exists (SOA, NS, TXT) but has no AAAA; mail.good.test has AAAA but no A.
    assert session.query("good.test", "AAAA").status is Status.NODATA
    nodata = session.addresses("mail.good.test", 4)
    assert nodata.status is Status.NODATA
    assert nodata.empty
    assert session.temp_errors == 0


def test_ipv6_server_from_settings(knot: KnotServer) -> None:
    servers = parse_dns_servers(f"[::1]:{knot.port}")
    assert servers == (DnsServer("::1", knot.port),)
    session = make_resolver(*servers).session(Deadline(5.0))

    ptr = session.ptr(ipaddress.ip_address(world.OTHER_IP))
    assert [rd.target.to_text() for rd in ptr.records] == ["mail.other.test."]
    assert session.query("nosuchhost.other.test", "TXT").status is Status.NXDOMAIN


def test_large_txt_comes_back_complete_over_tcp(big_knot: KnotServer) -> None:
    # Precondition: over UDP the answer really is truncated, so only a TCP retry can complete it.
    probe = dns.query.udp(dns.message.make_query("big.big.test.", "TXT"), big_knot.host, port=big_knot.port, timeout=2)
    assert probe.flags & dns.flags.TC

    session = make_resolver(DnsServer(big_knot.host, big_knot.port)).session(Deadline(5.0))
    answer = session.query("big.big.test", "TXT")
    assert answer.status is Status.OK
    assert [s.decode() for s in answer.records[0].strings] == BIG_STRINGS
    assert session.txt("big.big.test") == ["".join(BIG_STRINGS).encode()]
    assert len(session.txt("big.big.test")[0]) > 512


# -- temporary failures ----------------------------------------------------------------------------


def test_unanswered_server_is_temperror_within_timeout(silent_socket: socket.socket) -> None:
    session = make_resolver(DnsServer("127.0.0.1", silent_socket.getsockname()[1])).session(Deadline(10.0))

    started = time.monotonic()
    with pytest.raises(DnsTempError, match="timeout"):
        session.query("good.test", "TXT")
    elapsed = time.monotonic() - started

    assert elapsed < TIMEOUT + 0.5
    assert elapsed >= TIMEOUT * 0.8  # it waited for an answer rather than giving up at once
    silent_socket.setblocking(False)
    assert silent_socket.recv(512)  # the query was really sent to that server
    assert session.temp_errors == 1


def test_query_timeout_is_capped_by_the_deadline(silent_socket: socket.socket) -> None:
    session = make_resolver(DnsServer("127.0.0.1", silent_socket.getsockname()[1])).session(Deadline(0.3))

    started = time.monotonic()
    with pytest.raises(DnsTempError):
        session.query("good.test", "TXT")
    assert time.monotonic() - started < 0.3 + 0.4


def test_spent_deadline_raises_without_querying(silent_socket: socket.socket) -> None:
    session = make_resolver(DnsServer("127.0.0.1", silent_socket.getsockname()[1])).session(Deadline(0.0))

    started = time.monotonic()
    with pytest.raises(DnsTempError, match="budget"):
        session.query("good.test", "TXT")
    assert time.monotonic() - started < 0.1
    silent_socket.setblocking(False)
    with pytest.raises(BlockingIOError):
        silent_socket.recv(512)  # nothing was sent
    assert session.temp_errors == 1


def test_servfail_is_temperror() -> None:
    with UdpResponder(servfail) as server:
        session = make_resolver(server.server).session(Deadline(5.0))
        started = time.monotonic()
        with pytest.raises(DnsTempError, match="SERVFAIL"):
            session.query("good.test", "TXT")
        assert time.monotonic() - started < TIMEOUT  # an answer, not a timeout
        assert server.count() >= 1


def test_servfail_makes_the_checks_temperror_never_fail(keys: world.Keys) -> None:
    ip = ipaddress.ip_address(world.GOOD_IP)
    with UdpResponder(servfail) as server:
        resolver = make_resolver(server.server)
        for mode in PtrMode:
            iprev = check_iprev(resolver.session(Deadline(5.0)), ip, mode)
            assert iprev.result is Result.TEMPERROR, (mode, iprev)

        spf = check_spf(resolver.session(Deadline(5.0)), ip, "alice@good.test", "mail.good.test", void_limit=2)
        assert spf.result is Result.TEMPERROR, spf
        null_sender = check_spf(resolver.session(Deadline(5.0)), ip, "", "mail.good.test", void_limit=2)
        assert null_sender.result is Result.TEMPERROR, null_sender
        signed = world.sign(world.message(), keys)
        dkim = check_dkim(resolver.session(Deadline(5.0)), signed, max_signatures=5)
        assert dkim.result is Result.TEMPERROR, dkim
        assert server.count() >= 5


def test_servfail_decision_accepts_by_default_and_450s_on_request(keys: world.Keys) -> None:
    signed = world.sign(world.message(), keys)
    mail = parse_event(world.ses_event(raw=signed))
    tenants = InMemoryTenants([Tenant("tenant.test", ipv6_inbound=True)])
    with UdpResponder(servfail) as server:
        env = {"AWS_REGION": "eu-west-1", "DNS_SERVERS": f"127.0.0.1:{server.port}", "DNS_QUERY_TIMEOUT_SECONDS": "1"}

        decision = build_gate(Settings.from_env(env), tenants=tenants).evaluate(mail, raw_message=signed)
        assert decision.checks.iprev.result is Result.TEMPERROR
        # Once iprev and one of SPF/DKIM are temperror, accept is certain (policy.certain): the last
        # check is either temperror too or skipped, whichever came first.
        assert {decision.checks.spf.result, decision.checks.dkim.result} <= {Result.TEMPERROR, Result.SKIPPED}
        assert Result.TEMPERROR in {decision.checks.spf.result, decision.checks.dkim.result}
        assert decision.verdicts[0].verdict is Verdict.ACCEPT
        assert decision.verdicts[0].reason.startswith("accepted, iprev temperror decides")

        strict = build_gate(Settings.from_env({**env, "TEMPERROR_ACTION": "reject"}), tenants=tenants)
        verdict = strict.evaluate(mail, raw_message=signed).verdicts[0]
        assert verdict.verdict is Verdict.REJECT
        assert str(verdict.reply).startswith("450 4.7.25 ")  # temporary, never a 5xx


# -- several servers, and replies that are not the answer ------------------------------------------


def test_the_next_server_answers_after_a_servfail(knot: KnotServer) -> None:
    with UdpResponder(servfail) as failing:
        session = make_resolver(failing.server, DnsServer(knot.host, knot.port)).session(Deadline(5.0))
        assert session.query("good.test", "TXT").status is Status.OK
        assert session.query("nosuchhost.good.test", "TXT").status is Status.NXDOMAIN
        assert failing.count() == 2  # asked first each time, once


def test_a_silent_server_leaves_the_next_one_the_rest_of_the_time(
    silent_socket: socket.socket, knot: KnotServer
) -> None:
    """The first server gets the 2 s attempt dnspython gave it; the next one the query's time left."""
    silent = DnsServer("127.0.0.1", silent_socket.getsockname()[1])
    backend = NetworkBackend((silent, DnsServer(knot.host, knot.port)), cache_size=0)
    started = time.monotonic()
    assert backend.lookup(dns.name.from_text("good.test"), dns.rdatatype.TXT, 3.0).status is Status.OK
    assert 1.9 <= time.monotonic() - started < 3.0
    silent_socket.setblocking(False)
    assert silent_socket.recv(512)


def test_a_slow_first_server_is_waited_for_though_others_are_listed(knot: KnotServer) -> None:
    """A first server answering after 60 % of the query's time is not dropped for the next one (which
    is silent here): sharing the time among the servers turned such answers into temperrors."""

    def slow(data: bytes) -> bytes | None:
        time.sleep(0.6 * TIMEOUT)
        return forward_to(knot)(data)

    with UdpResponder(slow) as first, UdpResponder(lambda _data: None) as second:
        session = make_resolver(first.server, second.server).session(Deadline(5.0))
        assert session.query("good.test", "TXT").status is Status.OK
        assert second.count() == 0


def test_a_closed_port_moves_on_at_once(knot: KnotServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = DnsServer("127.0.0.1", probe.getsockname()[1])
    session = make_resolver(closed, DnsServer(knot.host, knot.port)).session(Deadline(5.0))
    started = time.monotonic()
    assert session.query("good.test", "TXT").status is Status.OK
    assert time.monotonic() - started < TIMEOUT / 4  # the refusal, not a timeout, ended the first try


def forged(change: Callable[[dns.message.Message], None]) -> Callable[[bytes], bytes | None]:
    """A server whose every reply is an NXDOMAIN altered by ``change`` (another id, another question)."""

    def handler(data: bytes) -> bytes | None:
        response = dns.message.make_response(dns.message.from_wire(data))
        response.set_rcode(dns.rcode.NXDOMAIN)
        change(response)
        return response.to_wire()

    return handler


def _other_id(response: dns.message.Message) -> None:
    response.id ^= 1


def _other_question(response: dns.message.Message) -> None:
    response.question = [dns.rrset.RRset(dns.name.from_text("other.test."), dns.rdataclass.IN, dns.rdatatype.TXT)]


@pytest.mark.parametrize("change", [_other_id, _other_question])
def test_a_reply_to_another_query_is_not_the_answer(change: Callable[[dns.message.Message], None]) -> None:
    with UdpResponder(forged(change)) as server:
        session = make_resolver(server.server).session(Deadline(5.0))
        with pytest.raises(DnsTempError, match="timeout"):
            session.query("good.test", "TXT")
        assert server.count() >= 1

    # Control: the same server, the reply unchanged, is the answer.
    with UdpResponder(forged(lambda response: None)) as server:
        assert make_resolver(server.server).session(Deadline(5.0)).query("good.test", "TXT").status is Status.NXDOMAIN


# -- the cache -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rdtype", "status"),
    [
        ("good.test", "TXT", Status.OK),
        ("nosuchhost.good.test", "AAAA", Status.NXDOMAIN),
        ("good.test", "AAAA", Status.NODATA),
    ],
)
def test_cache_answers_repeat_query_without_a_packet(knot: KnotServer, name: str, rdtype: str, status: Status) -> None:
    with UdpResponder(forward_to(knot)) as proxy:
        cached = make_resolver(proxy.server, cache_size=16)
        first = cached.session(Deadline(5.0)).query(name, rdtype)
        assert first.status is status
        assert proxy.count() == 1

        second = cached.session(Deadline(5.0)).query(name, rdtype)  # a new decision, same backend
        assert second.status is status
        assert second.records == first.records
        assert proxy.count() == 1

        # Control: without a cache the same two questions cost two packets.
        uncached = make_resolver(proxy.server, cache_size=0)
        uncached.session(Deadline(5.0)).query(name, rdtype)
        uncached.session(Deadline(5.0)).query(name, rdtype)
        assert proxy.count() == 3


def test_cache_keys_on_name_and_type(knot: KnotServer) -> None:
    with UdpResponder(forward_to(knot)) as proxy:
        session = make_resolver(proxy.server, cache_size=16).session(Deadline(5.0))
        session.query("mail.good.test", "AAAA")
        session.query("mail.good.test", "A")
        session.query("mail.other.test", "AAAA")
        assert proxy.count() == 3
        answer = session.query("mail.other.test", "AAAA")
        assert [rd.address for rd in answer.records] == [world.OTHER_IP]
        assert proxy.count() == 3
        assert session.queries == 4  # the session's cap counts cached answers too
