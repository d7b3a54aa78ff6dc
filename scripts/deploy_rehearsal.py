"""``make deploy-rehearsal``: ``sam build`` and ``sam deploy`` of template.yaml into LocalStack, then the checks.

The engine (``devstack/rehearsal.py``): the private dockerd and offline Lambda image of ``make
local``, Knot with the scenario set's zones, LocalStack on this host. Then, as an operator would:

1. an operator's rule set with a delivery rule, active, before anything of ipv6gate;
2. ``sam build``; ``sam deploy`` (samconfig.toml as shipped; the endpoint from the environment):
   the gate's rule is first in the operator's set, theirs follows, their set stays active;
3. the first deploy rejects nothing: every event on the deployed gate continues (the covered
   domains were seeded as monitor-mode tenants); README's watch block lists them;
4. a parameter change (``TenantCacheSeconds=0``) deployed again: an update in place;
5. the scenario set's tenants and raw messages, then every event of the set (``--scenarios``, ``make
   deploy-rehearsal SCENARIOS=<dir>``) on the deployed gate, found by its physical name from the
   stack's outputs, judged against expected.json;
6. ``ipv6gate tenants enable/disable DOMAIN --stack ipv6gate`` changes the next invocation's verdict;
7. a rejected message received now: its bounce request reaches the deployed queue and the deployed
   bouncer sends it (the SES stand-in records the SendBounce);
8. README's roll back (``sam delete --no-prompts`` alone: the stack's drain empties the bucket after
   the gate's rule is gone): the stack and its bucket are gone, the operator's rule set is
   as it was and still active, the tenants table is kept;
9. README's next-deploy block (``ExistingTenantsTable=$TENANTS_TABLE``, the table the watch block
   exported) with ``RuleSetMode=own ActivateRuleSet=true``: the stack takes the kept table back (no
   tenant seeded again), its own set holds only the gate's rule and is the active one, the operator's
   set is untouched;
10. ``sam delete``: the operator's set is active again, the stack's own set is gone, the tenants
    table it did not create is kept. LocalStack, Knot and dockerd stop, no container or mount is left.
    (Turning ``ActivateRuleSet`` off by an update is not rehearsed: LocalStack 2026.3.0 drops a
    resource whose Condition turned false without calling its provider's delete, so the custom
    resource's restore never runs there. README "Deploy rehearsal" says so.)

The deploy and roll-back commands are README "Deploy"'s ```sh blocks, run as written (the emulator's
DNS and the set's settings appended to the deploy line's overrides).

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
    from devstack.rehearsal import Rehearsal


def deploy_blocks() -> dict[str, str]:
    from devstack.rehearsal import deploy_blocks as blocks

    return blocks()


class CheckFailed(Exception):
    """One of the rehearsal's checks did not hold (the message says which, and what was found)."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def main(argv: list[str] | None = None) -> int:
    from devstack import sam_template, scenarios
    from devstack.docker_engine import EngineError
    from devstack.rehearsal import Rehearsal

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--scenarios", type=Path, default=scenarios.EVENTS_DIR, help="scenario set, laid out like events/"
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
        left = rehearsal.leftovers()
        check(not left, f"left behind: {left}")
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
    if scenarios.report_mismatches(mismatches):
        return 1
    print(f"rehearsal passed: every event matches {chosen.directory / 'expected.json'}; stack deleted cleanly")
    return 0


def rehearse(rehearsal: Rehearsal) -> dict[str, list[str]]:
    from devstack import scenarios
    from devstack.rehearsal import OPERATOR_RULE_SET, STACK

    chosen = rehearsal.scenarios
    before = rehearsal.operator_rule_set()
    print(f"\n1. operator's rule set {OPERATOR_RULE_SET} (active): rules {before}")

    print("2. README Deploy: sam build; sam deploy (RuleSetMode and SeedTenants as shipped)")
    status = rehearsal.deploy()
    check(status == "CREATE_COMPLETE", f"sam deploy left the stack {STACK} in {status}")
    check_nothing_faked(rehearsal)
    outputs = rehearsal.outputs()
    gate = outputs["GateFunctionArn"]
    print(f"   stack {STACK} {status}; gate function {gate.rsplit(':', 1)[-1]}")
    rule = outputs["ReceiptRuleName"]
    check_rule_set(rehearsal, [rule, *before], "after the deploy")

    print("\n3. the first deploy rejects nothing (no tenant but the seeded monitor-mode ones)")
    first = [rehearsal.invoke(gate, name, chosen.event(name)).outcome() for name in chosen.events]
    refused = [o.name for o in first if o.disposition != "CONTINUE" or o.error or _rejects(o)]
    check(not refused, f"a first deploy refused mail: {refused}")
    print(f"   {len(first)} events: every one CONTINUE, no recipient rejected (seeded: {outputs.get('TenantsSeeded')})")
    listing = rehearsal.run_block(deploy_blocks()["outputs"], variables={})
    listed = {ln.split()[0] for ln in listing.splitlines() if ln.strip()}
    check(set(rehearsal.covered_domains()) <= listed, f"`ipv6gate tenants list` shows {sorted(listed)}")
    print(f"   README's watch block: tenants {sorted(set(rehearsal.covered_domains()))} listed, report printed")

    print("\n4. a parameter change deployed again (TenantCacheSeconds=0)")
    status = rehearsal.deploy({"TenantCacheSeconds": "0"})
    check(status == "UPDATE_COMPLETE", f"the update left the stack in {status}")
    check_nothing_faked(rehearsal)
    again = rehearsal.outputs()
    check(again == outputs, f"outputs changed on update: {again} != {outputs}")
    variables = rehearsal.function_configuration(gate)["Environment"]["Variables"]
    cache = variables.get("TENANT_CACHE_SECONDS")
    check(cache == "0", f"TENANT_CACHE_SECONDS is {cache} after the update")
    for setting, value in chosen.environment.items():  # the set's settings.json, deployed as parameters
        check(variables.get(setting) == value, f"{setting} is {variables.get(setting)} on the gate, not {value}")
    check_rule_set(rehearsal, [rule, *before], "after the update")
    print(f"   {status}: same physical names, TENANT_CACHE_SECONDS=0 on the deployed gate")

    prefix = rehearsal.emulator_parameters().get("MessagePrefix", "inbound/")
    print(f"\n5. the set's tenants ({rehearsal.seed(outputs, prefix)}) and raw messages; every event on the gate")
    invocations = [rehearsal.invoke(gate, name, chosen.event(name)) for name in chosen.events]
    mismatches = scenarios.print_table([i.outcome() for i in invocations], chosen.expected)
    mismatches = {k: v for k, v in mismatches.items() if v}
    warm = sorted(i.seconds for i in invocations[1:])
    print(f"   first invoke {invocations[0].seconds:.1f} s (a cold start), then {warm[len(warm) // 2]:.1f} s (median)")

    toggle(rehearsal, gate)
    enforce(rehearsal, gate)
    bounce(rehearsal, gate, outputs)

    roll_back(rehearsal, before, outputs)
    other_modes(rehearsal, before, outputs)
    return mismatches


def roll_back(rehearsal: Rehearsal, before: list[str], outputs: dict[str, str]) -> None:
    """README's roll-back block with the set's messages in the bucket: the stack's drain empties it."""
    from devstack.rehearsal import STACK

    print("\n8. README roll back: sam delete --no-prompts (the bucket holds the set's messages)")
    rehearsal.rollback()
    check(not rehearsal.stack_exists(), f"stack {STACK} still exists after sam delete")
    check(not rehearsal.bucket_exists(outputs["MessageBucketName"]), "the message bucket outlived sam delete")
    check_rule_set(rehearsal, before, "after sam delete")
    print(f"   stack and bucket {outputs['MessageBucketName']} gone; tenants table {outputs['TenantsTableName']} kept")


def other_modes(rehearsal: Rehearsal, before: list[str], first: dict[str, str]) -> None:
    """The non-default compositions, with README's next-deploy block (the kept tenants table):
    RuleSetMode=own with ActivateRuleSet=true, then sam delete."""
    from devstack.rehearsal import OPERATOR_RULE_SET, STACK

    table = first["TenantsTableName"]
    check(rehearsal.table_exists(table), f"the tenants table {table} did not outlive sam delete")
    check(rehearsal.shell.get("TENANTS_TABLE") == table, "README's watch block did not export TENANTS_TABLE")
    own = {"RuleSetMode": "own", "ActivateRuleSet": "true"}
    print(f"\n9. README's next deploy (ExistingTenantsTable=$TENANTS_TABLE) with {own}")
    status = rehearsal.deploy(own, role="redeploy", key="deploy_own")
    check(status == "CREATE_COMPLETE", f"the own-mode deploy left the stack {STACK} in {status}")
    check_nothing_faked(rehearsal)
    outputs = rehearsal.outputs()
    ours, rule = outputs["ReceiptRuleSetName"], outputs["ReceiptRuleName"]
    check(outputs["TenantsTableName"] == table, f"the stack uses {outputs['TenantsTableName']}, not the kept {table}")
    check(outputs["TenantsSeeded"] == "0", f"the kept table's tenants were seeded again: {outputs['TenantsSeeded']}")
    variables = rehearsal.function_configuration(outputs["GateFunctionArn"])["Environment"]["Variables"]
    check(variables.get("TENANTS_TABLE") == table, f"the gate reads {variables.get('TENANTS_TABLE')}, not {table}")
    listed = rehearsal.tenants("list")
    check(all(d in listed for d in rehearsal.covered_domains()), f"the kept tenants are not listed: {listed}")
    print(f"   {status}: tenants table {table} taken back as it was (seeded 0); the gate reads it")
    check_own_set(rehearsal, ours, [rule], before, active=True, when="after the own-mode deploy")

    print("\n10. README's roll back: sam delete restores the operator's set")
    rehearsal.timings["rollback_first"] = rehearsal.timings.get("rollback", 0.0)
    rehearsal.rollback()
    check(not rehearsal.stack_exists(), f"stack {STACK} still exists after sam delete")
    check(not rehearsal.rule_set_exists(ours), f"the stack's own rule set {ours} outlived sam delete")
    check_rule_set(rehearsal, before, "after sam delete")
    check(rehearsal.table_exists(table), f"the tenants table {table} was deleted with a stack that did not create it")
    print(f"   stack and its set {ours} gone; {OPERATOR_RULE_SET} active again; tenants table {table} kept")


def check_own_set(
    rehearsal: Rehearsal, ours: str, rules: list[str], before: list[str], *, active: bool, when: str
) -> None:
    from devstack.rehearsal import OPERATOR_RULE_SET

    check(ours != OPERATOR_RULE_SET, f"{when}: RuleSetMode=own put the rule into {ours}")
    order = rehearsal.rule_order(ours)
    check(order == rules, f"{when}: {ours} has rules {order}, expected {rules}")
    check(rehearsal.rule_order(OPERATOR_RULE_SET) == before, f"{when}: the operator's set changed")
    want = ours if active else OPERATOR_RULE_SET
    check(rehearsal.active_rule_set() == want, f"{when}: the active set is {rehearsal.active_rule_set()}, not {want}")
    print(f"   {when}: {ours} holds {rules}; active: {want}; {OPERATOR_RULE_SET} still {before}")


def check_nothing_faked(rehearsal: Rehearsal) -> None:
    assert rehearsal.localstack is not None
    faked = rehearsal.localstack.faked_resources()
    check(not faked, f"LocalStack deployed {faked} as a fallback (no provider): not a deploy of them")


def check_rule_set(rehearsal: Rehearsal, rules: list[str], when: str) -> None:
    from devstack.rehearsal import OPERATOR_RULE_SET

    active, order = rehearsal.active_rule_set(), rehearsal.rule_order(OPERATOR_RULE_SET)
    check(active == OPERATOR_RULE_SET, f"{when}: the active rule set is {active}, not the operator's")
    check(order == rules, f"{when}: {OPERATOR_RULE_SET} has rules {order}, expected {rules}")
    print(f"   {when}: {OPERATOR_RULE_SET} still active, rules in order {order}")


def _rejects(outcome: Any) -> bool:
    decision = outcome.decision or {}
    return any(r.get("reply") and not r.get("monitor") for r in decision.get("recipients", []))


def toggle(rehearsal: Rehearsal, gate: str) -> None:
    """A tenant switched with ``ipv6gate tenants --stack`` changes the deployed gate's next verdict."""
    event_name, domain, before = _toggle_target(rehearsal)
    print(f"\n6. ipv6gate tenants --stack: {domain} (in {event_name}: {before})")
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


def enforce(rehearsal: Rehearsal, gate: str) -> None:
    """README's enforce block for a monitor-mode tenant of the set: its would-reply becomes the reply."""
    import json

    tenants = json.loads((rehearsal.scenarios.directory / "tenants.json").read_text(encoding="utf-8"))
    monitored = {str(t["domain"]) for t in tenants if t.get("mode") == "monitor" and t.get("ipv6_inbound")}
    target = next(
        (
            (name, str(row["recipient"]).rpartition("@")[2], str(row["would_reply"]))
            for name, want in rehearsal.scenarios.expected.items()
            for row in want["recipients"]
            if row.get("monitor") and row.get("would_reply") and str(row["recipient"]).rpartition("@")[2] in monitored
        ),
        None,
    )
    if target is None:
        print("\n   (README's enforce block: the set has no monitor-mode tenant with a would-reply; not run)")
        return
    name, domain, would = target
    rehearsal.run_block(deploy_blocks()["enforce"], variables={"DOMAIN": domain})
    after = _reply_for(rehearsal.invoke(gate, name, rehearsal.scenarios.event(name)).outcome(), domain)
    check(after == would, f"{domain} enforced: {name} got {after}, expected {would}")
    print(f"   README's enforce block, DOMAIN={domain}: {name} now gets {after}")


def _toggle_target(rehearsal: Rehearsal) -> tuple[str, str, str]:
    """An IPv6 event and one recipient domain of it whose tenant decides its reply (from expected.json)."""
    import json

    from devstack.scenarios import describe

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
    from devstack.scenarios import describe

    decision = outcome.decision or {}
    rows = [r for r in decision.get("recipients", []) if str(r["recipient"]).endswith("@" + domain)]
    check(bool(rows) and not outcome.error, f"no decision for {domain}: {outcome.error or outcome.response}")
    return describe(rows[0])


def bounce(rehearsal: Rehearsal, gate: str, outputs: dict[str, str]) -> None:
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
    if name is None:
        print("\n7. bounce: not exercised (the set has no event rejected with a 5xx to every recipient)")
        return
    from devstack.rehearsal import fresh_event

    message_id = f"rehearsal-bounce-{int(time.time())}"
    print(f"\n7. bounce: {name} received now as {message_id}")
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
    check(
        bool(sent),
        f"no SendBounce for {message_id} within 600 s (queue depth {rehearsal.queue_depth(outputs['BounceQueueUrl'])})",
    )
    check(rehearsal.queue_depth(outputs["BounceQueueUrl"]) == 0, "the bounce queue is not empty")
    check(rehearsal.queue_depth(outputs["BounceDeadLetterQueueUrl"]) == 0, "a bounce request reached the DLQ")
    print(f"   bouncer: SendBounce to {sent[0]['recipients']} from {sent[0]['bounce_sender']}; queue empty, DLQ empty")


if __name__ == "__main__":
    sys.exit(main())
