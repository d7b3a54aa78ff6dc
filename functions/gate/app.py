"""SES receipt-rule Lambda (RequestResponse): IPv6 gate for anonymous inbound mail.

Composition root: settings and clients are built once per cold start; the handler is decorators
plus one call into the shared ``ipv6gate`` package (the layer).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.ses_event import SESEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from ipv6gate.entrypoints.lambda_gate import handle_ses_event
from ipv6gate.entrypoints.telemetry import log_json
from ipv6gate.settings import Settings
from ipv6gate.wiring import build_gate

logger = Logger(json_serializer=log_json)
metrics = Metrics()

# A bad setting fails the cold start with a one-line message naming it (SES then retries).
gate = build_gate(Settings.from_env(os.environ))


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
@event_source(data_class=SESEvent)
def lambda_handler(event: SESEvent, context: LambdaContext) -> dict[str, Any]:
    return handle_ses_event(event, gate, logger, metrics)
