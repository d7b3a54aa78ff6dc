"""The latency bench's own definitions: the deciding answer per scenario, and the targets read from results."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from bench.results_table import DECIDED_MS, LEAD_MS, targets
from bench.scenarios import SCENARIOS, Scenario
from bench.world import zone_texts
from devstack import world


def by_name(name: str) -> Scenario:
    return next(s for s in SCENARIOS if s.name == name)


def ptr_of(ip: str) -> tuple[str, str]:
    return (ipaddress.ip_address(ip).reverse_pointer + ".", "PTR")


def test_the_deciding_queries_are_the_ends_of_the_chains_the_critical_path_counts() -> None:
    spf, dkim, no_ptr, v4 = (by_name(n) for n in ("spf-accept", "dkim-accept", "no-ptr", "ipv4"))
    s = spf.sender(3)
    assert spf.deciding_queries(s) == {ptr_of(s.ip), (f"_spf.{s.domain}.", "TXT")}
    d = dkim.sender(3)  # SPF fails there: its answers cannot change an accept, so they do not decide
    assert dkim.deciding_queries(d) == {ptr_of(d.ip), (f"sel._domainkey.{d.domain}.", "TXT")}
    n = no_ptr.sender(3)
    assert no_ptr.deciding_queries(n) == {ptr_of(n.ip)}
    assert v4.deciding_queries(v4.sender(3)) == frozenset()
    assert spf.deciding_queries(s, fcrdns=True) == {(f"{s.helo}.", "AAAA"), (f"_spf.{s.domain}.", "TXT")}


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.ipv6], ids=lambda s: s.name)
def test_every_deciding_query_names_a_record_of_the_bench_zones(scenario: Scenario) -> None:
    sender = scenario.sender(0)
    zones = "".join(zone_texts([sender], world.make_keys()).values())
    for qname, _qtype in scenario.deciding_queries(sender):
        owner = qname.split(".bench.test.")[0] if ".bench.test." in qname else qname
        assert owner in zones or not scenario.ptr_ok  # the PTR of a client without one is NXDOMAIN


def _results(lead: dict[str, float], decided: dict[str, float]) -> dict[str, Any]:
    latency = {
        name: {
            "scenario": {"ipv6": True, "critical_path": 1},
            "gate": {
                "latency_ms": {"median": 52.0},
                "lead_ms": {"n": 30, "p50": lead[name], "p99": 9.0},
                "decided_ms": {"n": 30, "p50": decided[name], "p99": 9.0},
            },
        }
        for name in lead
    }
    return {"settings": {"delay_ms": 50.0, "query_rtt_ms": {"median": 51.0}}, "latency": latency}


def test_the_edge_targets_take_the_worst_p50_of_the_scenarios() -> None:
    got = {t["key"]: t for t in targets(_results({"a": 0.4, "b": LEAD_MS + 0.2}, {"a": 0.1, "b": DECIDED_MS}))}
    assert got["first_query"]["value"] == LEAD_MS + 0.2 and got["first_query"]["status"] == "MISS"
    assert "worst: b" in got["first_query"]["target"]
    assert got["after_deciding"]["value"] == DECIDED_MS and got["after_deciding"]["status"] == "PASS"
    assert got["a"]["status"] == "PASS" and got["a"]["value"] == pytest.approx(52.0 / 51.0)
