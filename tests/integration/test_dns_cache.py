"""The warm-container DNS cache of the NetworkBackend, against real Knot: answers and negative answers
are reused for their TTL and asked again after it (RFC 2308 for NXDOMAIN/NODATA: the SOA minimum)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.dns_proxy import DelayingDnsProxy
from devstack.knot import KnotServer
from ipv6gate.dns import Deadline, DnsResolver, Status
from ipv6gate.dns.model import DnsServer
from ipv6gate.dns.network import NetworkBackend

pytestmark = pytest.mark.integration
TTL = 1  # seconds: the test waits this long once, it does not time anything

ZONE = f"""$ORIGIN cache.test.
$TTL {TTL}
@ {TTL} IN SOA ns hostmaster 1 3600 600 86400 {TTL}
@ {TTL} IN NS ns
ns {TTL} IN A 192.0.2.53
short {TTL} IN A 192.0.2.1
long 3600 IN A 192.0.2.2
"""


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DelayingDnsProxy]:
    zones: Path = tmp_path_factory.mktemp("cache-zones")
    (zones / "cache.test.zone").write_text(ZONE)
    with KnotServer(zones) as knot, DelayingDnsProxy.front(knot, delay=0.0) as front:
        yield front


def resolver(proxy: DelayingDnsProxy, cache_size: int) -> DnsResolver:
    backend = NetworkBackend((DnsServer(proxy.host, proxy.port),), cache_size=cache_size)
    return DnsResolver(backend, query_timeout=1.0, query_limit=100)


def ask(r: DnsResolver, name: str, qtype: str = "A") -> Status:
    return r.session(Deadline(5.0)).query(name, qtype).status


def test_answers_are_reused_for_their_ttl_then_asked_again(proxy: DelayingDnsProxy) -> None:
    r = resolver(proxy, cache_size=64)
    proxy.reset_counts()
    assert ask(r, "short.cache.test") is Status.OK and ask(r, "short.cache.test") is Status.OK
    assert ask(r, "long.cache.test") is Status.OK and ask(r, "long.cache.test") is Status.OK
    assert ask(r, "gone.cache.test") is Status.NXDOMAIN and ask(r, "gone.cache.test") is Status.NXDOMAIN
    assert ask(r, "short.cache.test", "AAAA") is Status.NODATA and ask(r, "short.cache.test", "AAAA") is Status.NODATA
    assert proxy.count("short.cache.test", "A") == 1 and proxy.count("long.cache.test", "A") == 1
    assert proxy.count("gone.cache.test", "A") == 1 and proxy.count("short.cache.test", "AAAA") == 1
    time.sleep(TTL + 0.2)
    ask(r, "short.cache.test")
    ask(r, "long.cache.test")
    ask(r, "gone.cache.test")
    ask(r, "short.cache.test", "AAAA")
    assert proxy.count("short.cache.test", "A") == 2, "expired answer not asked again"
    assert proxy.count("long.cache.test", "A") == 1, "a 1 h answer must still be cached"
    assert proxy.count("gone.cache.test", "A") == 2 and proxy.count("short.cache.test", "AAAA") == 2


def test_cache_off_asks_every_time(proxy: DelayingDnsProxy) -> None:
    r = resolver(proxy, cache_size=0)
    proxy.reset_counts()
    ask(r, "long.cache.test")
    ask(r, "long.cache.test")
    assert proxy.count("long.cache.test", "A") == 2
