"""``make bench``: how fast the gate decides, against the DNS critical path and plain libraries.

Starts Knot DNS (serving zones generated for this run) behind a ``DelayingDnsProxy`` that adds a
fixed delay to every query, and moto server for the cold-start runs; measures; stops everything;
prints a report and writes ``bench/results/latest.json`` and ``latest.md``. ``bench/README.md`` says
what each number means. Exit status 1 when a part of the benchmark could not run (the others are
still reported); a missed target is a result, not a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cost as costs
from bench.results_table import render_markdown, render_text, targets
from bench.scenarios import SCENARIOS, all_senders
from bench.world import write_zones

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


PHASES = ("latency", "baseline", "coldstart", "cpu", "dkim", "milter", "peers")
_T0 = time.perf_counter()


def log(text: str) -> None:
    print(f"[{time.perf_counter() - _T0:6.1f}s] {text}", file=sys.stderr, flush=True)


def _bounded(low: float, high: float, kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside {low:g}..{high:g}")
        return value

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=_bounded(3, 500, int), default=30, help="decisions per scenario (30)")
    parser.add_argument("--delay-ms", type=_bounded(1, 500, float), default=50.0, help="added per DNS query (50)")
    parser.add_argument("--coldstart-runs", type=_bounded(1, 25, int), default=5, help="fresh processes per variant")
    parser.add_argument("--cpu-reps", type=_bounded(10, 5000, int), default=400, help="warm IPv4 decisions timed")
    parser.add_argument(
        "--milter-sessions", type=_bounded(50, 20000, int), default=500, help="sessions in the milter throughput run"
    )
    parser.add_argument(
        "--peer-sessions",
        type=_bounded(6, 20000, int),
        default=600,
        help="sessions per load run of the peers section, at 50 and at 200 concurrent clients (600)",
    )
    parser.add_argument("--sizes", default="50K,1M,30M", help="DKIM message sizes (50K,1M,30M)")
    parser.add_argument("--skip", action="append", choices=PHASES, default=[], help="leave a part out (repeatable)")
    parser.add_argument("--rru-price", type=float, default=costs.DYNAMODB_PER_MILLION_RRU, help="USD per million RRU")
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    parser.add_argument(
        "--update-readme",
        action="store_true",
        help="also put the tables into docs/performance.md (between its bench markers)",
    )
    return parser.parse_args(argv)


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    for dist in ("dnspython", "pyspf", "dkimpy", "authheaders", "aws-lambda-powertools", "boto3"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": _git(),
        "packages": versions,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


class Phases:
    """Runs each part of the benchmark; a part that fails is recorded and the others still run."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        log(f"{name} ...")
        try:
            return fn()
        except Exception:
            self.errors.append(f"{name}: {traceback.format_exc()}")
            log(f"{name} FAILED:\n{traceback.format_exc()}")
            return {"error": traceback.format_exc().splitlines()[-1]}


def measure_latency(args: argparse.Namespace, proxy: Any, keys: Any, phases: Phases) -> tuple[dict[str, Any], Any]:
    from bench.latency import load_authheaders, probe_rtt, run_scenario
    from bench.stats import summarize

    authheaders = load_authheaders()
    latency: dict[str, Any] = {}
    rtts: list[float] = []
    for scenario in SCENARIOS:
        rtts += probe_rtt(proxy)

        def one(scenario: Any = scenario) -> dict[str, Any]:
            runs = run_scenario(
                scenario, proxy, keys, args.iterations, authheaders=authheaders, baseline="baseline" not in args.skip
            )
            return {
                "scenario": {
                    "what": scenario.what,
                    "expected": scenario.expected,
                    "ipv6": scenario.ipv6,
                    "critical_path": scenario.critical_path(),
                    "all_checks_path": scenario.all_checks_path(),
                    "sequential_path": scenario.sequential_path(),
                },
                **{name: run.to_dict() for name, run in runs.items()},
            }

        latency[scenario.name] = phases.run(f"latency {scenario.name}", one)
    rtt = summarize(rtts).to_dict()
    log(f"one query through the proxy: {rtt['median']:.1f} ms (median)")
    return {k: v for k, v in latency.items() if "error" not in v}, rtt


def measure(args: argparse.Namespace, byte_sizes: list[int], results: dict[str, Any], phases: Phases) -> None:
    """Start the servers, run every part not skipped, stop the servers (whatever happens)."""
    from devstack import world
    from devstack.dns_proxy import DelayingDnsProxy
    from devstack.knot import KnotServer
    from devstack.moto_stack import MotoStack

    with tempfile.TemporaryDirectory(prefix="ipv6gate-bench-") as tmp, contextlib.ExitStack() as servers:
        workdir = Path(tmp)
        keys = world.make_keys()
        zone_dir = write_zones(workdir / "zones", all_senders(args.iterations), keys)
        stack: MotoStack | None = None
        if "coldstart" not in args.skip:  # moto server too, for the handler's tables
            stack = servers.enter_context(MotoStack(zone_dir, log=log))
            knot = stack.knot
        else:
            knot = servers.enter_context(KnotServer(zone_dir))
        proxy = servers.enter_context(DelayingDnsProxy.front(knot, delay=args.delay_ms / 1000, lifetime=1800.0))
        log(f"Knot on {knot.servers_env}, proxy on {proxy.servers_env} (+{args.delay_ms:g} ms per query)")

        if "latency" not in args.skip:
            results["latency"], results["settings"]["query_rtt_ms"] = measure_latency(args, proxy, keys, phases)
        if "milter" not in args.skip:
            from bench.milter import measure_milter

            results["milter"] = phases.run(
                "milter (Postfix)",
                lambda: measure_milter(
                    keys,
                    workdir,
                    iterations=int(args.iterations),
                    delay_ms=float(args.delay_ms),
                    sessions=int(args.milter_sessions),
                ),
            )
        if "cpu" not in args.skip:
            from bench.cpu import measure_cpu

            results["cpu"] = phases.run("warm CPU", lambda: measure_cpu(proxy, keys, int(args.cpu_reps)))
        if stack is not None:
            from bench.coldstart import measure_cold_start

            live = stack
            results["cold_start"] = phases.run(
                "cold start", lambda: measure_cold_start(live, keys, int(args.coldstart_runs), workdir)
            )
        else:
            results["cold_start"] = {"skipped": "--skip coldstart"}
        servers.close()
        log("servers stopped")

        if "peers" not in args.skip:  # its own Knot and proxy, in a namespace of its own (bench/peers.py)
            from bench.peers import measure_peers

            n = int(args.peer_sessions)
            results["peers"] = phases.run(
                "peers (Postfix alone / peer chain / ipv6gate milter)",
                lambda: measure_peers(
                    workdir, delay_ms=float(args.delay_ms), iterations=int(args.iterations), runs=[(50, n), (200, n)]
                ),
            )

        if "dkim" not in args.skip:
            from bench.dkim_size import measure_dkim_sizes

            sizes = phases.run("DKIM sizes", lambda: measure_dkim_sizes(zone_dir, keys, byte_sizes, workdir))
            results["dkim_sizes"] = sizes if isinstance(sizes, list) else []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from bench.dkim_size import parse_size

    byte_sizes = [parse_size(s) for s in (x.strip() for x in args.sizes.split(",")) if s]
    if any(not 1000 <= b <= 31_000_000 for b in byte_sizes):
        print("--sizes: each between 1K and 31M", file=sys.stderr)
        return 2
    results: dict[str, Any] = {
        "meta": machine(),
        "settings": {
            "iterations": args.iterations,
            "delay_ms": args.delay_ms,
            "ptr_mode": "exists",
            "dns_cache_size_latency": 0,
            "dns_cache_size_cpu": 4096,
            "coldstart_runs": args.coldstart_runs,
            "cpu_reps": args.cpu_reps,
            "sizes": byte_sizes,
            "skipped": args.skip,
        },
    }
    phases = Phases()
    measure(args, byte_sizes, results, phases)
    results["cost"] = _cost(results, args.rru_price)
    results["meta"]["duration_s"] = time.perf_counter() - _T0
    results["meta"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["targets"] = targets(results)
    results["errors"] = phases.errors
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "latest.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (args.results_dir / "latest.md").write_text(render_markdown(results), encoding="utf-8")
    print(render_text(results))
    print(f"written: {args.results_dir / 'latest.json'}, {args.results_dir / 'latest.md'}")
    if args.update_readme:
        print(update_readme(REPO / "docs" / "performance.md", render_markdown(results)))
    if phases.errors:
        print(
            f"{len(phases.errors)} part(s) failed: " + "; ".join(e.splitlines()[0] for e in phases.errors),
            file=sys.stderr,
        )
    return 1 if phases.errors else 0


README_BEGIN = "<!-- bench:results:begin (written by `python -m bench.run --update-readme`) -->"
README_END = "<!-- bench:results:end -->"


def update_readme(path: Path, tables: str) -> str:
    """Replace what is between the two markers in ``path`` (and nothing else); say what was done."""
    text = path.read_text(encoding="utf-8")
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        return f"{path.name}: no bench markers, not updated"
    updated = text[: begin + len(README_BEGIN)] + "\n\n" + tables.strip() + "\n\n" + text[end:]
    scratch = path.with_name(f".{path.name}.bench")
    scratch.write_text(updated, encoding="utf-8")
    scratch.replace(path)  # atomic: a reader sees the old or the new file, never half of one
    return f"{path.name}: Performance results updated"


def _cost(results: dict[str, Any], rru_price: float) -> dict[str, Any]:
    from devstack import sam_template

    memory = sam_template.function_spec(sam_template.load_template()).memory_mb
    prices = costs.Prices(per_million_rru=rru_price)
    per: dict[str, Any] = {}
    for name, row in results.get("latency", {}).items():
        latency = row["gate"]["latency_ms"]
        if latency:
            per[f"{name} ({latency['median']:.1f} ms)"] = costs.per_million(
                latency["median"], memory, ipv6=row["scenario"]["ipv6"], prices=prices
            )
    return {"memory_mb": memory, "prices": prices.to_dict(), "per_scenario": per}


if __name__ == "__main__":
    sys.exit(main())
