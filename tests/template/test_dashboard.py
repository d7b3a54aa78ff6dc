"""The CloudWatch dashboard in template.yaml shows only metrics the code emits, with Powertools' dimensions.

Every emitted metric (``ipv6gate/metric_names.py``) is either on the dashboard or in
``LEFT_OFF`` with the reason; the EMF the handler really writes is checked against the same names.
"""

from __future__ import annotations

import io
import ipaddress
import json
import re
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics.provider import cold_start

from devstack import world
from devstack.sam_template import load_template
from ipv6gate import metric_names
from ipv6gate.decision import replies
from ipv6gate.entrypoints.lambda_gate import handle_ses_event
from ipv6gate.evaluation.gate import Gate
from ipv6gate.ports.memory import InMemoryTrace
from tests.support.powertools import fresh_logger

REPO = Path(__file__).resolve().parents[2]
LEFT_OFF = {
    ("gate", metric_names.DECISIONS_WITH_NOTES): "the causes have metrics of their own (the *Failures family)",
    ("bouncer", metric_names.BOUNCE_DELAY): "seconds, not a count: read it in Metrics when bounces look slow",
    ("bouncer", metric_names.BOUNCE_DUPLICATES_SKIPPED): "SQS redelivery noise: idempotency working as intended",
}
EMITTED = {("gate", name) for name in metric_names.GATE} | {("bouncer", name) for name in metric_names.BOUNCER}
FUNCTIONS = {"gate": "GateFunction", "bouncer": "BouncerFunction"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def environment(template: dict[str, Any], function: str) -> dict[str, Any]:
    env: dict[str, Any] = template["Resources"][FUNCTIONS[function]]["Properties"]["Environment"]["Variables"]
    return env


@pytest.fixture(scope="module")
def rows(template: dict[str, Any]) -> list[list[Any]]:
    """Every metric row of every widget; ``${...}`` left as text."""
    dashboards = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    [dashboard] = dashboards
    body = json.loads(dashboard["Properties"]["DashboardBody"]["Fn::Sub"])
    return [row for widget in body["widgets"] for row in widget["properties"]["metrics"]]


def dimensions(row: list[Any]) -> dict[str, str]:
    pairs = row[2:-1] if isinstance(row[-1], dict) else row[2:]
    return dict(zip(pairs[0::2], pairs[1::2], strict=True))


def shown(template: dict[str, Any], rows: list[list[Any]]) -> set[tuple[str, str]]:
    """(function, metric) of the rows in the functions' own namespace, by their ``service`` dimension."""
    namespace = environment(template, "gate")["POWERTOOLS_METRICS_NAMESPACE"]
    by_service = {environment(template, f)["POWERTOOLS_SERVICE_NAME"]: f for f in FUNCTIONS}
    out = set()
    for row in rows:
        if row[0] == namespace:
            out.add((by_service[dimensions(row)["service"]], row[1]))
    return out


def test_rows_are_spelled_out(rows: list[list[Any]]) -> None:
    # No "." / "..." shorthand: each row names its namespace and metric, so this test can read it.
    for row in rows:
        assert all(isinstance(part, str) and part not in (".", "...") for part in row[:2]), row


def test_both_functions_share_one_namespace(template: dict[str, Any]) -> None:
    assert len({environment(template, f)["POWERTOOLS_METRICS_NAMESPACE"] for f in FUNCTIONS}) == 1


def test_dashboard_shows_only_emitted_metrics_and_every_other_is_left_off_on_purpose(
    template: dict[str, Any], rows: list[list[Any]]
) -> None:
    on_dashboard = shown(template, rows)
    assert on_dashboard <= EMITTED, sorted(on_dashboard - EMITTED)
    assert EMITTED - on_dashboard == set(LEFT_OFF), sorted((EMITTED - on_dashboard) ^ set(LEFT_OFF))
    assert not on_dashboard & set(LEFT_OFF)


def test_custom_metric_dimensions_are_what_powertools_writes(template: dict[str, Any], rows: list[list[Any]]) -> None:
    namespace = environment(template, "gate")["POWERTOOLS_METRICS_NAMESPACE"]
    for row in (r for r in rows if r[0] == namespace):
        dims = dimensions(row)
        if row[1] == metric_names.COLD_START:  # Powertools' own: function_name, then service
            [function] = [
                f for f in FUNCTIONS if environment(template, f)["POWERTOOLS_SERVICE_NAME"] == dims["service"]
            ]
            assert list(dims) == ["function_name", "service"], row
            assert dims["function_name"] == f"${{{FUNCTIONS[function]}}}", row
        else:
            assert list(dims) == ["service"], row


def test_aws_metrics_name_the_stacks_resources(template: dict[str, Any], rows: list[list[Any]]) -> None:
    expected = {
        "AWS/Lambda": {("FunctionName", "${GateFunction}"), ("FunctionName", "${BouncerFunction}")},
        "AWS/SQS": {("QueueName", "${BounceDeadLetterQueue.QueueName}")},
    }
    for row in (r for r in rows if r[0].startswith("AWS/")):
        assert tuple(row[2:4]) in expected[row[0]], row
    stats = {row[-1].get("stat") for row in rows if row[:2] == ["AWS/Lambda", "Duration"]}
    assert stats == {"p50", "p99"}
    body = next(r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard")
    for name in re.findall(r"\$\{([^}]+)\}", body["Properties"]["DashboardBody"]["Fn::Sub"]):
        assert name.startswith("AWS::") or name.split(".")[0] in template["Resources"], name


def test_dashboard_url_output(template: dict[str, Any]) -> None:
    url = template["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
    assert "#dashboards:name=${Dashboard}" in url


def test_no_metric_name_is_spelled_outside_the_registry() -> None:
    sources = [*REPO.glob("layers/ipv6gate/ipv6gate/**/*.py"), *REPO.glob("functions/*/app.py")]
    spelled = [str(p) for p in sources if re.search(r"add_metric\(\s*name=[\"']", p.read_text())]
    assert spelled == []


def test_registry_knows_every_fault_and_reply() -> None:
    package = REPO / "layers/ipv6gate/ipv6gate"
    faults = set()
    for path in package.glob("**/*.py"):
        text = path.read_text()
        faults |= set(re.findall(r"faults\.append\(\"(\w+)\"\)", text))
        faults |= set(re.findall(r"faults=\(\*decision\.faults, \"(\w+)\"\)", text))
    assert faults == set(metric_names.FAULTS)
    ip = ipaddress.IPv6Address(world.GOOD_IP)
    made = {
        replies.no_reverse_dns(ip).status,
        replies.not_authenticated(ip).status,
        replies.ipv6_not_accepted("a.b").status,
    }
    assert made == set(metric_names.REPLY_STATUSES)


def test_the_handler_emits_registry_names_under_the_service_dimension(
    make_gate: Callable[..., Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(load_template(), "gate")
    metrics = Metrics(namespace=env["POWERTOOLS_METRICS_NAMESPACE"], service=env["POWERTOOLS_SERVICE_NAME"])
    metrics.clear_metrics()
    gate = make_gate()
    gate.recorder.trace = InMemoryTrace(fail_with="DynamoDB t: ThrottlingException")
    monkeypatch.setattr(cold_start, "is_cold_start", True)
    context = SimpleNamespace(function_name="stack-GateFunction-abc")

    @metrics.log_metrics(capture_cold_start_metric=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
        return handle_ses_event(event, gate, fresh_logger(io.StringIO()), metrics)

    out = io.StringIO()
    with redirect_stdout(out):
        for ip, rcpt in ((world.NO_PTR_IP, "a@tenant.test"), (world.PTR_TIMEOUT_IP, "b@watch.test")):
            handler(world.ses_event(ip=ip, recipients=(rcpt,)), context)
    blobs = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    seen = set()
    for blob in blobs:
        [directive] = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"]
        names = {m["Name"] for m in directive["Metrics"]}
        want = [["function_name", "service"]] if names == {metric_names.COLD_START} else [["service"]]
        assert directive["Dimensions"] == want and blob["service"] == env["POWERTOOLS_SERVICE_NAME"]
        seen |= names
    assert seen <= metric_names.GATE
    assert {metric_names.COLD_START, "Reply4_7_25", "TempErrorIprev", "TraceWriteFailures"} <= seen
