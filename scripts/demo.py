"""The ipv6gate demo: every ``events/*.json`` through the SAM function, against moto and Knot.

1. starts moto server and Knot DNS (serving ``events/zones``) on loopback;
2. creates the template's DynamoDB table and S3 bucket (template key schema; a resource without an
   explicit name gets a local name derived from its logical id) and puts ``events/tenants.json`` and
   every ``events/*.eml`` (at MESSAGE_PREFIX + messageId, where SES's S3 action would put it);
3. imports the handler named in ``template.yaml`` in a fresh process, with the environment the
   template declares (parameters at their defaults) and the local endpoints, and calls it once per
   event, like one Lambda container (a cold start, then warm calls);
4. prints what it decided per recipient, and compares with ``events/expected.json``.

Exit status 0 when every event matches, 1 on a mismatch, 2 when the stack could not be run.
``make demo`` runs this; ``--verbose`` also prints the handler's log lines and EMF metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.sam_local import FunctionSpec, Invocation, Run

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for tests.support (the harness this demo shares with the tests)


def _describe(row: dict[str, Any]) -> str:
    if row.get("monitor"):
        return f"monitor: would {row.get('would_reply')}"
    return str(row["reply"]) if row.get("reply") else "accept"


def _compare(expected: dict[str, Any], disposition: str | None, decision: dict[str, Any] | None) -> list[str]:
    """Differences between the expectation and what the handler returned and logged."""
    problems: list[str] = []
    if disposition != expected["disposition"]:
        problems.append(f"disposition {disposition} != expected {expected['disposition']}")
    if decision is None:
        return [*problems, "no decision log line"]
    if decision.get("client_ip") != expected["client_ip"]:
        problems.append(f"client_ip {decision.get('client_ip')} != expected {expected['client_ip']}")
    got = {r["recipient"]: _describe(r) for r in decision.get("recipients", [])}
    want = {r["recipient"]: _describe(r) for r in expected["recipients"]}
    for rcpt in sorted(set(got) | set(want)):
        if got.get(rcpt) != want.get(rcpt):
            problems.append(f"{rcpt}: {got.get(rcpt, '(missing)')} != expected {want.get(rcpt, '(none)')}")
    return problems


def _run(spec: FunctionSpec, template: dict[str, Any], events_dir: Path) -> Run:
    """Start the local stack, seed it, call the handler with every event; always stop the stack."""
    from tests.support import sam_local

    names = sam_local.event_files(events_dir)
    with sam_local.LocalStack(events_dir / "zones", template, log=lambda text: print(f"  {text}")) as stack:
        env = sam_local.container_environment(spec, stack.overrides())
        for line in sam_local.seed_demo(stack, env, events_dir):
            print(f"  put {line}")
        shown = {k: env[k] for k in ("TENANTS_TABLE", "MESSAGE_BUCKET", "MESSAGE_PREFIX", "DNS_SERVERS")}
        print(f"  environment: {shown} AWS_ENDPOINT_URL={env.get('AWS_ENDPOINT_URL')}")
        return sam_local.invoke(spec, env, [(n, sam_local.load_event(n, events_dir)) for n in names])


def _check(inv: Invocation, want: dict[str, Any] | None) -> list[str]:
    decisions = inv.logs("decision")
    decision = decisions[0]["decision"] if len(decisions) == 1 else None
    disposition = inv.result.get("disposition") if isinstance(inv.result, dict) else None
    problems = ["not in expected.json"] if want is None else _compare(want, disposition, decision)
    if inv.error:
        problems.append(f"handler raised:\n{inv.error}")
    if len(decisions) != 1:
        problems.append(f"{len(decisions)} decision log lines, expected 1")
    return problems


def _table(run: Run, expected: dict[str, Any], verbose: bool) -> dict[str, list[str]]:
    """Print one row per recipient; return the problems found per event file."""
    header = f"{'event':<30} {'client ip':<17} {'disposition':<14} {'check':<8} {'recipient':<18} reply"
    print(header)
    print("-" * 140)
    problems: dict[str, list[str]] = {}
    for inv in run.invocations:
        problems[inv.name] = _check(inv, expected.get(inv.name))
        decisions = inv.logs("decision")
        decision = decisions[0]["decision"] if decisions else {}
        disposition = inv.result.get("disposition") if isinstance(inv.result, dict) else "?"
        verdict = "ok" if not problems[inv.name] else "MISMATCH"
        rows = decision.get("recipients") or [{"recipient": "?", "reply": None}]
        for i, row in enumerate(rows):
            cells = (inv.name, str(decision.get("client_ip", "?")), disposition, verdict) if i == 0 else ("",) * 4
            print(f"{cells[0]:<30} {cells[1]:<17} {cells[2]:<14} {cells[3]:<8} {row['recipient']:<18} {_describe(row)}")
        if verbose:
            for record in inv.records():
                print(f"    {json.dumps(record, separators=(',', ':'))}")
    for name in sorted(set(expected) - set(problems)):
        problems[name] = ["in expected.json but no such event file"]
    return problems


def main(argv: list[str] | None = None) -> int:
    from tests.support import sam_local

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--function", default=sam_local.GATE_FUNCTION, help="logical id in template.yaml")
    parser.add_argument("--events", type=Path, default=sam_local.EVENTS_DIR, help="directory of demo events")
    parser.add_argument("--verbose", "-v", action="store_true", help="print the handler's log lines and metrics")
    args = parser.parse_args(argv)

    events_dir: Path = args.events
    expected: dict[str, Any] = json.loads((events_dir / "expected.json").read_text(encoding="utf-8"))
    template = sam_local.load_template()
    spec = sam_local.function_spec(template, args.function)
    print(f"template.yaml: {spec.logical_id} Handler={spec.handler} CodeUri={spec.code_uri.relative_to(REPO)}")
    print(f"  layers on sys.path: {', '.join(str(p.relative_to(REPO)) for p in spec.layers)}")
    started = time.monotonic()
    try:
        run = _run(spec, template, events_dir)
    except KeyboardInterrupt:
        print("\ninterrupted; the local stack was stopped", file=sys.stderr)
        return 130
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"demo: could not run the local stack: {exc}", file=sys.stderr)
        return 2
    if run.init_error:
        print(f"cold start failed:\n{run.init_error}{run.init_stdout}{run.init_stderr}", file=sys.stderr)
        return 2

    print(f"cold start (import {spec.handler.rpartition('.')[0]}): {run.init_ms:.0f} ms\n")
    problems = _table(run, expected, args.verbose)
    first = run.invocations[0].metrics() if run.invocations else {}
    cold = "ColdStart metric on the first call" if first.get("ColdStart") else "no ColdStart metric!"
    total = sum(inv.duration_ms for inv in run.invocations)
    print(f"\n{len(run.invocations)} events, {total:.0f} ms in the handler, {cold}; {time.monotonic() - started:.1f} s")
    failed = {name: found for name, found in problems.items() if found}
    for name, found in sorted(failed.items()):
        for problem in found:
            print(f"MISMATCH {name}: {problem}", file=sys.stderr)
    if failed:
        return 1
    print("all events match events/expected.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
