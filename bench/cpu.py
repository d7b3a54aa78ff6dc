"""Warm CPU time per decision: what a warm container spends on the processor, DNS answered from cache.

One gate with the DNS cache on (``DNS_CACHE_SIZE=4096``): each decision is made once (filling the
cache through the proxy), then repeated on the same domains. CPU is ``time.process_time()`` around
``Gate.evaluate``: all threads of the process, so the checks' pool threads count. The proxy runs in
this process too, but a warm decision sends it nothing (``dns_queries_during`` says so).
"""

from __future__ import annotations

import time
from typing import Any

from bench.latency import gate_settings, make_case, make_gate, outcome_of, quiesce
from bench.scenarios import CPU_SENDER, CPU_V4_SENDER
from bench.stats import summarize
from devstack import world
from devstack.dns_proxy import DelayingDnsProxy
from ipv6gate.mail.event import parse_event
from ipv6gate.ports.memory import InMemoryMessages

MESSAGE_SIZE = 50_000


def measure_cpu(proxy: DelayingDnsProxy, keys: world.Keys, repetitions: int) -> dict[str, Any]:
    v4 = make_case(CPU_V4_SENDER, keys, "cpu-v4")
    v6 = make_case(CPU_SENDER, keys, "cpu-v6", size=MESSAGE_SIZE)
    gate = make_gate(gate_settings(proxy, cache_size=4096), InMemoryMessages({v6.message_id: v6.raw}))
    first = {name: outcome_of(gate.evaluate(case.mail)) for name, case in (("ipv4", v4), ("ipv6", v6))}
    quiesce(proxy)  # checks the first decision did not wait for may still be asking
    gate.evaluate(v6.mail)  # now every answer a decision can ask for is cached
    quiesce(proxy)
    before = proxy.queries
    out: dict[str, Any] = {"message_bytes": len(v6.raw), "outcomes": first, "repetitions": repetitions}
    for name, case in (("ipv4", v4), ("ipv6_dkim_50k", v6)):
        cpu_us: list[float] = []
        wall_us: list[float] = []
        for _ in range(repetitions if name == "ipv4" else max(10, repetitions // 4)):
            wall, cpu = time.perf_counter(), time.process_time()
            gate.evaluate(case.mail)
            cpu_us.append((time.process_time() - cpu) * 1e6)
            wall_us.append((time.perf_counter() - wall) * 1e6)
        out[name] = {"cpu_us": summarize(cpu_us).to_dict(), "wall_us": summarize(wall_us).to_dict()}
    # What reading the event costs on top (Powertools' SESEvent and validation), per invocation.
    ses = world.ses_event(ip=CPU_V4_SENDER.ip, helo=CPU_V4_SENDER.helo, mail_from=CPU_V4_SENDER.mail_from)
    parse_us: list[float] = []
    for _ in range(repetitions):
        cpu = time.process_time()
        parse_event(ses)
        parse_us.append((time.process_time() - cpu) * 1e6)
    out["parse_event"] = {"cpu_us": summarize(parse_us).to_dict()}
    quiesce(proxy)
    out["dns_queries_during"] = proxy.queries - before
    return out
