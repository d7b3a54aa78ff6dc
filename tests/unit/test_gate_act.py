"""The gate's side effects: the bounce queued by ``evaluate``, the trace record, and what happens when either fails."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from devstack import world
from ipv6gate.bounce.request import BounceRequest
from ipv6gate.evaluation.gate import Gate
from ipv6gate.mail.event import parse_event
from ipv6gate.ports.memory import InMemoryBounceQueue, InMemoryTrace

MakeGate = Callable[..., Gate]
NOW = datetime(2026, 11, 27, 12, 0, 5, tzinfo=UTC)


def acting(make_gate: MakeGate, queue: InMemoryBounceQueue, trace: InMemoryTrace, **settings: object) -> Gate:
    gate = make_gate(**settings)
    gate.evaluator.bounces, gate.recorder.trace, gate.recorder.now = queue, trace, lambda: NOW
    return gate


def test_no_ptr_with_spf_pass_queues_one_bounce(make_gate: MakeGate) -> None:
    queue, trace = InMemoryBounceQueue(), InMemoryTrace()
    gate = acting(make_gate, queue, trace)
    event = world.ses_event(
        ip=world.NO_PTR_IP, mail_from="alice@noptr.test", recipients=("a@tenant.test", "b@optout.test")
    )
    decision = gate.record(gate.evaluate(parse_event(event)))
    # The verdict is certain once the PTR is missing; whether SPF had finished by then is a race, so
    # the gate either proved the sender itself or left that to the bouncer.
    assert decision.bounce is not None and decision.bounce.action.value in ("send", "defer"), decision.bounce
    [request] = queue.requests
    assert request.authenticate is (decision.bounce.action.value == "defer")
    assert request == BounceRequest.from_json(request.to_json())
    assert [(r.recipient, r.status) for r in request.recipients] == [
        ("a@tenant.test", "4.7.25"),
        ("b@optout.test", "5.2.1"),
    ]
    assert request.reporting_mta == "dns; inbound-smtp.eu-west-1.amazonaws.com"
    assert request.client_ip == world.NO_PTR_IP and request.mail_from == "alice@noptr.test"
    assert [(d.message_id, at) for d, at in trace.records] == [(decision.message_id, NOW)]


def test_unauthenticated_rejection_is_recorded_but_not_bounced(make_gate: MakeGate) -> None:
    queue, trace = InMemoryBounceQueue(), InMemoryTrace()
    gate = acting(make_gate, queue, trace)
    decision = gate.record(gate.evaluate(parse_event(world.ses_event(ip=world.OTHER_IP))))
    assert decision.disposition == "STOP_RULE_SET"
    assert decision.bounce is not None and decision.bounce.action.value == "suppress"
    assert queue.requests == [] and len(trace.records) == 1
    assert decision.to_dict()["bounce"] == decision.bounce.to_dict()


def test_queue_failure_lets_the_message_through_with_a_note(make_gate: MakeGate) -> None:
    queue, trace = InMemoryBounceQueue(fail_with="SQS q: AccessDenied"), InMemoryTrace()
    gate = acting(make_gate, queue, trace, bounce_mode="always")
    decision = gate.record(gate.evaluate(parse_event(world.ses_event(ip=world.NO_PTR_IP))))
    assert decision.disposition == "CONTINUE"
    assert any("AccessDenied" in n and "let through" in n for n in decision.notes)
    assert decision.faults == ("bounce_queue",)
    assert trace.records[0][0].disposition == "CONTINUE"  # the trace says what really happened


def test_evaluate_returns_the_final_decision_and_recording_only_adds_what_failed(make_gate: MakeGate) -> None:
    """The disposition and bounce come out of ``evaluate``; a failed trace write adds a note and a fault, no more."""
    queue, trace = InMemoryBounceQueue(fail_with="SQS q: AccessDenied"), InMemoryTrace(fail_with="DynamoDB t: down")
    gate = acting(make_gate, queue, trace, bounce_mode="always")
    final = gate.evaluate(parse_event(world.ses_event(ip=world.NO_PTR_IP)))
    assert final.disposition == "CONTINUE" and final.faults == ("bounce_queue",)  # already let through
    recorded = gate.record(final)
    assert (recorded.disposition, recorded.bounce, recorded.verdicts) == (
        final.disposition,
        final.bounce,
        final.verdicts,
    )
    assert recorded.faults == ("bounce_queue", "trace_write") and recorded.notes[: len(final.notes)] == final.notes


def test_trace_failure_is_a_note_not_an_error(make_gate: MakeGate) -> None:
    queue, trace = InMemoryBounceQueue(), InMemoryTrace(fail_with="DynamoDB t: ThrottlingException")
    gate = acting(make_gate, queue, trace)
    decision = gate.record(gate.evaluate(parse_event(world.ses_event(ip=world.NO_PTR_IP))))
    assert decision.disposition == "STOP_RULE_SET"
    assert any("not recorded" in n and "Throttling" in n for n in decision.notes)
    assert decision.faults == ("trace_write",)


def test_accepted_mail_is_traced_without_a_bounce(make_gate: MakeGate) -> None:
    queue, trace = InMemoryBounceQueue(), InMemoryTrace()
    gate = acting(make_gate, queue, trace)
    decision = gate.record(gate.evaluate(parse_event(world.ses_event())))
    assert decision.bounce is None and queue.requests == [] and len(trace.records) == 1


def test_without_a_queue_bounces_are_off(make_gate: MakeGate) -> None:
    gate = make_gate(bounce_mode="always")
    decision = gate.record(gate.evaluate(parse_event(world.ses_event(ip=world.NO_PTR_IP))))
    assert decision.disposition == "STOP_RULE_SET" and decision.notes == ()


def test_mixed_recipients_are_never_bounced(make_gate: MakeGate) -> None:
    # The message continues (one recipient accepted), so it reaches everyone: no DSN may say "failed".
    queue, trace = InMemoryBounceQueue(), InMemoryTrace()
    gate = acting(make_gate, queue, trace, bounce_mode="always")
    event = world.ses_event(recipients=("a@tenant.test", "b@optout.test"))
    decision = gate.record(gate.evaluate(parse_event(event)))
    assert decision.disposition == "CONTINUE" and queue.requests == []
    assert decision.bounce is not None and "continues" in decision.bounce.reason


def test_all_checks_mode_proves_the_sender_in_the_gate(make_gate: MakeGate) -> None:
    queue, trace = InMemoryBounceQueue(), InMemoryTrace()
    gate = acting(make_gate, queue, trace)
    gate.complete_checks = True
    event = world.ses_event(ip=world.NO_PTR_IP, mail_from="alice@noptr.test")
    decision = gate.record(gate.evaluate(parse_event(event)))
    assert decision.checks.spf.result.value == "pass"
    assert decision.bounce is not None and decision.bounce.action.value == "send"
    assert queue.requests[0].authenticate is False


def test_ipv4_decisions_are_not_traced(make_gate: MakeGate) -> None:
    queue, trace = InMemoryBounceQueue(), InMemoryTrace()
    gate = acting(make_gate, queue, trace)
    gate.record(gate.evaluate(parse_event(world.ses_event(ip=world.V4_IP))))
    forged = "from x (x [2001:db8:2::25]) by mx.elsewhere.test with SMTP id 1"
    gate.record(gate.evaluate(parse_event(world.ses_event(received=forged))))  # client unknown: recorded
    assert [d.client_ip for d, _ in trace.records] == [None]
