"""What the SES receipt-rule function does with one event, apart from Powertools' decorators.

Kept out of ``functions/gate/app.py`` so the handler stays decorators plus one call, and so this
can be tested with a real Logger and Metrics. Whatever happens, SES gets a valid disposition: a
malformed event or an unexpected error continues the rule set (the mail is delivered) and is
logged and counted, since stopping it would lose mail that nobody has judged.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from ipv6gate.bounce.policy import BounceAction
from ipv6gate.decision.policy import Disposition, Verdict
from ipv6gate.evaluation.gate import Gate
from ipv6gate.evaluation.record import Decision
from ipv6gate.mail.event import EventError, parse_event

CONTINUE = {"disposition": Disposition.CONTINUE.value}


def log_json(record: dict[str, Any]) -> str:
    """Powertools' log serializer, ASCII-only: sender-chosen text may hold lone surrogates, which a
    UTF-8 stdout cannot encode; logging would then drop the whole decision line without a word."""
    return json.dumps(record, default=str, separators=(",", ":"), ensure_ascii=True)


def handle_ses_event(event: Any, gate: Gate, logger: Logger, metrics: Metrics) -> dict[str, str]:
    try:
        mail = parse_event(event)
    except EventError as exc:
        logger.error("not an SES receipt event; continuing", extra={"error": str(exc)})
        metrics.add_metric(name="MalformedEvents", unit=MetricUnit.Count, value=1)
        return dict(CONTINUE)
    try:
        decision = gate.evaluate(mail)
    except Exception:
        logger.exception("decision failed; continuing", extra={"message_id": mail.message_id})
        metrics.add_metric(name="DecisionErrors", unit=MetricUnit.Count, value=1)
        return dict(CONTINUE)
    decision = gate.act(decision)
    log_decision(decision, logger)
    count_decision(decision, metrics)
    return {"disposition": decision.disposition.value}


def log_decision(decision: Decision, logger: Logger) -> None:
    """One structured line per message: who connected, what each check said, each recipient's reply."""
    logger.append_keys(message_id=decision.message_id)
    level = logger.warning if decision.notes else logger.info
    level("decision", extra={"decision": decision.to_dict()})


def count_decision(decision: Decision, metrics: Metrics) -> None:
    metrics.add_metric(name="Decisions", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=f"Disposition{_camel(decision.disposition.value)}", unit=MetricUnit.Count, value=1)
    if decision.notes:
        metrics.add_metric(name="DecisionsWithNotes", unit=MetricUnit.Count, value=1)
    if decision.bounce is not None and decision.bounce.action is BounceAction.SUPPRESS:
        metrics.add_metric(name="BouncesSuppressed", unit=MetricUnit.Count, value=1)
    elif decision.bounce is not None and decision.bounce.action.queues and "bounce_queue" not in decision.faults:
        metrics.add_metric(name="BouncesQueued", unit=MetricUnit.Count, value=1)  # only what reached the queue
    for fault in decision.faults:  # tenant_lookup -> TenantLookupFailures, ...
        metrics.add_metric(name=f"{_camel(fault)}Failures", unit=MetricUnit.Count, value=1)
    for verdict in decision.verdicts:
        if verdict.monitor:
            metrics.add_metric(name="RecipientsMonitorWouldReject", unit=MetricUnit.Count, value=1)
        elif verdict.verdict is Verdict.REJECT:
            metrics.add_metric(name="RecipientsRejected", unit=MetricUnit.Count, value=1)
        else:
            metrics.add_metric(name="RecipientsAccepted", unit=MetricUnit.Count, value=1)
        if verdict.reply is not None and not verdict.monitor:  # only replies that took effect
            metrics.add_metric(name=f"Reply{verdict.reply.status.replace('.', '_')}", unit=MetricUnit.Count, value=1)
    for check in (decision.checks.iprev, decision.checks.spf, decision.checks.dkim):
        if check.temporary:
            metrics.add_metric(name=f"TempError{check.method.capitalize()}", unit=MetricUnit.Count, value=1)


def _camel(value: str) -> str:
    return "".join(part.capitalize() for part in value.lower().split("_"))
