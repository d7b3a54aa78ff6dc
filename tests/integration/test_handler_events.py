"""Every demo event in ``events/`` through the SAM function, run the way ``sam local invoke`` runs it.

A module-wide local stack (moto server + Knot serving ``events/zones``, the template's table and
bucket, the demo tenants and stored messages) is shared by all tests. The handler named in
``template.yaml`` is imported in a fresh process with the template's environment and called once
per event, in file-name order, like one Lambda container: the first call follows the cold start.

The CLI check runs ``ipv6gate evaluate`` fully offline (``DNS_ZONE_DIR=events/zones``,
``--tenants events/tenants.json``, no AWS): it gets the raw message of a DKIM event through
``--message <event>.eml``, one process per such event, since ``--message`` applies to every event
of a call. Handler (Knot + DynamoDB + S3) and CLI (zone files + JSON + file) must agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack import sam_local, sam_template, scenarios
from devstack.knot import find_knotd
from devstack.moto_stack import ZONES_DIR, MotoStack

pytestmark = pytest.mark.integration

EVENTS = scenarios.event_files()
EXPECTED: dict[str, Any] = json.loads((scenarios.EVENTS_DIR / "expected.json").read_text(encoding="utf-8"))
CLI = Path(sys.executable).with_name("ipv6gate")


@pytest.fixture(scope="module")
def stack() -> Iterator[MotoStack]:
    if find_knotd() is None:
        pytest.fail("knotd (Knot DNS) not found: apt-get install knot (these tests never skip)", pytrace=False)
    with MotoStack(ZONES_DIR) as local:
        yield local


@pytest.fixture(scope="module")
def spec(stack: MotoStack) -> sam_template.FunctionSpec:
    return sam_template.function_spec(stack.template, sam_template.GATE_FUNCTION)


@pytest.fixture(scope="module")
def environment(stack: MotoStack, spec: sam_template.FunctionSpec) -> dict[str, str]:
    env = sam_template.container_environment(spec, stack.overrides())
    stack.seed(env)
    return env


@pytest.fixture(scope="module")
def run(spec: sam_template.FunctionSpec, environment: dict[str, str]) -> sam_local.Run:
    result = sam_local.invoke(spec, environment, [(name, scenarios.load_event(name)) for name in EVENTS])
    assert result.init_error is None, f"cold start failed:\n{result.init_error}\n{result.init_stderr}"
    assert [i.name for i in result.invocations] == EVENTS
    return result


_EXACT = frozenset({"Decisions", "ColdStart", "DecisionErrors", "MalformedEvents"})
_FAMILIES = ("Disposition", "Recipients", "Reply", "TempError")


def _rows(recipients: list[dict[str, Any]]) -> list[tuple[str, str | None, bool, str | None]]:
    """(recipient, enforced reply, monitor, would-reply) in the order the event lists them."""
    return [(r["recipient"], r["reply"], bool(r.get("monitor")), r.get("would_reply")) for r in recipients]


def _camel(value: str) -> str:
    return "".join(part.capitalize() for part in value.lower().split("_"))


def test_event_files_are_exactly_the_expected_ones() -> None:
    assert EVENTS, "no event files in events/"
    assert set(EVENTS) == set(EXPECTED)
    ids = [scenarios.message_id_of(scenarios.load_event(name)) for name in EVENTS]
    assert len(set(ids)) == len(ids), "every event needs its own messageId"


def test_environment_comes_from_the_template(spec: sam_template.FunctionSpec, environment: dict[str, str]) -> None:
    # The template's values (parameter defaults, local resource names) with only the endpoints replaced.
    assert spec.handler == "app.lambda_handler"
    assert (spec.code_uri / "app.py").is_file()
    assert [p.name for p in spec.layers] == ["ipv6gate"]
    assert environment["TENANTS_TABLE"] == sam_template.local_name("TenantsTable")
    assert environment["MESSAGE_BUCKET"] == sam_template.local_name("MessageBucket")
    assert environment["MESSAGE_PREFIX"] == "inbound/"
    assert environment["TRUSTED_RECEIVERS"] == "inbound-smtp.eu-west-1.amazonaws.com"
    assert environment["DNS_SERVERS"].startswith("127.0.0.1:")
    assert environment["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert environment["AWS_SAM_LOCAL"] == "true"


@pytest.mark.parametrize("name", EVENTS)
def test_handler_decides_each_event(name: str, run: sam_local.Run, spec: sam_template.FunctionSpec) -> None:
    want = EXPECTED[name]
    event = scenarios.load_event(name)
    call = run.by_name()[name]
    assert call.error is None, call.error
    assert call.result == {"disposition": want["disposition"]}

    # Exactly one structured decision line (WARNING when it carries notes), and no error logged.
    [line] = call.logs("decision")
    decision = line["decision"]
    assert line["level"] in ("INFO", "WARNING")
    assert line["message_id"] == decision["message_id"] == scenarios.message_id_of(event) == want["message_id"]
    assert decision["client_ip"] == want["client_ip"]
    assert decision["disposition"] == want["disposition"]
    assert _rows(decision["recipients"]) == _rows(want["recipients"])
    assert [r for r in call.logs() if r["level"] in ("ERROR", "CRITICAL")] == []

    # EMF: one decision, the recipients counted by outcome, each reply (enforced or monitored) by status.
    metrics = call.metrics()
    assert call.metric_namespaces() == {spec.environment["POWERTOOLS_METRICS_NAMESPACE"]}
    rows = want["recipients"]
    rejected = sum(1 for r in rows if r["reply"])
    monitored = sum(1 for r in rows if r["monitor"])
    # Only replies that took effect are counted by status; monitor-mode would-be replies are not.
    replies = Counter("Reply" + r["reply"].split()[1].replace(".", "_") for r in rows if r["reply"])
    counts = {
        "Decisions": 1.0,
        f"Disposition{_camel(want['disposition'])}": 1.0,
        "RecipientsAccepted": float(len(rows) - rejected - monitored),
        "RecipientsRejected": float(rejected),
        "RecipientsMonitorWouldReject": float(monitored),
        **{k: float(v) for k, v in replies.items()},
    }
    if name == run.invocations[0].name:
        counts["ColdStart"] = 1.0
    # The metric families this spec is about; others (e.g. bounce bookkeeping) are not judged here.
    # No TempError*/DecisionErrors/MalformedEvents: every demo event is decided on definite answers.
    judged = {k: v for k, v in metrics.items() if v and (k in _EXACT or k.startswith(_FAMILIES))}
    assert judged == {k: v for k, v in counts.items() if v}


def test_cold_start_metric_on_the_first_invocation_only(run: sam_local.Run) -> None:
    first, *warm = run.invocations
    assert first.metrics().get("ColdStart") == 1
    [blob] = [b for b in first.emf() if "ColdStart" in b]
    assert blob["function_name"] == sam_template.GATE_FUNCTION
    assert first.logs("decision")[0]["cold_start"] is True
    for call in warm:
        assert "ColdStart" not in call.metrics(), call.name
        assert call.logs("decision")[0]["cold_start"] is False, call.name


def test_one_event_per_container_is_a_cold_start(spec: sam_template.FunctionSpec, environment: dict[str, str]) -> None:
    """``sam local invoke`` starts a container per event: the DKIM event alone, raw message from S3."""
    name = "ipv6-dkim-only.json"
    single = sam_local.invoke(spec, environment, [(name, scenarios.load_event(name))])
    [call] = single.invocations
    assert call.error is None, call.error
    assert call.result == {"disposition": EXPECTED[name]["disposition"]}
    assert call.metrics()["ColdStart"] == 1
    [line] = call.logs("decision")
    assert line["decision"]["checks"]["dkim"]["result"] == "pass"
    assert line["decision"]["checks"]["spf"]["result"] == "fail"


def _cli(tmp_path: Path, *args: str) -> list[dict[str, Any]]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DNS_ZONE_DIR": str(ZONES_DIR),
    }
    assert CLI.exists(), f"console script missing: {CLI} (pip install -e .)"
    proc = subprocess.run(
        [str(CLI), "evaluate", *args, "--tenants", str(scenarios.EVENTS_DIR / "tenants.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_cli_agrees_with_the_handler(tmp_path: Path, run: sam_local.Run) -> None:
    paths = {name: scenarios.EVENTS_DIR / name for name in EVENTS}
    with_raw = {name for name, path in paths.items() if path.with_suffix(".eml").exists()}
    out = _cli(tmp_path, *(str(paths[n]) for n in EVENTS if n not in with_raw))
    for name in sorted(with_raw):
        out += _cli(tmp_path, str(paths[name]), "--message", str(paths[name].with_suffix(".eml")))
    by_name = {Path(o["event"]).name: o for o in out}
    assert set(by_name) == set(EVENTS)

    handler = run.by_name()
    for name in EVENTS:
        want, got = EXPECTED[name], by_name[name]
        assert (got["disposition"], got["client_ip"]) == (want["disposition"], want["client_ip"]), name
        assert _rows(got["recipients"]) == _rows(want["recipients"]), name
        logged = handler[name].logs("decision")[0]["decision"]
        assert got["recipients"] == logged["recipients"], name
        # Both stop once the verdict is certain; which unneeded check had finished by then is a race,
        # so results are compared where both ran to the end.
        cli_checks = {m: c["result"] for m, c in got["checks"].items()}
        fn_checks = {m: c["result"] for m, c in logged["checks"].items()}
        both = [m for m in cli_checks if "skipped" not in (cli_checks[m], fn_checks[m])]
        assert {m: cli_checks[m] for m in both} == {m: fn_checks[m] for m in both}, name
