"""``make deploy-rehearsal``: ``sam build`` and ``sam deploy`` of template.yaml into LocalStack, then the checks.

The engine (``tests/support/rehearsal.py``): the private dockerd and offline Lambda image of ``make
local``, Knot with the scenario set's zones, LocalStack on this host. Then, as an operator would:

1. an operator's rule set with a delivery rule, active, before anything of ipv6gate;
2. ``sam build``; ``sam deploy`` (samconfig.toml as shipped; the endpoint from the environment);
3. every event of the scenario set (``--scenarios``, ``make deploy-rehearsal SCENARIOS=<dir>``) on the
   deployed gate, found by its physical name from the stack's outputs, judged against expected.json;
4. a parameter change (``TenantCacheSeconds=0``) deployed again: an update in place;
5. ``ipv6gate tenants enable/disable --stack ipv6gate`` changes the next invocation's verdict;
6. a rejected message received now: its bounce request reaches the deployed queue and the deployed
   bouncer sends it (the SES stand-in records the SendBounce);
7. ``sam delete``: the stack is gone, the operator's rule set is as it was and still active;
   LocalStack, Knot and dockerd stop, no container or mount is left.

Exit status 0 when every check holds, 1 on a failed check, 2 when the scenario set is unusable or
the engine could not run (one line on stderr saying why).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.rehearsal import Rehearsal


class CheckFailed(Exception):
    """One of the rehearsal's checks did not hold (the message says which, and what was found)."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def main(argv: list[str] | None = None) -> int:
    from tests.support import sam_local, sam_template, scenarios
    from tests.support.docker_engine import EngineError
    from tests.support.rehearsal import Rehearsal

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--scenarios", type=Path, default=sam_local.EVENTS_DIR, help="scenario set, laid out like events/"
    )
    parser.add_argument("--arch", choices=["arm64", "x86_64"], default="arm64", help="as deployed: arm64")
    args = parser.parse_args(argv)

    started = time.monotonic()
    try:
        spec = sam_template.function_spec(sam_template.load_template(), "GateFunction")
        chosen = scenarios.load_scenarios(args.scenarios, sorted(spec.environment))
    except (scenarios.ScenarioError, sam_template.TemplateError) as exc:
        print(f"deploy-rehearsal: {exc}", file=sys.stderr)
        return 2
    print(f"scenario set {chosen.directory}: {len(chosen.events)} events, region {chosen.region}")
    try:
        with Rehearsal(chosen, arch=args.arch, log=lambda t: print(f"  {t}")) as rehearsal:
            mismatches = rehearse(rehearsal)
            print(f"\ntimings (s): {rehearsal.timings}")
    except KeyboardInterrupt:
        print("\ninterrupted; everything started was stopped", file=sys.stderr)
        return 130
    except CheckFailed as exc:
        print(f"deploy-rehearsal: FAILED: {exc}", file=sys.stderr)
        return 1
    except (EngineError, OSError) as exc:
        print(f"deploy-rehearsal: the rehearsal could not run: {exc}", file=sys.stderr)
        return 2
    print(f"{time.monotonic() - started:.0f} s in all; LocalStack, Knot and dockerd stopped")
    for name, found in sorted(mismatches.items()):
        for problem in found:
            print(f"MISMATCH {name}: {problem}", file=sys.stderr)
    if mismatches:
        return 1
    print(f"rehearsal passed: every event matches {chosen.directory / 'expected.json'}; stack deleted cleanly")
    return 0


def rehearse(rehearsal: Rehearsal) -> dict[str, list[str]]:
    from tests.support import scenarios
    from tests.support.rehearsal import OPERATOR_RULE_SET, STACK, fresh_event

    chosen = rehearsal.scenarios
    before = rehearsal.operator_rule_set()
    print(f"\n1. operator's rule set {OPERATOR_RULE_SET} (active): rules {before}")

    print("2. sam build; sam deploy")
    rehearsal.build()
    parameters = rehearsal.parameters()
    status = rehearsal.deploy(parameters)
    check(status == "CREATE_COMPLETE", f"sam deploy left the stack {STACK} in {status}")
    outputs = rehearsal.outputs()
    gate, bouncer = outputs["GateFunctionArn"], outputs["BouncerFunctionArn"]
    print(f"   stack {STACK} {status}; gate {gate.rsplit(':', 1)[-1]}, bouncer {bouncer.rsplit(':', 1)[-1]}")
    check(rehearsal.active_rule_set() == OPERATOR_RULE_SET, f"active rule set is now {rehearsal.active_rule_set()}")
    check(rehearsal.rule_order(OPERATOR_RULE_SET) == before, "the operator's rules changed on deploy")
    prefix = parameters.get("MessagePrefix", "inbound/")
    print(f"   seeded {rehearsal.seed(outputs, prefix)} tenants and the raw messages into the deployed table and bucket")

    print("\n3. every event on the deployed gate function (by physical name)")
    invocations = [rehearsal.invoke(gate, name, chosen.event(name)) for name in chosen.events]
    mismatches = scenarios.print_table([i.outcome() for i in invocations], chosen.expected)
    mismatches = {k: v for k, v in mismatches.items() if v}
    cold, warm = invocations[0].seconds, [i.seconds for i in invocations[1:]]
    print(f"   first invoke {cold:.1f} s (cold), then {sum(warm) / max(len(warm), 1):.1f} s each")

    print("\n4. a parameter change deployed again (TenantCacheSeconds=0)")
    status = rehearsal.deploy({**parameters, "TenantCacheSeconds": "0"})
    check(status == "UPDATE_COMPLETE", f"the update left the stack in {status}")
    again = rehearsal.outputs()
    check(again == outputs, f"outputs changed on update: {again} != {outputs}")
    variables = rehearsal.function_configuration(gate)["Environment"]["Variables"]
    check(variables.get("TENANT_CACHE_SECONDS") == "0", f"TENANT_CACHE_SECONDS is {variables.get('TENANT_CACHE_SECONDS')}")
    print(f"   {status}, same physical names, TENANT_CACHE_SECONDS=0 on the deployed gate")

    toggle(rehearsal, gate)
    bounce(rehearsal, gate, outputs, prefix, fresh_event)

    print("\n7. sam delete")
    rehearsal.delete()
    check(not rehearsal.stack_exists(), f"stack {STACK} still exists after sam delete")
    check(rehearsal.active_rule_set() == OPERATOR_RULE_SET, "the operator's rule set is no longer active")
    check(rehearsal.rule_order(OPERATOR_RULE_SET) == before, "the operator's rules changed on delete")
    print(f"   stack gone; {OPERATOR_RULE_SET} active with rules {rehearsal.rule_order(OPERATOR_RULE_SET)}")
    return mismatches


def toggle(rehearsal: Rehearsal, gate: str) -> None:
    """A tenant switched with ``ipv6gate tenants --stack`` changes the deployed gate's next verdict."""
    from tests.support import scenarios

    event_name, domain, before = _toggle_target(rehearsal)
    print(f"\n5. ipv6gate tenants --stack: {domain} (in {event_name}: {before})")
    verb = "disable" if before == "accept" else "enable"
    print(f"   $ ipv6gate tenants {verb} {domain} --stack ipv6gate\n   {rehearsal.tenants(verb, domain)}")
    after = _reply_for(rehearsal.invoke(gate, event_name, rehearsal.scenarios.event(event_name)).outcome(), domain)
    print(f"   next invocation: {domain} -> {after}")
    check(after != before, f"{domain}: the verdict did not change after `tenants {verb}` ({after})")
    undo = "enable" if verb == "disable" else "disable"
    rehearsal.tenants(undo, domain)
    restored = _reply_for(rehearsal.invoke(gate, event_name, rehearsal.scenarios.event(event_name)).outcome(), domain)
    check(restored == before, f"{domain}: `tenants {undo}` did not restore the verdict ({restored} != {before})")
    print(f"   $ ipv6gate tenants {undo} {domain} --stack ipv6gate -> {restored} again")
    del scenarios


def _toggle_target(rehearsal: Rehearsal) -> tuple[str, str, str]:
    """An IPv6 event and one recipient domain of it whose tenant decides its reply (from expected.json)."""
    import json

    from tests.support.scenarios import describe

    tenants = json.loads((rehearsal.scenarios.directory / "tenants.json").read_text(encoding="utf-8"))
    switchable = {str(t["domain"]) for t in tenants if t.get("mode", "enforce") == "enforce"}
    for name in rehearsal.scenarios.events:
        want = rehearsal.scenarios.expected.get(name) or {}
        if ":" not in str(want.get("client_ip", "")):
            continue
        for row in want.get("recipients", []):
            domain = str(row["recipient"]).rpartition("@")[2]
            reply = describe(row)
            if domain in switchable and (reply == "accept" or reply.startswith("550 5.2.1")):
                return name, domain, reply
    raise CheckFailed("the scenario set has no IPv6 event whose recipient is an enforcing tenant to toggle")


def _reply_for(outcome: Any, domain: str) -> str:
    from tests.support.scenarios import describe

    decision = outcome.decision or {}
    rows = [r for r in decision.get("recipients", []) if str(r["recipient"]).endswith("@" + domain)]
    check(bool(rows) and not outcome.error, f"no decision for {domain}: {outcome.error or outcome.response}")
    return describe(rows[0])


def bounce(rehearsal: Rehearsal, gate: str, outputs: dict[str, str], prefix: str, fresh_event: Any) -> None:
    """A message rejected now (an event of the set, received now): queued by the gate, sent by the bouncer."""
    name = next(
        (
            n
            for n, want in rehearsal.scenarios.expected.items()
            if want["disposition"] == "STOP_RULE_SET"
            and all(str(r.get("reply") or "").startswith("5") for r in want["recipients"])
        ),
        None,
    )
    check(name is not None, "the scenario set has no event rejected with a 5xx to every recipient (for the bounce)")
    assert name is not None
    message_id = f"rehearsal-bounce-{int(time.time())}"
    print(f"\n6. bounce: {name} received now as {message_id}")
    result = rehearsal.invoke(gate, name, fresh_event(rehearsal.scenarios.event(name), message_id)).outcome()
    bounce_log = (result.decision or {}).get("bounce") or {}
    print(f"   gate: {result.disposition}, bounce {bounce_log.get('action', '?')} ({bounce_log.get('reason', '')})")
    deadline = time.monotonic() + 600
    sent: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        sent = [b for b in rehearsal.sent_bounces() if b["original_message_id"] == message_id]
        if sent and rehearsal.queue_depth(outputs["BounceQueueUrl"]) == 0:
            break
        time.sleep(2)
    check(bool(sent), f"no SendBounce for {message_id} within 600 s (queue depth {rehearsal.queue_depth(outputs['BounceQueueUrl'])})")
    check(rehearsal.queue_depth(outputs["BounceQueueUrl"]) == 0, "the bounce queue is not empty")
    check(rehearsal.queue_depth(outputs["BounceDeadLetterQueueUrl"]) == 0, "a bounce request reached the DLQ")
    print(f"   bouncer: SendBounce to {sent[0]['recipients']} from {sent[0]['bounce_sender']}; queue empty, DLQ empty")
    del gate, prefix


if __name__ == "__main__":
    sys.exit(main())
