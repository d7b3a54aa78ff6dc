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
from ipv6gate.entrypoints import metric_names as m
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
        metrics.add_metric(name=m.MALFORMED_EVENTS, unit=MetricUnit.Count, value=1)
        return dict(CONTINUE)
    try:
        decision = gate.evaluate(mail)
    except Exception:
        logger.exception("decision failed; continuing", extra={"message_id": mail.message_id})
        metrics.add_metric(name=m.DECISION_ERRORS, unit=MetricUnit.Count, value=1)
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
    def count(name: str) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)

    count(m.DECISIONS)
    count(m.disposition(decision.disposition))
    if decision.notes:
        count(m.DECISIONS_WITH_NOTES)
    if decision.bounce is not None and decision.bounce.action is BounceAction.SUPPRESS:
        count(m.BOUNCES_SUPPRESSED)
    elif decision.bounce is not None and decision.bounce.action.queues and "bounce_queue" not in decision.faults:
        count(m.BOUNCES_QUEUED)  # only what reached the queue
    for fault in decision.faults:  # tenant_lookup -> TenantLookupFailures, ...
        count(m.failures(fault))
    for verdict in decision.verdicts:
        if verdict.monitor:
            count(m.RECIPIENTS_MONITOR_WOULD_REJECT)
        elif verdict.verdict is Verdict.REJECT:
            count(m.RECIPIENTS_REJECTED)
        else:
            count(m.RECIPIENTS_ACCEPTED)
        if verdict.reply is not None and not verdict.monitor:  # only replies that took effect
            count(m.reply(verdict.reply.status))
    for check in (decision.checks.iprev, decision.checks.spf, decision.checks.dkim):
        if check.temporary:
            count(m.temperror(check.method))
