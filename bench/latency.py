"""Decision latency per scenario: the gate, a plain sequential baseline, and authheaders.

All three ask the same Knot server through the same ``DelayingDnsProxy``, with no DNS cache, for
domains that no earlier decision has asked about. Decisions of the three engines are interleaved
(gate i, baseline i, authheaders i, gate i+1, ...) so that drift in the machine's load hits all alike.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import ipaddress
import json
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import Any

import dns.exception
import dns.nameserver
import dns.resolver

from bench.scenarios import Scenario
from bench.stats import Summary, percentile, summarize
from bench.world import TENANT, Sender, event, message
from devstack import world
from devstack.dns_proxy import DelayingDnsProxy
from ipv6gate.decision.tenants import Tenant
from ipv6gate.evaluation.gate import Gate
from ipv6gate.evaluation.record import Decision
from ipv6gate.mail.event import Mail, parse_event
from ipv6gate.ports.memory import InMemoryMessages, InMemoryTenants
from ipv6gate.settings import Settings
from ipv6gate.wiring import build_gate

_CLIENT = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")
SPF_QUERYTIME = 10.0


@dataclass
class Case:
    """One decision to make: who sends, the raw message, and the SES event for it."""

    sender: Sender
    raw: bytes
    message_id: str
    mail: Mail
    received: str  # SES's Received header, where every engine reads the client address from
    event: dict[str, Any]  # the SES receipt event, as the handler gets it
    deciding: frozenset[tuple[str, str]] = frozenset()  # the queries whose answers decide (Scenario)


@dataclass
class EngineRun:
    engine: str
    samples_ms: list[float] = field(default_factory=list)
    proxy_queries: list[int] = field(default_factory=list)
    decision_queries: list[int] = field(default_factory=list)  # the gate's own count (Decision.dns_queries)
    lead_ms: list[float] = field(default_factory=list)  # from the call to the first query reaching the proxy
    tail_ms: list[float] = field(default_factory=list)  # from the last answer (before returning) to the return
    decided_ms: list[float] = field(default_factory=list)  # from the deciding answer to the return
    held_ms: list[float] = field(default_factory=list)  # the deciding query at the proxy: received to answered
    undecided: int = 0  # decisions that returned before the deciding answer was sent (or never got one)
    outcomes: Counter[str] = field(default_factory=Counter)
    skipped: str = ""  # why this engine has no numbers for the scenario

    def summary(self) -> Summary | None:
        return summarize(self.samples_ms) if self.samples_ms else None

    def to_dict(self) -> dict[str, Any]:
        summary = self.summary()
        return {
            "engine": self.engine,
            "skipped": self.skipped or None,
            "latency_ms": summary.to_dict() if summary else None,
            "samples_ms": [round(s, 3) for s in self.samples_ms],
            "proxy_queries_median": _median_int(self.proxy_queries),
            "decision_queries_median": _median_int(self.decision_queries),
            "lead_ms_median": round(summarize(self.lead_ms).median, 3) if self.lead_ms else None,
            "tail_ms_median": round(summarize(self.tail_ms).median, 3) if self.tail_ms else None,
            "lead_ms": _spread(self.lead_ms),
            "decided_ms": _spread(self.decided_ms),
            "held_ms": _spread(self.held_ms),
            "undecided": self.undecided,
            "outcomes": dict(self.outcomes),
        }


def _spread(values: list[float]) -> dict[str, float] | None:
    """p50 and p99 (nearest rank) in ms."""
    if not values:
        return None
    return {"n": len(values), "p50": round(summarize(values).median, 3), "p99": round(percentile(values, 99), 3)}


def _median_int(values: list[int]) -> float | None:
    return summarize([float(v) for v in values]).median if values else None


def make_case(
    sender: Sender,
    keys: world.Keys,
    message_id: str,
    *,
    size: int = 0,
    deciding: frozenset[tuple[str, str]] = frozenset(),
) -> Case:
    raw = message(sender, keys, size=size)
    ses = event(sender, raw, message_id)
    mail = parse_event(ses)
    received = next(v for n, v in mail.headers if n.lower() == "received")
    return Case(sender, raw, message_id, mail, received, ses, deciding)


def gate_settings(proxy: DelayingDnsProxy, *, cache_size: int) -> Settings:
    return Settings.from_env(
        {
            "AWS_REGION": world.RECEIVER.split(".")[1],  # trusts inbound-smtp.<region>.amazonaws.com
            "DNS_SERVERS": proxy.servers_env,
            "DNS_CACHE_SIZE": str(cache_size),
            "DNS_QUERY_TIMEOUT_SECONDS": "2",
            "DECISION_BUDGET_SECONDS": "10",
        }
    )


def make_gate(settings: Settings, messages: InMemoryMessages) -> Gate:
    return build_gate(
        settings, tenants=InMemoryTenants([Tenant(TENANT, ipv6_inbound=True)]), messages=messages, act=False
    )


def outcome_of(decision: Decision | dict[str, Any]) -> str:
    """``accept`` or the enhanced status code of the (first) recipient's reply (of a decision or its log form)."""
    whole: dict[str, Any] = decision if isinstance(decision, dict) else decision.to_dict()
    row = whole["recipients"][0]
    reply = row.get("reply")
    return "accept" if not reply else str(reply).split()[1]


class Handler:
    """The Lambda's handler body (``handle_ses_event``) around a gate, its log line kept in memory.

    What the bench times is this call, as SES makes it: the event parsed, the tenants looked up, the
    checks run, the decision logged and counted. The outcome is read back from the logged decision.
    """

    _shared: tuple[Any, Any, io.StringIO] | None = None  # Powertools keeps one logger per service name

    def __init__(self, gate: Gate) -> None:
        from aws_lambda_powertools import Logger, Metrics

        from ipv6gate.entrypoints.telemetry import log_json

        if Handler._shared is None:
            stream = io.StringIO()
            shared = Logger(service="ipv6gate-bench", stream=stream, json_serializer=log_json)
            Handler._shared = (shared, Metrics(namespace="ipv6gate-bench"), stream)
        self.gate = gate
        self.logger: Logger = Handler._shared[0]
        self.metrics: Metrics = Handler._shared[1]
        self.stream = Handler._shared[2]

    def __call__(self, raw_event: dict[str, Any]) -> None:
        from aws_lambda_powertools.utilities.data_classes.ses_event import SESEvent

        from ipv6gate.entrypoints.lambda_gate import handle_ses_event

        handle_ses_event(SESEvent(raw_event), self.gate, self.logger, self.metrics)  # as @event_source passes it

    def logged(self) -> dict[str, Any]:
        """The decision of the last call, from its log line; empties the log and the metrics."""
        lines = self.stream.getvalue().splitlines()
        self.stream.seek(0)
        self.stream.truncate()
        self.metrics.clear_metrics()
        decision: dict[str, Any] = json.loads(lines[-1])["decision"]
        return decision


# -- the plain libraries ----------------------------------------------------------------------------------


@contextlib.contextmanager
def plain_dns(proxy: DelayingDnsProxy) -> Iterator[None]:
    """dnspython's default resolver pointed at the proxy, and pyspf on its own dnspython driver.

    dnspython's module-level functions (``dns.resolver.resolve``, the deprecated ``query``) use
    ``dns.resolver.default_resolver``; pyspf's ``DNSLookup_dnspython`` and dkimpy's default TXT lookup
    go through them. The gate replaces ``spf.DNSLookup`` with its own hook when its SPF check is first
    imported; that is put back on the way out.
    """
    import spf

    saved = (dns.resolver.default_resolver, spf.DNSLookup)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(proxy.host, proxy.port)]
    resolver.cache = None
    resolver.timeout = resolver.lifetime = 5.0
    dns.resolver.default_resolver = resolver
    spf.DNSLookup = spf.DNSLookup_dnspython
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # pyspf calls dns.resolver.query
            yield
    finally:
        dns.resolver.default_resolver, spf.DNSLookup = saved


def _client(case: Case) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    found = _CLIENT.search(case.received)
    if found is None:
        raise ValueError(f"no client address in {case.received!r}")
    return ipaddress.ip_address(found.group(1))


def _has_ptr(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        answer = dns.resolver.resolve_address(str(ip), lifetime=5.0)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return False
    return len(answer) > 0


def baseline_decide(case: Case) -> str:
    """The rule with the libraries used plainly, one check after the other, stopping when decided."""
    import dkim
    import spf

    ip = _client(case)
    if ip.version == 4:
        return "accept"
    try:
        if not _has_ptr(ip):
            return "4.7.25"
    except dns.exception.DNSException:
        return "accept"  # temperror: let it through, as the gate does by default
    result, _explanation = spf.check2(i=str(ip), s=case.sender.mail_from, h=case.sender.helo, querytime=SPF_QUERYTIME)
    if result == "pass":
        return "accept"
    if dkim.verify(case.raw):  # dkimpy's default DNS: dnspython's resolve() for the key TXT
        return "accept"
    return "4.7.26"


def load_authheaders() -> ModuleType | str:
    """The module, or why it cannot be used."""
    try:
        return importlib.import_module("authheaders")
    except ImportError as exc:
        return f"authheaders not installed ({exc}); `make bench` installs bench/requirements.txt"


def authheaders_decide(module: ModuleType, case: Case) -> str:
    """PTR with dnspython (authheaders has no iprev), then ``authenticate_message`` for SPF and DKIM."""
    ip = _client(case)
    if not _has_ptr(ip):
        return "4.7.25"
    header = str(
        module.authenticate_message(
            case.raw,
            "bench.test",
            spf=True,
            dkim=True,
            arc=False,
            dmarc=False,
            ip=str(ip),
            mail_from=case.sender.mail_from,
            helo=case.sender.helo,
        )
    )
    results = dict(re.findall(r"\b(spf|dkim)=(\w+)", header))
    return "accept" if "pass" in (results.get("spf"), results.get("dkim")) else "4.7.26"


def authheaders_applies(scenario: Scenario) -> str:
    """Empty when authheaders has something to do in ``scenario``, else why not."""
    if not scenario.ipv6:
        return "IPv4: outside the rule, nothing to authenticate"
    if not scenario.ptr_ok:
        return "no PTR: the verdict comes from the PTR alone (authheaders does no iprev)"
    return ""


# -- the run ------------------------------------------------------------------------------------------------


def quiesce(proxy: DelayingDnsProxy, limit: float = 10.0) -> None:
    """Wait until the proxy has been idle, with no new query, for two delays (at most ``limit`` s).

    A gate that returns as soon as its verdict is certain may leave a check running in the background
    (its later queries still reach the proxy): they are counted with the decision that caused them,
    and they must not overlap the next decision's measurement.
    """
    quiet = max(2 * proxy.delay, 0.02)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        proxy.wait_idle(max(0.0, deadline - time.monotonic()))
        seen = proxy.queries
        time.sleep(quiet)
        if proxy.queries == seen and proxy.inflight == 0:
            return


def probe_rtt(proxy: DelayingDnsProxy, count: int = 10) -> list[float]:
    """Milliseconds of single plain queries through the proxy (delay + loopback + Knot + dnspython)."""
    import dns.message
    import dns.query

    samples: list[float] = []
    for _ in range(count):
        query = dns.message.make_query("bench.test.", "SOA")
        started = time.perf_counter()
        dns.query.udp(query, proxy.host, port=proxy.port, timeout=5.0)
        samples.append((time.perf_counter() - started) * 1000)
    quiesce(proxy)
    return samples


def _measure(
    proxy: DelayingDnsProxy,
    run: EngineRun,
    call: Callable[[], None],
    result: Callable[[], tuple[str, int | None]],
    deciding: frozenset[tuple[str, str]] = frozenset(),
) -> None:
    """Time ``call``; then ``result`` (outcome, own query count), untimed; the proxy's log gives lead and tail."""
    before = proxy.queries
    started = time.monotonic()
    call()
    ended = time.monotonic()
    outcome, own_count = result()
    elapsed = (ended - started) * 1000
    quiesce(proxy)
    mine = [r for r in list(proxy.log) if r.received >= started]
    if mine:
        run.lead_ms.append((min(r.received for r in mine) - started) * 1000)
        answers = [r.answered for r in mine if r.answered is not None and r.answered <= ended]
        if answers:
            run.tail_ms.append((ended - max(answers)) * 1000)
    if deciding:
        decisive = [r for r in mine if (r.qname, r.qtype) in deciding and r.answered is not None]
        if len({(r.qname, r.qtype) for r in mine if (r.qname, r.qtype) in deciding}) == len(deciding) and decisive:
            last = max(decisive, key=lambda r: r.answered or 0.0)
            assert last.answered is not None
            if last.answered <= ended:
                run.decided_ms.append((ended - last.answered) * 1000)
                run.held_ms.append((last.answered - last.received) * 1000)
            else:  # returned before the verdict could be known: a bug or a fault, counted apart
                run.undecided += 1
        else:
            run.undecided += 1
    run.samples_ms.append(elapsed)
    run.proxy_queries.append(proxy.queries - before)
    if own_count is not None:
        run.decision_queries.append(own_count)
    run.outcomes[outcome] += 1


def run_scenario(
    scenario: Scenario,
    proxy: DelayingDnsProxy,
    keys: world.Keys,
    iterations: int,
    *,
    authheaders: ModuleType | str,
    baseline: bool = True,
) -> dict[str, EngineRun]:
    senders = [scenario.sender(i) for i in range(iterations + 1)]
    cases = [
        make_case(s, keys, f"{scenario.name}-{i}", deciding=scenario.deciding_queries(s)) for i, s in enumerate(senders)
    ]
    warmup, measured = cases[-1], cases[:-1]
    messages = InMemoryMessages({c.message_id: c.raw for c in cases})
    handler = Handler(make_gate(gate_settings(proxy, cache_size=0), messages))

    def handled() -> tuple[str, int | None]:
        decision = handler.logged()
        return outcome_of(decision), int(decision["dns_queries"])

    runs = {"gate": EngineRun("gate"), "baseline": EngineRun("baseline"), "authheaders": EngineRun("authheaders")}
    if not baseline:
        runs["baseline"].skipped = "--no-baseline"
    why_not = authheaders if isinstance(authheaders, str) else authheaders_applies(scenario)
    if not baseline:
        why_not = "--no-baseline"
    runs["authheaders"].skipped = why_not
    module = authheaders if isinstance(authheaders, ModuleType) else None

    # Warm-up (not counted): the gate's lazy imports, the libraries' first-call costs.
    handler(warmup.event)
    handler.logged()
    quiesce(proxy)
    with plain_dns(proxy):
        if baseline:
            baseline_decide(warmup)
        if module is not None and not why_not:
            authheaders_decide(module, warmup)
    quiesce(proxy)

    def plain(decide: Callable[[Case], str], case: Case) -> tuple[Callable[[], None], Callable[[], tuple[str, None]]]:
        outcome: list[str] = []
        return (lambda: outcome.append(decide(case))), (lambda: (outcome[0], None))

    def with_authheaders(case: Case) -> str:
        assert module is not None
        return authheaders_decide(module, case)

    for case in measured:
        _measure(proxy, runs["gate"], partial(handler, case.event), handled, case.deciding)
        with plain_dns(proxy):
            if baseline:
                _measure(proxy, runs["baseline"], *plain(baseline_decide, case), case.deciding)
            if module is not None and not why_not:
                _measure(proxy, runs["authheaders"], *plain(with_authheaders, case), case.deciding)
    return runs
