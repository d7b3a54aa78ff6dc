"""The peers section of the report (bench/peers.py's numbers): the three-way table, ratios, targets."""

from __future__ import annotations

from typing import Any

DKIM_BEYOND_DNS_MS = 3.0  # (c)'s dkim-pass reply, beyond the DNS still needed after DATA
LABELS = {"alone": "(a) Postfix alone", "chain": "(b) peer chain", "ipv6gate": "(c) ipv6gate milter"}

Section = tuple[str, list[str], list[list[str]], list[str]]


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def peer_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    peers = results.get("peers", {})
    if not peers.get("configs"):
        return []
    out = []
    broken = any(row.get("peers_died") for row in peers["configs"].values())  # no working chain to compare with
    for ratio in peers["ratios"]:
        value = ratio["sessions_per_second"]
        out.append(
            {
                "key": f"peers_sessions_{ratio['concurrency']}",
                "target": f"milter sessions/s >= peer chain's at {ratio['concurrency']} concurrent clients",
                "value": value,
                "limit": 1.0,
                "unit": "x",
                "status": "n/a" if broken else "PASS" if value >= 1.0 else "MISS",
            }
        )
    beyond = peers["targets"]["dkim_beyond_dns_ms"]
    out.append(
        {
            "key": "peers_dkim_reply",
            "target": f"milter DKIM-pass reply p50 <= DNS still needed after DATA + {DKIM_BEYOND_DNS_MS:g} ms",
            "value": beyond,
            "limit": DKIM_BEYOND_DNS_MS,
            "unit": "ms",
            "status": "n/a" if beyond is None else "PASS" if beyond <= DKIM_BEYOND_DNS_MS else "MISS",
        }
    )
    return out


def peer_sections(results: dict[str, Any]) -> list[Section]:
    peers = results.get("peers", {})
    configs = peers.get("configs")
    if not configs:
        return []
    latency_rows = []
    for name, row in configs.items():
        for scenario, cell in row["latency"].items():
            eod = cell["eod_to_reply_ms"] or {}
            after = cell["dns_after_data_ms"] if name == "ipv6gate" else None
            latency_rows.append(
                [
                    LABELS[name],
                    scenario,
                    ", ".join(cell["replies"]) + ("" if cell["replies"] == [cell["expected"]] else " (!)"),
                    _f(eod.get("median")),
                    _f(eod.get("p99")),
                    _f(after),
                    _f(eod["median"] - after) if after is not None and eod else "-",
                ]
            )
    load_rows = []
    for name, row in configs.items():
        for run in row["throughput"]:
            load_rows.append(
                [
                    LABELS[name],
                    str(run["concurrency"]),
                    str(run["sessions"]),
                    _f(run["sessions_per_second"]),
                    _f(run["cpu_seconds_per_1000"], 2),
                    _f((run["eod_to_reply_ms"] or {}).get("median")),
                    _f((run["eod_to_reply_ms"] or {}).get("p99")),
                    "; ".join(f"{k} x{v}" for k, v in run["replies"].items()),
                ]
            )
    notes = [
        f"{LABELS[name]}: Postfix logged {text!r} x{count}"
        for name, row in configs.items()
        for text, count in row.get("postfix_milter_notes", {}).items()
        if "4.7.25" not in text
    ]
    notes += [
        f"{LABELS[name]}: {peer} EXITED during the run (status {code}): its numbers are not a working chain's"
        for name, row in configs.items()
        for peer, code in row.get("peers_died", {}).items()
    ]
    ratios = ", ".join(
        f"{r['concurrency']} clients: sessions/s {r['sessions_per_second']:.2f}, CPU/1000 {_f(r['cpu_per_1000'], 2)}"
        for r in peers["ratios"]
    )
    delay = _f(peers["delay_ms"], 0)
    title = f"Peers: the same Postfix alone, with the peer chain, with ipv6gate milter (+{delay} ms per DNS query)"
    return [
        (
            title,
            ["configuration", "scenario", "replies", "end of DATA -> reply p50", "p99", "DNS after DATA", "beyond"],
            latency_rows,
            [
                f"one query through the proxy: {_f(peers['query_rtt_ms'], 2)} ms; 'DNS after DATA' is what the rule "
                "still needs after the final '.', in measured round trips (bench/README.md, Peers)",
            ],
        ),
        (
            "Peers under load (whole sessions; CPU of every process of the configuration)",
            [
                "configuration",
                "concurrent",
                "sessions",
                "sessions/s",
                "CPU s / 1000 sessions",
                "end of DATA -> reply p50",
                "p99",
                "replies",
            ],
            load_rows,
            [f"ratios (c)/(b): {ratios}", *notes],
        ),
    ]
