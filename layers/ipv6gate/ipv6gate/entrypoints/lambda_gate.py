"""What the SES receipt-rule function does with one event, apart from Powertools' decorators.

Kept out of ``functions/gate/app.py`` so the handler stays decorators plus one call, and so this
can be tested with a real Logger and Metrics. It only translates: the event to the gate's
``Mail``, the final decision to SES's disposition. Whatever happens, SES gets a valid disposition: a
malformed event or an unexpected error continues the rule set (the mail is delivered) and is
logged and counted, since stopping it would lose mail that nobody has judged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from ipv6gate import metric_names as m
from ipv6gate.decision.rule import Disposition
from ipv6gate.entrypoints.telemetry import count_decision, log_decision
from ipv6gate.evaluation.gate import Gate
from ipv6gate.mail.event import EventError, parse_event

#: The answer when the gate could not judge the message: deliver it (stopping it would lose mail nobody judged).
LET_THROUGH = {"disposition": Disposition.CONTINUE.value}


def handle_ses_event(event: Any, gate: Gate, logger: Logger, metrics: Metrics) -> dict[str, str]:
    try:
        mail = parse_event(event)
    except EventError as exc:
        logger.error("not an SES receipt event; continuing", extra={"error": str(exc)})
        metrics.add_metric(name=m.MALFORMED_EVENTS, unit=MetricUnit.Count, value=1)
        return dict(LET_THROUGH)
    try:
        decision = gate.evaluate(mail)
    except Exception:
        logger.exception("decision failed; continuing", extra={"message_id": mail.message_id})
        metrics.add_metric(name=m.DECISION_ERRORS, unit=MetricUnit.Count, value=1)
        return dict(LET_THROUGH)
    answer = {"disposition": (decision.disposition or Disposition.CONTINUE).value}
    decision = gate.record(decision)  # adds only a note and a fault when the trace write failed
    log_decision(decision, logger)
    count_decision(decision, metrics)
    return answer
