"""The SES door close to the DNS critical path (issue #19 item 4): the PTR asked in the calling thread,
PTR and SPF sent before a remote tenant lookup answers, the checks' threads started with the process;
none of it changes a decision."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import dns.name
import dns.rdatatype
import pytest

from devstack import world
from ipv6gate.aws.cached import CachedTenantDirectory
from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.decision.tenants import Tenant
from ipv6gate.dns import Deadline, DnsResolver, DnsSession
from ipv6gate.dns.model import Answer
from ipv6gate.evaluation.gate import Gate
from ipv6gate.evaluation.runner import CheckRunner, run_here
from ipv6gate.mail.event import parse_event
from ipv6gate.ports import TenantDirectory, TenantLookupError, answers_at_hand
from ipv6gate.ports.memory import InMemoryMessages, InMemoryTenants
from ipv6gate.settings import Settings
from ipv6gate.wiring import assemble_gate

OPTED_IN = Tenant("tenant.test", ipv6_inbound=True)


class Watched:
    """A DNS backend that notes each query (name, type, thread) and can hold answers until released."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.asked: list[tuple[str, str, str]] = []
        self.first = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def lookup(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, timeout: float) -> Answer:
        self.asked.append((name.to_text(), rdtype.name, threading.current_thread().name))
        self.first.set()
        self.release.wait(5.0)
        return self.inner.lookup(name, rdtype, timeout)


class RemoteTenants(InMemoryTenants):
    """Tenants behind a store (``at_hand`` False); a lookup may wait for a DNS query, or fail."""

    def __init__(self, tenants: Iterable[Tenant], *, wait_for: threading.Event | None = None) -> None:
        super().__init__(tenants)
        self.wait_for = wait_for
        self.saw_dns_first: bool | None = None
        self.error: TenantLookupError | None = None

    def at_hand(self, domains: Iterable[str]) -> bool:
        return False

    def get_many(self, domains: Iterable[str]) -> dict[str, Tenant]:
        if self.wait_for is not None:
            self.saw_dns_first = self.wait_for.wait(2.0)
        if self.error is not None:
            raise self.error
        return super().get_many(domains)


@pytest.fixture
def watched(keys: world.Keys) -> Watched:
    return Watched(world.zone_backend(keys))


def gate_with(watched: Watched, tenants: TenantDirectory, messages: InMemoryMessages | None = None) -> Gate:
    resolver = DnsResolver(watched, query_timeout=1.0, query_limit=60)
    return assemble_gate(Settings.from_env({"AWS_REGION": "eu-west-1"}), resolver, tenants, messages)


def comparable(decision: Any) -> dict[str, Any]:
    """The decision as logged, without what varies run to run (time, queries a cancelled lookup got out)."""
    out: dict[str, Any] = decision.to_dict()
    for key in ("elapsed_ms", "dns_queries"):
        out.pop(key, None)
    return out


def test_the_ptr_is_asked_in_the_calling_thread_and_spf_on_the_pool(watched: Watched) -> None:
    decision = gate_with(watched, InMemoryTenants([OPTED_IN])).evaluate(parse_event(world.ses_event()))
    assert decision.verdicts[0].verdict.value == "accept"
    threads = {qtype: thread for _name, qtype, thread in watched.asked}
    assert threads["PTR"] == threading.current_thread().name
    assert threads["TXT"].startswith("ipv6gate-check")


def test_ptr_and_spf_go_out_while_a_remote_tenant_lookup_is_under_way(watched: Watched) -> None:
    tenants = RemoteTenants([OPTED_IN], wait_for=watched.first)
    decision = gate_with(watched, tenants).evaluate(parse_event(world.ses_event()))
    assert tenants.saw_dns_first is True  # a query was sent before the store answered
    assert {qtype for _name, qtype, _thread in watched.asked} >= {"PTR", "TXT"}
    assert decision.verdicts[0].verdict.value == "accept" and decision.checks.iprev.result is Result.PASS


def test_tenants_at_hand_get_no_speculative_dns(watched: Watched) -> None:
    tenants = InMemoryTenants([Tenant("optout.test", ipv6_inbound=False)])
    decision = gate_with(watched, tenants).evaluate(parse_event(world.ses_event(recipients=("b@optout.test",))))
    assert watched.asked == [] and decision.dns_queries == 0


@pytest.mark.parametrize("ip", [world.GOOD_IP, world.NO_PTR_IP])
def test_speculative_dns_changes_no_decision_when_nobody_opted_in(watched: Watched, keys: world.Keys, ip: str) -> None:
    event = parse_event(world.ses_event(ip=ip, recipients=("b@optout.test", "c@nobody.test")))
    optout = [Tenant("optout.test", ipv6_inbound=False)]
    spoken = gate_with(watched, RemoteTenants(optout)).evaluate(event)
    plain = gate_with(Watched(world.zone_backend(keys)), InMemoryTenants(optout)).evaluate(event)
    assert comparable(spoken) == comparable(plain)
    assert spoken.checks.iprev.result is Result.SKIPPED and plain.dns_queries == 0


def test_a_tenant_error_ends_as_it_did_while_the_speculative_dns_is_still_out(
    watched: Watched, keys: world.Keys
) -> None:
    """The answers arrive only after the decision: it is the fail-open one, with the same note and fault."""
    event = parse_event(world.ses_event(ip=world.NO_PTR_IP))
    error = TenantLookupError("DynamoDB t: ProvisionedThroughputExceededException")
    remote = RemoteTenants([OPTED_IN])
    remote.error = error
    watched.release.clear()  # every answer held until the decision is made
    try:
        speculative = gate_with(watched, remote).evaluate(event)
    finally:
        watched.release.set()
    at_hand = InMemoryTenants([OPTED_IN])
    at_hand.get_many = lambda domains: (_ for _ in ()).throw(error)  # type: ignore[method-assign]
    plain = gate_with(Watched(world.zone_backend(keys)), at_hand).evaluate(event)
    assert watched.first.wait(2.0)  # the speculative lookups were sent
    assert comparable(speculative) == comparable(plain)
    assert speculative.disposition == "CONTINUE" and speculative.faults == ("tenant_lookup",)
    assert any("tenant lookup failed" in note for note in speculative.notes)


def test_a_crash_in_a_check_run_here_is_a_temperror_as_on_the_pool(resolver: DnsResolver) -> None:
    def crash(session: DnsSession) -> CheckResult:
        raise RuntimeError("library bug")

    runner = CheckRunner(resolver)
    try:
        here = run_here(resolver, "iprev", crash, Deadline(5.0))
        pooled = runner.start("spf", crash, Deadline(5.0))
        results = runner.collect([here, pooled], None)
    finally:
        runner.shutdown()
    assert here.future.done()
    assert results["iprev"].result is Result.TEMPERROR and "check crashed: RuntimeError" in results["iprev"].reason
    assert results["spf"].reason == results["iprev"].reason


def _check_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("ipv6gate-check")}


@pytest.mark.parametrize("prestart", [True, False])
def test_prestart_starts_every_pool_thread_at_once(resolver: DnsResolver, prestart: bool) -> None:
    before = _check_threads()  # other tests' idle pools may end theirs meanwhile: only new ones count
    runner = CheckRunner(resolver, max_workers=4, prestart=prestart)
    try:
        deadline = time.monotonic() + 2.0
        while prestart and len(_check_threads() - before) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(_check_threads() - before) == (4 if prestart else 0)
    finally:
        runner.shutdown()


def test_the_tenant_cache_is_at_hand_only_for_fresh_entries() -> None:
    store = RemoteTenants([OPTED_IN])
    now = [1000.0]
    cache = CachedTenantDirectory(store, ttl=30, clock=lambda: now[0])
    assert not answers_at_hand(cache, ["tenant.test"])
    cache.get_many(["tenant.test", "absent.test"])
    assert answers_at_hand(cache, ["tenant.test", "absent.test"])  # absence is cached too
    assert not answers_at_hand(cache, ["tenant.test", "other.test"])
    now[0] += 31
    assert not answers_at_hand(cache, ["tenant.test"])
    assert answers_at_hand(CachedTenantDirectory(InMemoryTenants(), ttl=30), ["x.test"])  # memory behind it
    assert answers_at_hand(InMemoryTenants(), ["x.test"])
