"""The handler's body with real Powertools Logger and Metrics: one decision line, EMF counts."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import pytest
from aws_lambda_powertools import Logger, Metrics

from devstack import world
from ipv6gate.entrypoints.lambda_gate import handle_ses_event
from ipv6gate.evaluation.gate import Gate
from tests.support.powertools import emf, fresh_logger, lines


def test_reject_is_logged_once_and_counted(
    make_gate: Callable[..., Gate], powertools: tuple[Logger, Metrics], stream: io.StringIO
) -> None:
    logger, metrics = powertools
    event = world.ses_event(ip=world.NO_PTR_IP, recipients=("a@tenant.test", "b@optout.test"))
    assert handle_ses_event(event, make_gate(), logger, metrics) == {"disposition": "STOP_RULE_SET"}
    [line] = lines(stream)
    assert line["message"] == "decision" and line["level"] == "INFO"
    decision = line["decision"]
    assert (
        decision["client_ip"] == world.NO_PTR_IP
        and decision["message_id"] == event["Records"][0]["ses"]["mail"]["messageId"]
    )
    assert [r["reply"][:10] for r in decision["recipients"]] == ["450 4.7.25", "550 5.2.1 "]
    counts = emf(metrics)
    assert counts["Decisions"] == 1 and counts["DispositionStopRuleSet"] == 1
    assert counts["RecipientsRejected"] == 2 and counts["Reply4_7_25"] == 1 and counts["Reply5_2_1"] == 1


def test_malformed_event_continues_and_is_counted(
    make_gate: Callable[..., Gate], powertools: tuple[Logger, Metrics], stream: io.StringIO
) -> None:
    logger, metrics = powertools
    assert handle_ses_event({"Records": []}, make_gate(), logger, metrics) == {"disposition": "CONTINUE"}
    [line] = lines(stream)
    assert line["level"] == "ERROR" and "no Records[0]" in line["error"]
    assert emf(metrics) == {"MalformedEvents": 1}


def test_unexpected_error_continues(
    make_gate: Callable[..., Gate],
    powertools: tuple[Logger, Metrics],
    stream: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logger, metrics = powertools
    gate = make_gate()

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(gate, "evaluate", boom)
    assert handle_ses_event(world.ses_event(), gate, logger, metrics) == {"disposition": "CONTINUE"}
    [line] = lines(stream)
    assert line["level"] == "ERROR" and "RuntimeError" in line["exception"]
    assert emf(metrics) == {"DecisionErrors": 1}


def test_monitor_and_temperror_metrics(
    make_gate: Callable[..., Gate], powertools: tuple[Logger, Metrics], stream: io.StringIO
) -> None:
    logger, metrics = powertools
    event = world.ses_event(ip=world.PTR_TIMEOUT_IP, recipients=("a@watch.test", "b@tenant.test"))
    assert handle_ses_event(event, make_gate(), logger, metrics) == {"disposition": "CONTINUE"}
    counts = emf(metrics)
    assert counts["TempErrorIprev"] == 1 and counts["RecipientsAccepted"] == 2


def test_sender_text_that_utf8_cannot_encode_does_not_lose_the_decision_line(
    make_gate: Callable[..., Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ipv6gate.entrypoints.telemetry import log_json

    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="utf-8")  # what Lambda's stdout is
    logger = fresh_logger(stdout, json_serializer=log_json)
    event = world.ses_event(ip=world.NO_PTR_IP, mail_from="ann\ud800@good.test", raw=world.message())
    handle_ses_event(event, make_gate(), logger, Metrics())
    stdout.flush()
    [line] = [json.loads(text) for text in raw.getvalue().decode().splitlines()]
    assert line["message"] == "decision" and line["decision"]["client_ip"] == world.NO_PTR_IP


def test_each_fault_is_a_metric_of_its_own(
    make_gate: Callable[..., Gate], powertools: tuple[Logger, Metrics], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ipv6gate.ports import TenantLookupError
    from ipv6gate.ports.memory import InMemoryTrace

    logger, metrics = powertools
    gate = make_gate()
    gate.recorder.trace = InMemoryTrace(fail_with="DynamoDB t: ThrottlingException")

    def unreachable(domains: object) -> dict[str, object]:
        raise TenantLookupError("DynamoDB t: EndpointConnectionError")

    monkeypatch.setattr(gate.evaluator.tenants, "get_many", unreachable)
    handle_ses_event(world.ses_event(ip=world.NO_PTR_IP), gate, logger, metrics)
    counts = emf(metrics)
    assert counts["TenantLookupFailures"] == 1 and counts["TraceWriteFailures"] == 1
    assert "BounceQueueFailures" not in counts


def test_without_a_bounce_queue_the_decision_says_none_and_nothing_is_counted_as_queued(
    make_gate: Callable[..., Gate], powertools: tuple[Logger, Metrics], stream: io.StringIO
) -> None:
    """BOUNCE_QUEUE_URL empty (the gate has no queue): the policy's "send" was not carried out."""
    logger, metrics = powertools
    gate = make_gate(bounce_mode="always")
    assert gate.evaluator.bounces is None
    event = world.ses_event(ip=world.NO_PTR_IP)
    assert handle_ses_event(event, gate, logger, metrics) == {"disposition": "STOP_RULE_SET"}
    [line] = lines(stream)
    assert line["decision"]["bounce"] == {
        "action": "none",
        "reason": "no bounce queue configured: nothing queued (policy: send)",
    }
    counts = emf(metrics)
    assert "BouncesQueued" not in counts and "BouncesSuppressed" not in counts and counts["Reply4_7_25"] == 1


def test_a_bounce_that_could_not_be_queued_is_not_counted_as_queued(
    make_gate: Callable[..., Gate], powertools: tuple[Logger, Metrics]
) -> None:
    from ipv6gate.ports.memory import InMemoryBounceQueue

    logger, metrics = powertools
    gate = make_gate(bounce_mode="always")
    gate.evaluator.bounces = InMemoryBounceQueue(fail_with="SQS q: AccessDenied")
    handle_ses_event(world.ses_event(ip=world.NO_PTR_IP), gate, logger, metrics)
    counts = emf(metrics)
    assert counts["BounceQueueFailures"] == 1 and "BouncesQueued" not in counts


def test_a_queued_bounce_is_counted(make_gate: Callable[..., Gate], powertools: tuple[Logger, Metrics]) -> None:
    from ipv6gate.ports.memory import InMemoryBounceQueue

    logger, metrics = powertools
    gate = make_gate(bounce_mode="always")
    gate.evaluator.bounces = queue = InMemoryBounceQueue()
    handle_ses_event(world.ses_event(ip=world.NO_PTR_IP), gate, logger, metrics)
    assert emf(metrics)["BouncesQueued"] == 1 and len(queue.requests) == 1
