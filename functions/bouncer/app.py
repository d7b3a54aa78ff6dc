"""SQS-triggered bouncer: turns the gate's queued bounce requests into SES SendBounce calls.

Composition root: settings, the SES client, the sender (pacing) and the idempotency store are built once per
cold start. Each SQS record is one ``BounceRequest``; records are processed one by one and failures
are reported per record (``ReportBatchItemFailures``), so a bad record is redelivered (and finally
dead-lettered) without resending its neighbours. Idempotency on DynamoDB makes a redelivered record,
or a second request for the same message and recipients, return the stored outcome instead of
sending a second bounce.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from ipv6gate.bounce.request import BounceRequest
from ipv6gate.entrypoints import metric_names
from ipv6gate.entrypoints.bouncer import BounceSender, Pacer, parse_record_body, ses_client
from ipv6gate.entrypoints.telemetry import log_json
from ipv6gate.settings import BouncerSettings
from ipv6gate.wiring import build_sender_proof

logger = Logger(json_serializer=log_json)
metrics = Metrics()

# A bad setting fails the cold start with a one-line message naming it (the records are redelivered).
settings = BouncerSettings.from_env(os.environ)
ses = ses_client()
# For requests the gate queued before SPF/DKIM finished: the same evaluator, DNS layer and message store.
authenticate = build_sender_proof(settings.checks)
processor = BatchProcessor(event_type=EventType.SQS)
_invocation: dict[str, LambdaContext] = {}


def _already_handled(response: Any, idempotent_data: DataRecord) -> Any:
    """The stored outcome of an earlier delivery is returned: no second bounce."""
    logger.info("bounce already handled; not sent again", extra={"idempotency_key": idempotent_data.idempotency_key})
    metrics.add_metric(name=metric_names.BOUNCE_DUPLICATES_SKIPPED, unit=MetricUnit.Count, value=1)
    return response


idempotency_config = IdempotencyConfig(
    event_key_jmespath="idempotency_key",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=settings.idempotency_expiry_seconds,  # > the send window: never twice
    response_hook=_already_handled,
)
persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table)


def _remaining_seconds() -> float:
    context = _invocation.get("context")
    return context.get_remaining_time_in_millis() / 1000 if context is not None else float("inf")


sender = BounceSender(
    ses, settings, Pacer(settings.rate_per_second), logger=logger, metrics=metrics, authenticate=authenticate
)


def _send_bounce(*, bounce: dict[str, str], request: BounceRequest) -> dict[str, Any]:
    """``bounce`` carries the idempotency key (message id and recipients); ``request`` the rest."""
    return sender.send(request, remaining_seconds=_remaining_seconds).to_dict()


# At most once per idempotency key: a repeat returns the stored outcome (``_already_handled``);
# a failure deletes the in-progress record, so the redelivered SQS record may try again.
send_bounce_once: Callable[..., dict[str, Any]] = idempotent_function(
    _send_bounce,
    data_keyword_argument="bounce",
    persistence_store=persistence,
    config=idempotency_config,
    key_prefix="ipv6gate-bounce",  # stable across function renames and deployments
)


def record_handler(record: SQSRecord) -> dict[str, Any]:
    request = parse_record_body(record.body, logger=logger, metrics=metrics, sqs_message_id=record.message_id)
    logger.append_keys(message_id=request.message_id)
    try:
        result: dict[str, Any] = send_bounce_once(
            bounce={"idempotency_key": request.idempotency_key()}, request=request
        )
    finally:
        logger.remove_keys(["message_id"])
    return result


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency_config.register_lambda_context(context)
    _invocation["context"] = context
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
