"""SQS-triggered bouncer: turns the gate's queued bounce requests into SES SendBounce calls.

Composition root: ``wiring.build_bouncer`` builds the SES client, the sender (pacing, the sender
proof) and the idempotency store once per cold start; the handler is decorators plus one call
(``ipv6gate.aws.bounce_batches``: one bounce per message and recipients, failures per record).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from ipv6gate.entrypoints.telemetry import log_json
from ipv6gate.settings import BouncerSettings
from ipv6gate.wiring import build_bouncer

logger = Logger(json_serializer=log_json)
metrics = Metrics()

# A bad setting fails the cold start with a one-line message naming it (the records are redelivered).
bouncer = build_bouncer(BouncerSettings.from_env(os.environ), logger, metrics)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return bouncer.handle(event, context)
