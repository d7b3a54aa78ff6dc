"""The ipv6gate demo: every event of a scenario set through the SAM function, against moto and Knot.

A scenario set is a folder laid out like ``events/`` (``--scenarios``, ``make demo SCENARIOS=<dir>``;
``devstack/scenarios.py`` reads it, judges the results and prints the table, shared with
``make local``):

1. starts moto server and Knot DNS (serving the set's ``zones/``) on loopback;
2. creates the template's DynamoDB tables, S3 bucket and queues (template key schemas; a resource
   without an explicit name gets a local name derived from its logical id) and puts the set's
   ``tenants.json`` and every ``<event>.eml`` (at MESSAGE_PREFIX + messageId, where SES's S3 action
   would put it);
3. imports the handler named in ``template.yaml`` in a fresh process, with the environment the
   template declares (parameters at their defaults, the set's region and ``settings.json``) and the
   local endpoints, and calls it once per event, like one Lambda container (a cold start, then warm
   calls);
4. prints what it decided per recipient, and compares with the set's ``expected.json``.

Exit status 0 when every event matches, 1 on a mismatch, 2 when the set is unusable or the stack
could not be run (one line on stderr). ``--verbose`` also prints the handler's log lines and EMF metrics.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devstack.sam_local import Run
    from devstack.sam_template import FunctionSpec
    from devstack.scenarios import ScenarioSet

REPO = Path(__file__).resolve().parents[1]


def _run(spec: FunctionSpec, template: dict[str, Any], scenarios: ScenarioSet) -> Run:
    """Start the local stack, seed it, call the handler with every event; always stop the stack."""
    from devstack import sam_local, sam_template
    from devstack.moto_stack import MotoStack

    stack = MotoStack(scenarios.zones, template, region=scenarios.region, log=lambda t: print(f"  {t}"))
    with stack:
        env = sam_template.container_environment(
            spec, {**stack.overrides(), **scenarios.environment}, region=scenarios.region
        )
        for line in stack.seed(env, scenarios.directory):
            print(f"  put {line}")
        shown = {k: env[k] for k in ("TENANTS_TABLE", "MESSAGE_BUCKET", "MESSAGE_PREFIX", "DNS_SERVERS")}
        print(f"  environment: {shown} AWS_ENDPOINT_URL={env.get('AWS_ENDPOINT_URL')} region {scenarios.region}")
        if scenarios.environment:
            print(f"  settings.json: {scenarios.environment}")
        return sam_local.invoke(spec, env, [(n, scenarios.event(n)) for n in scenarios.events])


def main(argv: list[str] | None = None) -> int:
    from devstack import sam_template, scenarios

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--function", default=sam_template.GATE_FUNCTION, help="logical id in template.yaml")
    parser.add_argument(
        "--scenarios", "--events", type=Path, default=scenarios.EVENTS_DIR, help="scenario set (laid out like events/)"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="print the handler's log lines and metrics")
    args = parser.parse_args(argv)

    try:
        template, spec, chosen = sam_template.function_and_scenarios(args.scenarios, args.function)
    except (scenarios.ScenarioError, sam_template.TemplateError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    print(f"template.yaml: {spec.logical_id} Handler={spec.handler} CodeUri={spec.code_uri.relative_to(REPO)}")
    print(f"  layers on sys.path: {', '.join(str(p.relative_to(REPO)) for p in spec.layers)}")
    print(f"  scenario set: {chosen.directory} ({len(chosen.events)} events, region {chosen.region})")
    started = time.monotonic()
    try:
        run = _run(spec, template, chosen)
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
    outcomes = [inv.outcome() for inv in run.invocations]
    problems = scenarios.print_table(outcomes, chosen.expected, verbose=args.verbose)
    first = run.invocations[0].metrics() if run.invocations else {}
    cold = "ColdStart metric on the first call" if first.get("ColdStart") else "no ColdStart metric!"
    total = sum(inv.duration_ms for inv in run.invocations)
    print(f"\n{len(run.invocations)} events, {total:.0f} ms in the handler, {cold}; {time.monotonic() - started:.1f} s")
    if scenarios.report_mismatches(problems):
        return 1
    print(f"all events match {chosen.directory / 'expected.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
