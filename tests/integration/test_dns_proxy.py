"""``DelayingDnsProxy`` in front of a real Knot DNS server: delay, overlap, TCP, faults, counts."""

from __future__ import annotations

import concurrent.futures as cf
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from devstack.dns_proxy import DelayingDnsProxy
from devstack.knot import KnotServer, find_knotd
from ipv6gate.dns import Deadline, DnsResolver, DnsTempError, Status
from ipv6gate.dns.network import NetworkBackend
from ipv6gate.settings import parse_dns_servers

pytestmark = pytest.mark.integration

DELAY = 0.1
BIG_STRINGS = [chr(ord("a") + i) * 255 for i in range(8)]  # ~2 kB: truncated over UDP, whole over TCP
ZONE = f"""$ORIGIN proxy.test.
$TTL 300
@     IN SOA ns hostmaster 1 3600 600 86400 300
@     IN NS  ns
ns    IN A   192.0.2.53
www   IN A   192.0.2.80
www   IN AAAA 2001:db8::80
slow  IN A   192.0.2.81
gone  IN A   192.0.2.82
bad   IN A   192.0.2.83
@     IN TXT "v=spf1 -all"
big   IN TXT {" ".join(f'"{s}"' for s in BIG_STRINGS)}
"""


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    if find_knotd() is None:
        pytest.fail("knotd (Knot DNS) not found: apt-get install knot; these tests never skip", pytrace=False)
    zones: Path = tmp_path_factory.mktemp("proxy-zones")
    (zones / "proxy.test.zone").write_text(ZONE, encoding="ascii")
    with KnotServer(zones) as server:
        yield server


@pytest.fixture
def proxy(upstream: KnotServer) -> Iterator[DelayingDnsProxy]:
    with DelayingDnsProxy.front(upstream, delay=DELAY, lifetime=60.0) as p:
        yield p


def ask(proxy: DelayingDnsProxy, name: str, qtype: str = "A", *, timeout: float = 2.0) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, qtype), proxy.host, port=proxy.port, timeout=timeout)


def timed(fn, *args, **kwargs):
    started = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - started


def test_servers_env_and_port_serve_udp_and_tcp(proxy: DelayingDnsProxy) -> None:
    assert proxy.servers_env == f"127.0.0.1:{proxy.port}"
    assert parse_dns_servers(proxy.servers_env)[0].port == proxy.port
    udp = ask(proxy, "www.proxy.test.")
    tcp = dns.query.tcp(dns.message.make_query("www.proxy.test.", "A"), "127.0.0.1", port=proxy.port, timeout=2)
    for reply in (udp, tcp):
        assert reply.rcode() == dns.rcode.NOERROR
        assert [rd.address for rd in reply.answer[0]] == ["192.0.2.80"]
    assert (proxy.udp_queries, proxy.tcp_queries) == (1, 1)


def test_every_answer_waits_at_least_the_delay(proxy: DelayingDnsProxy, upstream: KnotServer) -> None:
    _, direct = timed(dns.query.udp, dns.message.make_query("www.proxy.test.", "A"), upstream.host, port=upstream.port)
    for _ in range(3):
        reply, elapsed = timed(ask, proxy, "www.proxy.test.")
        assert reply.rcode() == dns.rcode.NOERROR
        assert elapsed >= DELAY
        assert elapsed < DELAY + 0.5  # the delay, not a timeout
    assert direct < DELAY  # Knot itself answers at once


def test_concurrent_queries_overlap(proxy: DelayingDnsProxy) -> None:
    n = 12
    with cf.ThreadPoolExecutor(max_workers=n) as pool:
        started = time.monotonic()
        replies = list(pool.map(lambda _i: ask(proxy, "www.proxy.test.", "AAAA"), range(n)))
        elapsed = time.monotonic() - started
    assert all(r.rcode() == dns.rcode.NOERROR for r in replies)
    assert DELAY <= elapsed < 3 * DELAY, f"{n} parallel queries took {elapsed:.3f}s; sequential would be {n * DELAY}s"
    assert proxy.count("www.proxy.test", "AAAA") == n


def test_large_txt_over_tcp(proxy: DelayingDnsProxy) -> None:
    over_udp = dns.query.udp(dns.message.make_query("big.proxy.test.", "TXT"), "127.0.0.1", port=proxy.port, timeout=2)
    assert over_udp.flags & dns.flags.TC  # truncated, passed on as Knot sent it
    over_tcp, elapsed = timed(
        dns.query.tcp, dns.message.make_query("big.proxy.test.", "TXT"), "127.0.0.1", port=proxy.port, timeout=2
    )
    assert elapsed >= DELAY
    assert [s.decode() for s in over_tcp.answer[0][0].strings] == BIG_STRINGS


def test_the_gate_dns_layer_falls_back_to_tcp_through_the_proxy(proxy: DelayingDnsProxy) -> None:
    resolver = DnsResolver(
        NetworkBackend(parse_dns_servers(proxy.servers_env), cache_size=0), query_timeout=2.0, query_limit=10
    )
    session = resolver.session(Deadline(5.0))
    records, elapsed = timed(session.txt, "big.proxy.test")
    assert records == [b"".join(s.encode() for s in BIG_STRINGS)]
    assert elapsed >= 2 * DELAY  # UDP (truncated), then TCP: two delayed queries
    assert (proxy.udp_queries, proxy.tcp_queries) == (1, 1)
    assert session.queries == 1  # the session counts one question; the proxy sees both transports
    assert session.query("nothere.proxy.test", "A").status is Status.NXDOMAIN


def test_drop_leaves_the_client_waiting_until_it_times_out(proxy: DelayingDnsProxy) -> None:
    proxy.drop("gone.proxy.test")
    with pytest.raises(dns.exception.Timeout):
        ask(proxy, "gone.proxy.test.", timeout=DELAY * 4)
    assert proxy.dropped == 1
    assert proxy.count("gone.proxy.test.", "A") == 1
    assert ask(proxy, "www.proxy.test.").rcode() == dns.rcode.NOERROR  # other names unaffected
    resolver = DnsResolver(
        NetworkBackend(parse_dns_servers(proxy.servers_env), cache_size=0), query_timeout=0.3, query_limit=10
    )
    with pytest.raises(DnsTempError, match="timeout"):
        resolver.session(Deadline(5.0)).query("gone.proxy.test", "A")


def test_drop_by_type_and_subtree(proxy: DelayingDnsProxy) -> None:
    proxy.drop("proxy.test", "AAAA", subtree=True)
    assert ask(proxy, "www.proxy.test.", "A").rcode() == dns.rcode.NOERROR
    with pytest.raises(dns.exception.Timeout):
        ask(proxy, "www.proxy.test.", "AAAA", timeout=DELAY * 3)
    proxy.clear_faults()
    assert ask(proxy, "www.proxy.test.", "AAAA").rcode() == dns.rcode.NOERROR


def test_servfail(proxy: DelayingDnsProxy) -> None:
    proxy.servfail("bad.proxy.test")
    reply, elapsed = timed(ask, proxy, "bad.proxy.test.")
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert elapsed >= DELAY
    assert proxy.servfails == 1
    resolver = DnsResolver(
        NetworkBackend(parse_dns_servers(proxy.servers_env), cache_size=0), query_timeout=1.0, query_limit=10
    )
    with pytest.raises(DnsTempError, match="SERVFAIL"):
        resolver.session(Deadline(5.0)).query("bad.proxy.test", "A")


def test_extra_delay_for_one_name_only(proxy: DelayingDnsProxy) -> None:
    extra = 0.3
    proxy.slow("slow.proxy.test", extra)
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        slow = pool.submit(timed, ask, proxy, "slow.proxy.test.")
        fast = pool.submit(timed, ask, proxy, "www.proxy.test.")
        (slow_reply, slow_elapsed), (_, fast_elapsed) = slow.result(), fast.result()
    assert [rd.address for rd in slow_reply.answer[0]] == ["192.0.2.81"]
    assert slow_elapsed >= DELAY + extra
    assert fast_elapsed < DELAY + extra  # not held up behind the slow one


def test_counts_total_per_name_and_type_and_reset(proxy: DelayingDnsProxy) -> None:
    for name, qtype in [
        ("www.proxy.test.", "A"),
        ("WWW.proxy.test.", "A"),
        ("www.proxy.test.", "AAAA"),
        ("proxy.test.", "TXT"),
    ]:
        ask(proxy, name, qtype)
    assert proxy.queries == 4
    assert proxy.count("www.proxy.test", "A") == 2  # names are compared case-insensitively
    assert proxy.count("www.proxy.test.", "aaaa") == 1
    assert proxy.count("proxy.test", "TXT") == 1
    assert proxy.count("nothing.proxy.test", "A") == 0
    assert proxy.counts() == {
        ("www.proxy.test.", "A"): 2,
        ("www.proxy.test.", "AAAA"): 1,
        ("proxy.test.", "TXT"): 1,
    }
    assert proxy.wait_idle(1.0)
    proxy.reset_counts()
    assert proxy.queries == 0 and proxy.counts() == {}


def test_not_a_dns_query_is_ignored(proxy: DelayingDnsProxy) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(DELAY * 3)
        sock.sendto(b"\x00\x01garbage", ("127.0.0.1", proxy.port))
        with pytest.raises(TimeoutError):
            sock.recvfrom(512)
    assert proxy.malformed == 1 and proxy.queries == 0


def test_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        DelayingDnsProxy("127.0.0.1", 53, host="0.0.0.0")
    with pytest.raises(ValueError, match="loopback"):
        DelayingDnsProxy("192.0.2.1", 53)
    with pytest.raises(ValueError, match="not an IP address"):
        DelayingDnsProxy("localhost", 53)


def test_ipv6_loopback(upstream: KnotServer) -> None:
    with DelayingDnsProxy(upstream.host6, upstream.port, host="::1", delay=0.01, lifetime=10) as p:
        assert p.servers_env == f"[::1]:{p.port}"
        reply = dns.query.udp(dns.message.make_query("www.proxy.test.", "A"), "::1", port=p.port, timeout=2)
        assert reply.rcode() == dns.rcode.NOERROR


def test_bounded_lifetime_stops_by_itself(upstream: KnotServer) -> None:
    with DelayingDnsProxy.front(upstream, delay=0.0, lifetime=0.3) as p:
        assert ask(p, "www.proxy.test.").rcode() == dns.rcode.NOERROR
        time.sleep(0.5)
        assert not p.running
        with pytest.raises(dns.exception.Timeout):
            ask(p, "www.proxy.test.", timeout=0.3)


def test_stop_does_not_wait_out_long_delays(upstream: KnotServer) -> None:
    p = DelayingDnsProxy.front(upstream, delay=30.0, lifetime=60).start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(dns.message.make_query("www.proxy.test.", "A").to_wire(), ("127.0.0.1", p.port))
        deadline = time.monotonic() + 2
        while p.inflight == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert p.inflight == 1
        _, elapsed = timed(p.stop)
    assert elapsed < 2.0
    assert p.wait_idle(1.0)


def test_log_keeps_when_each_query_arrived_and_was_answered(proxy: DelayingDnsProxy) -> None:
    proxy.drop("gone.proxy.test")
    started = time.monotonic()
    ask(proxy, "www.proxy.test.")
    with pytest.raises(dns.exception.Timeout):
        ask(proxy, "gone.proxy.test.", timeout=DELAY * 2)
    answered, dropped = list(proxy.log)
    assert (answered.qname, answered.qtype, answered.transport, answered.fate) == (
        "www.proxy.test.",
        "A",
        "udp",
        "forwarded",
    )
    assert answered.answered is not None and answered.answered - answered.received >= DELAY
    assert started <= answered.received
    assert (dropped.qname, dropped.fate, dropped.answered) == ("gone.proxy.test.", "dropped", None)
    proxy.reset_counts()
    assert not proxy.log


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_TIMESTAMPNS is Linux's")
def test_arrival_is_when_the_kernel_received_the_query_not_when_a_thread_got_to_it(
    proxy: DelayingDnsProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bench's "first query after the call" must not include the proxy's own wait for a thread."""
    late = 0.3
    spawn = proxy._spawn

    def slow_spawn(*args: object) -> bool:
        time.sleep(late)  # the serving loop is busy: the query waits in the socket's buffer
        return spawn(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(proxy, "_spawn", slow_spawn)
    sent = time.monotonic()
    ask(proxy, "www.proxy.test.")
    [record] = list(proxy.log)
    assert sent <= record.received < sent + late / 2
    assert record.answered is not None and record.answered - record.received >= late + DELAY
