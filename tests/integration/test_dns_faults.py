"""DNS faults on real Knot behind a fault-injecting loopback proxy, judged at the level of a decision:
each gives temperror where RFC 7208/8601 say so, respects the decision's time budget (far inside SES's
30 s), and by default neither rejects nor bounces. (Single-query faults: test_network_dns.py.)"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from devstack import world
from devstack.dns_proxy import DelayingDnsProxy
from devstack.knot import KnotServer
from ipv6gate.decision.tenants import Tenant
from ipv6gate.evaluation.gate import Gate
from ipv6gate.evaluation.record import Decision
from ipv6gate.mail.event import parse_event
from ipv6gate.ports.memory import InMemoryBounceQueue, InMemoryMessages, InMemoryTenants
from ipv6gate.settings import Settings
from ipv6gate.wiring import assemble_gate, build_dns

pytestmark = pytest.mark.integration
BUDGET = 1.5  # DECISION_BUDGET_SECONDS for these tests
QUERY_TIMEOUT = 0.5
GRACE = 2.0  # the gate's allowance beyond the DNS budget for CPU work

FAULTS_ZONE = """$ORIGIN faults.test.
$TTL 300
@ IN SOA ns hostmaster 1 3600 600 86400 300
@ IN NS ns
ns IN A 192.0.2.53
loop1 IN CNAME loop2
loop2 IN CNAME loop1
slow IN TXT "v=spf1 {includes} -all"
{include_records}
"""


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, keys: world.Keys) -> Iterator[DelayingDnsProxy]:
    zones = world.write_zone_dir(tmp_path_factory.mktemp("fault-zones"), keys)
    includes = " ".join(f"include:i{i}.faults.test" for i in range(10))
    records = "\n".join(f'i{i} IN TXT "v=spf1 ip6:2001:db8:ffff:{i}::/64 -all"' for i in range(10))
    (zones / "faults.test.zone").write_text(FAULTS_ZONE.format(includes=includes, include_records=records))
    with KnotServer(zones) as knot, DelayingDnsProxy.front(knot, delay=0.0) as front:
        yield front


def gate_for(servers: str, **env: str) -> tuple[Gate, InMemoryBounceQueue]:
    settings = Settings.from_env(
        {
            "AWS_REGION": "eu-west-1",
            "DNS_SERVERS": servers,
            "DNS_CACHE_SIZE": "0",
            "DECISION_BUDGET_SECONDS": str(BUDGET),
            "DNS_QUERY_TIMEOUT_SECONDS": str(QUERY_TIMEOUT),
            "BOUNCE_MODE": "always",
            **env,
        }
    )
    queue = InMemoryBounceQueue()
    tenants = InMemoryTenants([Tenant("tenant.test", ipv6_inbound=True)])
    return assemble_gate(settings, build_dns(settings), tenants, InMemoryMessages(), bounces=queue), queue


def timed(gate: Gate, **event: object) -> tuple[Decision, float]:
    mail = parse_event(world.ses_event(**event))  # type: ignore[arg-type]
    started = time.monotonic()
    decision = gate.record(gate.evaluate(mail))
    return decision, time.monotonic() - started


def assert_not_rejected(decision: Decision, queue: InMemoryBounceQueue, elapsed: float) -> None:
    assert [v.verdict.value for v in decision.verdicts] == ["accept"], decision.verdicts
    assert queue.requests == [] and decision.disposition == "CONTINUE"
    assert elapsed < BUDGET + GRACE, f"{elapsed:.2f}s is over the budget"


@pytest.fixture(autouse=True)
def _clean(proxy: DelayingDnsProxy) -> Iterator[None]:
    proxy.clear_faults()
    yield
    proxy.clear_faults()


def test_server_down(proxy: DelayingDnsProxy) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gate, queue = gate_for(f"127.0.0.1:{port}")
    d, elapsed = timed(gate, ip=world.NO_PTR_IP)
    assert d.checks.iprev.result.value == "temperror"
    assert_not_rejected(d, queue, elapsed)


def test_no_answer_times_out(proxy: DelayingDnsProxy) -> None:
    proxy.drop(world._ptr_owner(world.NO_PTR_IP))  # the PTR question is never answered
    gate, queue = gate_for(proxy.servers_env)
    d, elapsed = timed(gate, ip=world.NO_PTR_IP, mail_from="alice@noptr.test")
    assert d.checks.iprev.result.value == "temperror" and elapsed >= QUERY_TIMEOUT
    assert_not_rejected(d, queue, elapsed)


def test_temperror_rejects_with_450_only_when_configured(proxy: DelayingDnsProxy) -> None:
    proxy.drop(world._ptr_owner(world.NO_PTR_IP))
    gate, _ = gate_for(proxy.servers_env, TEMPERROR_ACTION="reject")
    d, _ = timed(gate, ip=world.NO_PTR_IP, mail_from="alice@noptr.test")
    assert d.verdicts[0].reply is not None and d.verdicts[0].reply.code == 450  # never a 5xx on a fault


def test_servfail_for_the_sender_domain(proxy: DelayingDnsProxy) -> None:
    proxy.servfail("good.test", subtree=True)
    gate, queue = gate_for(proxy.servers_env)
    d, elapsed = timed(gate, ip=world.GOOD_IP)  # PTR fine (reverse zone), SPF's TXT SERVFAILs
    assert d.checks.iprev.result.value == "pass" and d.checks.spf.result.value == "temperror"
    assert_not_rejected(d, queue, elapsed)


def test_slow_answers_exceeding_the_budget(proxy: DelayingDnsProxy) -> None:
    proxy.slow(world._ptr_owner(world.GOOD_IP), extra=BUDGET * 2)
    proxy.slow("good.test", extra=BUDGET * 2, subtree=True)
    gate, queue = gate_for(proxy.servers_env)
    d, elapsed = timed(gate, ip=world.GOOD_IP)
    assert d.checks.iprev.result.value == "temperror" and d.checks.spf.result.value == "temperror"
    assert_not_rejected(d, queue, elapsed)


def test_cname_loop(proxy: DelayingDnsProxy) -> None:
    gate, queue = gate_for(proxy.servers_env)
    d, elapsed = timed(gate, ip=world.GOOD_IP, mail_from="alice@loop1.faults.test")
    # A CNAME loop has no answer: Knot answers SERVFAIL, so temperror; it never makes SPF fail.
    assert d.checks.spf.result.value == "temperror", d.checks.spf
    assert_not_rejected(d, queue, elapsed)


def test_spf_with_ten_slow_includes_stays_within_the_budget(proxy: DelayingDnsProxy) -> None:
    for i in range(10):
        proxy.slow(f"i{i}.faults.test", extra=0.4)  # 10 x 0.4 s in series is past the 1.5 s budget
    gate, queue = gate_for(proxy.servers_env)
    d, elapsed = timed(gate, ip=world.GOOD_IP, mail_from="alice@slow.faults.test")
    assert d.checks.spf.result.value == "temperror", d.checks.spf
    assert_not_rejected(d, queue, elapsed)
    assert d.elapsed_ms / 1000 < BUDGET + GRACE
