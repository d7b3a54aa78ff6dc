"""``sam deploy`` rehearsed, reduced for CI: deploy, three invocations, a tenant toggle, delete.

Through ``make deploy-rehearsal``'s code (``devstack/rehearsal.py``): the private dockerd and the
offline arm64 image, Knot, LocalStack on this host; README "Deploy"'s deploy block (``sam build``,
``sam deploy`` with samconfig.toml as shipped) into the operator's active rule set; three events on
the deployed gate by its physical name; ``ipv6gate tenants enable --stack`` changing the next verdict;
README's roll-back block (``sam delete``). The full rehearsal (every scenario, the first-deploy
check, an update in place, a bounce through the deployed queue and bouncer) is ``make
deploy-rehearsal``. An engine that cannot start fails the test with its one-line reason; it never skips.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack import sam_template, scenarios
from devstack.docker_engine import EngineError
from devstack.rehearsal import OPERATOR_RULE_SET, Rehearsal
from devstack.scenarios import describe

pytestmark = pytest.mark.integration

EVENTS = ("ipv6-spf-pass.json", "ipv6-no-ptr.json", "ipv6-tenant-not-opted-in.json")
TOGGLED = ("ipv6-tenant-not-opted-in.json", "example.net")


@pytest.fixture(scope="module")
def rehearsal() -> Iterator[Rehearsal]:
    spec = sam_template.function_spec(sam_template.load_template(), "GateFunction")
    chosen = scenarios.load_scenarios(scenarios.EVENTS_DIR, sorted(spec.environment))
    engine = Rehearsal(chosen, log=print)
    try:
        engine.start()
    except EngineError as exc:
        pytest.fail(f"the rehearsal's engine could not start: {exc}", pytrace=False)
    try:
        yield engine
    finally:
        engine.stop()
    assert engine.leftovers() == []


def test_deploy_invoke_toggle_delete(rehearsal: Rehearsal) -> None:
    before = rehearsal.operator_rule_set()
    # TenantCacheSeconds=0: the toggle below is seen by the next invocation of the warm function.
    assert rehearsal.deploy({"TenantCacheSeconds": "0"}) == "CREATE_COMPLETE"
    assert rehearsal.localstack is not None and rehearsal.localstack.faked_resources() == []
    assert rehearsal.localstack.listening() and rehearsal.localstack.unexpected_listeners() == []
    outputs = rehearsal.outputs()
    assert rehearsal.active_rule_set() == OPERATOR_RULE_SET
    assert rehearsal.rule_order(OPERATOR_RULE_SET) == [outputs["ReceiptRuleName"], *before]

    rehearsal.seed(outputs, "inbound/")
    gate = outputs["GateFunctionArn"]
    for name in EVENTS:
        outcome = rehearsal.invoke(gate, name, rehearsal.scenarios.event(name)).outcome()
        assert scenarios.judge(outcome, rehearsal.scenarios.expected[name]) == [], name

    name, domain = TOGGLED
    assert "ipv6=on" in rehearsal.tenants("enable", domain)
    decision = rehearsal.invoke(gate, name, rehearsal.scenarios.event(name)).outcome().decision or {}
    replies = {r["recipient"]: describe(r) for r in decision.get("recipients", [])}
    assert replies == {"frank@example.net": "accept"}  # was 550 5.2.1 (expected.json) before the toggle

    rehearsal.rollback()
    assert not rehearsal.stack_exists()
    assert rehearsal.active_rule_set() == OPERATOR_RULE_SET
    assert rehearsal.rule_order(OPERATOR_RULE_SET) == before
