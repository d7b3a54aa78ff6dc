"""Targets and tables: the printed report and ``latest.md``, both made from the results dict alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.peers_table import peer_sections, peer_targets

LATENCY_FACTOR = 1.05
LEAD_MS = 1.0  # the call to the first DNS query
DECIDED_MS = 0.5  # the deciding answer to the return
COLD_RATIO = 0.5
COLD_WHOLE_RATIO = 0.6
WARM_V4_US = 100.0
WARM_V6_MS = 5.0
BIG_DKIM_S = 1.0
BIG_DKIM_MB = 100.0
BIG_SIZE = 30_000_000


def query_ms(results: dict[str, Any]) -> float:
    """The time of one DNS round trip: measured through the proxy when known, else the injected delay."""
    rtt = results["settings"].get("query_rtt_ms")
    return float(rtt["median"]) if rtt else float(results["settings"]["delay_ms"])


def _status(value: float | None, limit: float) -> str:
    if value is None:
        return "n/a"
    return "PASS" if value <= limit else "MISS"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value, its limit and PASS/MISS (n/a when not measured)."""
    out: list[dict[str, Any]] = []
    rtt = query_ms(results)
    for name, row in results.get("latency", {}).items():
        crit = row["scenario"]["critical_path"]
        latency = row["gate"]["latency_ms"]
        if not row["scenario"]["ipv6"] or not crit:
            continue
        value = latency["median"] / (crit * rtt) if latency and rtt else None
        out.append(
            {
                "key": name,
                "target": f"{name}: median <= {LATENCY_FACTOR} x critical path ({crit} x {rtt:.1f} ms per query)",
                "value": value,
                "limit": LATENCY_FACTOR,
                "unit": "x",
                "status": _status(value, LATENCY_FACTOR),
            }
        )
    out += _edge_targets(results.get("latency", {}))
    cold = results.get("cold_start", {})
    ratio = cold.get("init_ratio_lazy_to_eager")
    out.append(
        {
            "key": "cold_start",
            "target": f"handler module init (Lambda Init Duration) <= {COLD_RATIO} x eager-import init",
            "value": ratio,
            "limit": COLD_RATIO,
            "unit": "x",
            "status": _status(ratio, COLD_RATIO),
        }
    )
    whole = cold.get("ratio_shipped_to_eager_source")
    out.append(
        {
            "key": "cold_start_whole",
            "target": f"whole cold start (init + IPv4 + IPv6) as shipped <= {COLD_WHOLE_RATIO} x eager, no byte code",
            "value": whole,
            "limit": COLD_WHOLE_RATIO,
            "unit": "x",
            "status": _status(whole, COLD_WHOLE_RATIO),
        }
    )
    cpu = results.get("cpu", {})
    v4 = cpu.get("ipv4", {}).get("cpu_us", {}).get("median")
    v6 = cpu.get("ipv6_dkim_50k", {}).get("cpu_us", {}).get("median")
    out.append(
        {
            "key": "warm_ipv4",
            "target": f"warm IPv4 decision <= {WARM_V4_US:g} us CPU",
            "value": v4,
            "limit": WARM_V4_US,
            "unit": "us",
            "status": _status(v4, WARM_V4_US),
        }
    )
    v6_ms = v6 / 1000 if v6 is not None else None
    out.append(
        {
            "key": "warm_ipv6",
            "target": f"warm IPv6 decision with 50 KB DKIM <= {WARM_V6_MS:g} ms CPU",
            "value": v6_ms,
            "limit": WARM_V6_MS,
            "unit": "ms",
            "status": _status(v6_ms, WARM_V6_MS),
        }
    )
    big = next((r for r in results.get("dkim_sizes", []) if r.get("size") == BIG_SIZE and "error" not in r), None)
    seconds = (big["dkim_s"] if big["dkim_s"] is not None else big["wall_s"]) if big else None
    peak = max(big["rss_delta_mb"], big["tracemalloc_peak_mb"]) if big else None
    out.append(
        {
            "key": "dkim_30mb_time",
            "target": f"30 MB DKIM <= {BIG_DKIM_S:g} s",
            "value": seconds,
            "limit": BIG_DKIM_S,
            "unit": "s",
            "status": _status(seconds, BIG_DKIM_S),
        }
    )
    out.append(
        {
            "key": "dkim_30mb_memory",
            "target": f"30 MB DKIM <= {BIG_DKIM_MB:g} MB peak memory (max of RSS growth, tracemalloc)",
            "value": peak,
            "limit": BIG_DKIM_MB,
            "unit": "MB",
            "status": _status(peak, BIG_DKIM_MB),
        }
    )
    return out + peer_targets(results)


def _edge_targets(latency: dict[str, Any]) -> list[dict[str, Any]]:
    """The gate's own time around the DNS: before its first query, after the deciding answer (worst p50 of the
    IPv6 scenarios)."""
    out: list[dict[str, Any]] = []
    for key, field, limit, what in (
        ("first_query", "lead_ms", LEAD_MS, "first DNS query after the call"),
        ("after_deciding", "decided_ms", DECIDED_MS, "return after the deciding answer"),
    ):
        p50s = {
            name: row["gate"][field]["p50"]
            for name, row in latency.items()
            if row["scenario"]["ipv6"] and row["scenario"]["critical_path"] and row["gate"].get(field)
        }
        worst = max(p50s, key=lambda n: p50s[n]) if p50s else None
        value = p50s[worst] if worst else None
        out.append(
            {
                "key": key,
                "target": f"{what}: p50 <= {limit:g} ms in every IPv6 scenario"
                + (f" (worst: {worst})" if worst else ""),
                "value": value,
                "limit": limit,
                "unit": "ms",
                "status": _status(value, limit),
            }
        )
    return out


# -- rendering ------------------------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _p50_p99(spread: dict[str, float] | None) -> str:
    return "-" if not spread else f"{_f(spread['p50'], 2)} / {_f(spread['p99'], 2)}"


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _sections(results: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]], list[str]]]:  # noqa: PLR0915
    """(title, headers, rows, notes) for every part of the report."""
    sections: list[tuple[str, list[str], list[list[str]], list[str]]] = []
    s = results["settings"]
    delay = float(s["delay_ms"])
    rtt = query_ms(results)
    status = {t["key"]: t["status"] for t in results.get("targets", [])}

    latency = results.get("latency", {})
    rows: list[list[str]] = []
    for name, row in latency.items():
        sc, gate = row["scenario"], row["gate"]
        lat = gate["latency_ms"] or {}
        med = lat.get("median")
        crit = sc["critical_path"]
        rows.append(
            [
                name,
                sc["expected"],
                ", ".join(f"{k} {v}" for k, v in gate["outcomes"].items()),
                f"{crit} / {sc['all_checks_path']}",
                _f(med),
                _f(lat.get("p95")),
                _f(med / delay, 2) if med is not None and delay else "-",
                _f(med / (crit * delay), 2) if med is not None and crit and delay else "-",
                _f(med / (crit * rtt), 2) if med is not None and crit and rtt else "-",
                status.get(name, "-"),
                f"{_f(gate['proxy_queries_median'], 0)} / {_f(gate['decision_queries_median'], 0)}",
                _p50_p99(gate.get("lead_ms")),
                _p50_p99(gate.get("decided_ms"))
                + (f" ({gate['undecided']} undecided)" if gate.get("undecided") else ""),
                _p50_p99(gate.get("held_ms")),
            ]
        )
    sections.append(
        (
            f"Decision latency, gate ({s['iterations']} decisions per scenario, {delay:g} ms added per DNS query, "
            "no DNS cache, distinct domains)",
            [
                "scenario",
                "expected",
                "got",
                "crit path (verdict / all checks)",
                "median ms",
                "p95 ms",
                "median in delays",
                "median / (crit x delay)",
                "median / (crit x query)",
                f"target <= {LATENCY_FACTOR}",
                "DNS queries proxy / gate",
                "ms to 1st query p50 / p99",
                "ms after deciding answer p50 / p99",
                "deciding query at proxy ms p50 / p99",
            ],
            rows,
            [
                "crit path: dependent DNS round trips the verdict needs (bench/README.md); "
                "all checks: what a gate that waits for every check needs.",
                f"query: one plain dnspython query through the proxy takes {rtt:.1f} ms (median; "
                f"{delay:g} ms delay + loopback, proxy, Knot); the target is on this unit.",
                "The call is the handler's (event parsed, tenants, checks, decision logged and counted). "
                f"ms to 1st query: from the call until the kernel received its first query at the proxy "
                f"(target p50 <= {LEAD_MS:g}); after deciding answer: from the proxy sending the answer that "
                f"determines the verdict (bench/scenarios.py) to the return (target p50 <= {DECIDED_MS:g}); "
                "undecided: returns before that answer (none expected). Deciding query at proxy: from its arrival "
                "to its answer (the delay, plus the proxy's own lag with several queries at once): not the gate's.",
            ],
        )
    )

    rows = []
    for name, row in latency.items():
        gate, base, ah = row["gate"], row["baseline"], row["authheaders"]
        g = (gate["latency_ms"] or {}).get("median")
        b = (base["latency_ms"] or {}).get("median")
        a = (ah["latency_ms"] or {}).get("median")
        rows.append(
            [
                name,
                _f(g),
                f"{_f(b)} ({row['scenario']['sequential_path']})" if b is not None else f"- ({base['skipped']})",
                _f(g / b, 2) if g is not None and b else "-",
                _f(a) if a is not None else f"- ({ah['skipped']})",
                _f(g / a, 2) if g is not None and a else "-",
                f"{_f(gate['proxy_queries_median'], 0)} / {_f(base['proxy_queries_median'], 0)} / "
                f"{_f(ah['proxy_queries_median'], 0)}",
            ]
        )
    sections.append(
        (
            "Gate against the libraries used plainly (same proxy, same domains, medians in ms)",
            [
                "scenario",
                "gate",
                "sequential baseline (its path in delays)",
                "gate / baseline",
                "authheaders",
                "gate / authheaders",
                "DNS queries gate / baseline / authheaders",
            ],
            rows,
            [
                "baseline: dnspython PTR, then spf.check2, then dkim.verify, stopping when decided; "
                "authheaders: dnspython PTR, then authenticate_message(spf, dkim).",
            ],
        )
    )

    cold = results.get("cold_start", {})
    if "lazy_source" in cold:
        names = {
            "lazy": "as shipped: byte code, lazy imports",
            "eager": "eager imports first, byte code",
            "lazy_source": "lazy imports, no byte code",
            "eager_source": "eager imports first, no byte code",
        }
        rows = []
        for variant, label in names.items():
            c = cold[variant]
            rows.append(
                [
                    label,
                    _f(c["total_s"] * 1000),
                    _f(c["eager_s"] * 1000),
                    _f(c["init_s"] * 1000),
                    _f(c["ipv4_s"] * 1000),
                    _f(c["ipv6_s"] * 1000),
                    _f(c["process_wall_s"] * 1000),
                    str(int(c["modules"])),
                ]
            )
        top = ", ".join(f"{r['package']} {r['ms']:.0f}" for r in cold.get("lazy_import_profile", [])[:6])
        sections.append(
            (
                f"Cold start (the sam build's code, median of {cold['runs']} fresh processes each)",
                [
                    "variant",
                    "cold start ms",
                    "eager imports ms",
                    "import app ms",
                    "IPv4 ms",
                    "IPv6 ms",
                    "process ms",
                    "modules",
                ],
                rows,
                [
                    f"whole cold start (init + IPv4 + first IPv6 decision), as shipped against eager without byte "
                    f"code (the layer before): {cold['ratio_shipped_to_eager_source']:.2f} "
                    f"(target <= {COLD_WHOLE_RATIO}): {status.get('cold_start_whole', '-')}",
                    f"of which lazy imports: {cold['ratio_lazy_to_eager']:.2f} with byte code, "
                    f"{cold['ratio_lazy_to_eager_source_only']:.2f} without; byte code: "
                    f"{cold['ratio_bytecode']:.2f} (lazy, with against without)",
                    f"module init (import app, Lambda's Init Duration) ratio {cold['init_ratio_lazy_to_eager']:.2f} "
                    f"(target <= {COLD_RATIO}): {status.get('cold_start', '-')}",
                    f"import time by package, as shipped (ms, -X importtime, one run): {top}",
                ],
            )
        )
    elif cold.get("skipped"):
        sections.append(("Cold start", ["skipped"], [[str(cold["skipped"])]], []))

    cpu = results.get("cpu", {})
    if "ipv4" in cpu:
        rows = [
            [
                "IPv4",
                _f(cpu["ipv4"]["cpu_us"]["median"]),
                _f(cpu["ipv4"]["cpu_us"]["p95"]),
                _f(cpu["ipv4"]["wall_us"]["median"]),
                f"<= {WARM_V4_US:g} us",
            ],
            [
                f"IPv6, DKIM {cpu['message_bytes'] / 1000:.0f} KB",
                _f(cpu["ipv6_dkim_50k"]["cpu_us"]["median"]),
                _f(cpu["ipv6_dkim_50k"]["cpu_us"]["p95"]),
                _f(cpu["ipv6_dkim_50k"]["wall_us"]["median"]),
                f"<= {WARM_V6_MS * 1000:g} us",
            ],
        ]
        for row, key in zip(rows, ("warm_ipv4", "warm_ipv6"), strict=True):
            row.append(status.get(key, "-"))
        sections.append(
            (
                "Warm CPU per decision (Gate.evaluate, DNS from cache)",
                ["decision", "CPU median us", "CPU p95 us", "wall median us", "target", "status"],
                rows,
                [
                    f"parse_event (per invocation, not in the above): {_f(cpu['parse_event']['cpu_us']['median'])} us; "
                    f"DNS queries while measuring: {cpu['dns_queries_during']}; outcomes {cpu['outcomes']}",
                ],
            )
        )

    sizes = results.get("dkim_sizes", [])
    if sizes:
        rows = []
        for r in sizes:
            if "error" in r:
                rows.append([r["label"], "error", "-", "-", "-", "-", r["error"].splitlines()[-1][:60]])
                continue
            rows.append(
                [
                    r["label"],
                    f"{_f(r['dkim_s'], 3)} / {_f(r.get('dkim_s_min'), 3)}" if r["dkim_s"] is not None else "-",
                    _f(r["wall_s"], 3),
                    _f(r["rss_delta_mb"]),
                    _f(r["tracemalloc_peak_mb"]),
                    r["dkim"],
                    r["verdict"],
                ]
            )
        sections.append(
            (
                "DKIM on large messages (fresh process per size, 3 decisions each; in-memory store; zone-file DNS)",
                [
                    "size",
                    "DKIM check s (median / min)",
                    "evaluate s",
                    "peak RSS growth MB",
                    "tracemalloc peak MB",
                    "dkim",
                    "verdict",
                ],
                rows,
                [f"targets for 30 MB: <= {BIG_DKIM_S:g} s and <= {BIG_DKIM_MB:g} MB"],
            )
        )

    milter = results.get("milter", {})
    if milter.get("latency"):
        rows = [
            [
                name,
                row["expected"],
                ", ".join(row["replies"]),
                _f(row["critical_path_ms"], 0),
                _f(row["eod_to_reply_ms"].get("median")),
                _f(row["eod_to_reply_ms"].get("p95")),
                _f(row["beyond_critical_path_ms"].get("median")),
                _f(row["beyond_critical_path_ms"].get("p95")),
            ]
            for name, row in milter["latency"].items()
        ]
        tp = milter.get("throughput", {})
        sections.append(
            (
                f"SMTP time: ipv6gate milter behind Postfix (+{_f(milter['delay_ms'], 0)} ms per DNS query)",
                [
                    "scenario",
                    "expected",
                    "replies",
                    "DNS after end of DATA (ms)",
                    "end of DATA -> reply p50",
                    "p95",
                    "beyond critical path p50",
                    "p95",
                ],
                rows,
                [
                    f"Throughput, no DNS delay: {tp.get('sessions')} sessions by {tp.get('concurrent')} concurrent "
                    f"clients in {tp.get('seconds')} s = {tp.get('sessions_per_second')} sessions/s "
                    f"(replies {tp.get('replies')}); client, Postfix and milter share the machine.",
                ],
            )
        )

    sections += peer_sections(results)

    cost = results.get("cost", {})
    if cost.get("per_scenario"):
        rows = [
            [
                name,
                str(c["billed_ms"]),
                f"{c['lambda_compute_usd']:.3f}",
                f"{c['lambda_requests_usd']:.3f}",
                f"{c['dynamodb_reads_usd']:.4f}",
                f"{c['total_usd']:.3f}",
            ]
            for name, c in cost["per_scenario"].items()
        ]
        p = cost["prices"]
        sections.append(
            (
                f"Estimated USD per million decisions (Lambda arm64, {cost['memory_mb']} MB from template.yaml)",
                ["scenario (median duration)", "billed ms", "compute", "requests", "DynamoDB reads", "total"],
                rows,
                [
                    f"{p['as_of']}: ${p['lambda_arm64_usd_per_gb_second']:.10f}/GB-s, "
                    f"${p['lambda_usd_per_million_requests']}/M requests, "
                    f"${p['dynamodb_on_demand_usd_per_million_rru']}/M RRU (0.5 RRU per IPv6 decision). "
                    "Excluded: cold starts, logging, trace writes, S3 GETs, SQS. See bench/cost.py.",
                ],
            )
        )

    rows = [
        [t["target"], "-" if t["value"] is None else f"{t['value']:.3g} {t['unit']}", t["status"]]
        for t in results.get("targets", [])
    ]
    sections.append(("Targets", ["target", "measured", "status"], rows, []))
    return sections


def _headline(results: dict[str, Any]) -> str:
    m = results["meta"]
    return (
        f"ipv6gate bench, {m['started']} — {m['nproc']} CPU ({m['cpu_model']}), Python {m['python']}, "
        f"git {m['git']} — ran {m['duration_s']:.0f} s; load average (1 min) {m['loadavg_start'][0]:g} at start, "
        f"{m.get('loadavg_end', ['?'])[0]} at end"
    )


def render_text(results: dict[str, Any]) -> str:
    parts = [_headline(results), ""]
    for title, headers, rows, notes in _sections(results):
        parts += [title, _text_table(headers, rows), *notes, ""]
    return "\n".join(parts)


def render_markdown(results: dict[str, Any]) -> str:
    parts = [_headline(results), ""]
    for title, headers, rows, notes in _sections(results):
        parts += [f"**{title}**", "", _md_table(headers, rows), ""]
        parts += [f"- {n}" for n in notes]
        if notes:
            parts.append("")
    return "\n".join(parts)
