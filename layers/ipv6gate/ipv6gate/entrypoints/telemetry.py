"""How a finished decision is logged and counted, whichever front door made it (the Lambda, the milter)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from ipv6gate import metric_names as m
from ipv6gate.bounce.backscatter import BounceAction
from ipv6gate.decision.rule import Verdict
from ipv6gate.evaluation.record import Decision


def log_json(record: dict[str, Any]) -> str:
    """Powertools' log serializer, ASCII-only: sender-chosen text may hold lone surrogates, which a
    UTF-8 stdout cannot encode; logging would then drop the whole decision line without a word."""
    return json.dumps(record, default=str, separators=(",", ":"), ensure_ascii=True)


def log_decision(decision: Decision, logger: Logger) -> None:
    """One structured line per message: who connected, what each check said, each recipient's reply."""
    logger.append_keys(message_id=decision.message_id)
    level = logger.warning if decision.notes else logger.info
    level("decision", extra={"decision": decision.to_dict()})


def count_decision(decision: Decision, metrics: Metrics) -> None:
    def count(name: str) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)

    count(m.DECISIONS)
    if decision.disposition is not None:  # SES's answer; the milter's is its SMTP reply, counted below
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
    for check in decision.checks:
        if check.temporary:
            count(m.temperror(check.method))
