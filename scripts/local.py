"""``make local``: every scenario through the built arm64 artifact in SAM CLI's local Lambda, offline.

The engine (``devstack/local_lambda.py``): a private dockerd, the offline Lambda base image
(built once per machine, cached), ``sam build`` of ``template.yaml`` as deployed, moto server and Knot
on loopback, ``sam local start-lambda`` with one warm container per function. Then GateFunction with
each event of the scenario set (``--scenarios``, ``make local SCENARIOS=<dir>``, default ``events/``),
judged against its ``expected.json`` with the same table as ``make demo``; then BouncerFunction with
SQS events for the bouncer's paths that need no SendBounce (expired, malformed, duplicate, sender not
proven; their DNS comes with them, whatever the set's zones). ``--cold``: ``sam local invoke`` per
event instead (a fresh container each, minutes longer under emulation).

Exit status 0 when everything matches, 1 on a mismatch or a handler error, 2 when the scenario set
is unusable or the engine could not run (one line on stderr saying why).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devstack import local_lambda

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from devstack import local_lambda, sam_template, scenarios
    from devstack.docker_engine import EngineError

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--scenarios", type=Path, default=scenarios.EVENTS_DIR, help="scenario set, laid out like events/"
    )
    parser.add_argument("--arch", choices=["arm64", "x86_64"], default="arm64", help="as deployed: arm64")
    parser.add_argument("--no-bouncer", action="store_true", help="only the gate's scenarios")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every log line of each invoke")
    parser.add_argument("--cold", action="store_true", help="sam local invoke per event (a fresh container each)")
    parser.add_argument(
        "--measure",
        metavar="EVENT",
        help="also: Init Duration, first and warm Durations of the gate on EVENT in one warm container "
        "(start-lambda), with the build's byte code and without",
    )
    parser.add_argument(
        "--prebuilt", type=Path, help="use this sam build output (e.g. another commit's) instead of building"
    )
    args = parser.parse_args(argv)

    started = time.monotonic()
    try:
        spec = sam_template.function_spec(sam_template.load_template(), local_lambda.GATE)
        chosen = scenarios.load_scenarios(args.scenarios, sorted(spec.environment))
    except (scenarios.ScenarioError, sam_template.TemplateError) as exc:
        print(f"local: {exc}", file=sys.stderr)
        return 2
    print(f"scenario set {chosen.directory}: {len(chosen.events)} events, region {chosen.region}")
    failed: dict[str, list[str]] = {}
    try:
        build = {"build_dir": args.prebuilt.resolve(), "build": False} if args.prebuilt else {}
        with local_lambda.LocalLambda(
            chosen, arch=args.arch, log=lambda t: print(f"  {t}"), warm=not args.cold, **build
        ) as local:
            print(
                f"  ready in {time.monotonic() - started:.0f} s: "
                + ", ".join(f"{k} {v:.1f} s" for k, v in local.timings.items())
            )
            how = "sam local invoke per event" if args.cold else "its warm container (start-lambda)"
            print(f"  GateFunction with each event: {how} (image {local.image}, arch {args.arch})\n")
            results = []
            for name in chosen.events:
                result = local.invoke(local_lambda.GATE, name, chosen.event(name))
                results.append(result)
            problems = scenarios.print_table([r.outcome() for r in results], chosen.expected, verbose=args.verbose)
            failed.update({n: p for n, p in problems.items() if p})
            _print_reports(results, cold=args.cold)
            if not args.no_bouncer:
                failed.update(_bouncer(local))
            if args.measure:
                _measure(local, args.measure)
    except KeyboardInterrupt:
        print("\ninterrupted; everything started was stopped", file=sys.stderr)
        return 130
    except scenarios.ScenarioError as exc:
        print(f"local: {exc}", file=sys.stderr)
        return 2
    except (EngineError, RuntimeError, OSError) as exc:
        print(f"local: the local Lambda engine failed: {exc}", file=sys.stderr)
        return 2
    print(f"\n{time.monotonic() - started:.0f} s in all; dockerd, moto server and Knot stopped")
    if scenarios.report_mismatches(failed):
        return 1
    print(f"all events match {chosen.directory / 'expected.json'}" + ("" if args.no_bouncer else "; bouncer ok"))
    return 0


def _print_reports(results: list[local_lambda.LocalInvoke], *, cold: bool) -> None:
    inits = [r.report.init_ms for r in results if r.report and r.report.init_ms is not None]
    durations = [r.report.duration_ms for r in results if r.report]
    walls = [r.seconds for r in results]
    if not durations:
        print("\nno REPORT lines in the invokes' output")
        return
    print(
        f"\n{len(results)} invokes: wall {statistics.median(walls):.1f} s each (median), "
        f"Init Duration median {statistics.median(inits) if inits else 0:.0f} ms, "
        f"Duration median {statistics.median(durations):.0f} ms "
        + ("(each invoke is a fresh container)" if cold else f"({len(inits)} cold start, the rest warm)")
    )


def _measure(local: local_lambda.LocalLambda, name: str) -> None:
    """The gate on ``name`` in a fresh container, 6 calls: the build as it is, then the same without byte code."""
    from devstack import local_lambda

    layer = local.build_dir / "IPv6GateLayer"
    size = sum(p.stat().st_size for p in layer.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    pycs = sum(p.stat().st_size for p in layer.rglob("*.pyc"))
    print(f"\nmeasure {name}, one container each (layer {size / 1e6:.1f} MB unzipped, byte code {pycs / 1e6:.1f} MB)")
    for label, build_dir in (("with byte code", None), ("without byte code", local.without_bytecode())):
        reports = local.warm_reports(local_lambda.GATE, local.scenarios.event(name), count=6, build_dir=build_dir)
        cold, warm = reports[0], [r.duration_ms for r in reports[1:]]
        print(
            f"  {label:<18} Init Duration {cold.init_ms} ms, first Duration {cold.duration_ms} ms, "
            f"warm Duration median {statistics.median(warm):.1f} ms ({warm}), "
            f"max memory {max(r.max_memory_used_mb or 0 for r in reports)} MB"
        )


def _bouncer(local: local_lambda.LocalLambda) -> dict[str, list[str]]:
    from devstack import local_lambda

    print("\nBouncerFunction (SQS events; paths without SendBounce)")
    failed: dict[str, list[str]] = {}
    for case in local_lambda.bouncer_cases(local.scenarios.region):
        event = local_lambda.sqs_event(case.bodies, local.scenarios.region)
        result = local.invoke(local_lambda.BOUNCER, case.name, event)
        problems = local_lambda.judge_bouncer(case, result)
        got = result.response.get("batchItemFailures") if isinstance(result.response, dict) else result.response
        verdict = "ok" if not problems else "MISMATCH"
        print(f"  {case.name:<30} {verdict:<8} batchItemFailures={got} ({result.seconds:.1f} s)")
        if problems:
            failed[f"bouncer: {case.name}"] = problems
    return failed


if __name__ == "__main__":
    sys.exit(main())
