"""The bouncer's SQS batches: each record is one ``BounceRequest``, sent at most once per message and recipients.

Records are processed one by one and failures are reported per record (``ReportBatchItemFailures``),
so a bad record is redelivered (and finally dead-lettered) without resending its neighbours.
Idempotency on DynamoDB makes a redelivered record, or a second request for the same message and
recipients, return the stored outcome instead of sending a second bounce. Built once per cold start
by ``wiring.build_bouncer``; ``functions/bouncer/app.py`` calls ``handle``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    BasePersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from ipv6gate import metric_names
from ipv6gate.aws.ses_bounces import BounceSender, parse_record_body
from ipv6gate.bounce.request import BounceRequest


class BounceBatches:
    """Long-lived (one per cold start): the sender, the idempotency store, the batch processor."""

    def __init__(
        self,
        sender: BounceSender,
        persistence: BasePersistenceLayer,
        *,
        expiry_seconds: int,
        logger: Logger,
        metrics: Metrics,
    ) -> None:
        self.sender = sender
        self.logger = logger
        self.metrics = metrics
        self.processor = BatchProcessor(event_type=EventType.SQS)
        self._context: LambdaContext | None = None
        self.config = IdempotencyConfig(
            event_key_jmespath="idempotency_key",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=expiry_seconds,  # > the send window: never twice
            response_hook=self._already_handled,
        )
        # At most once per idempotency key: a repeat returns the stored outcome (``_already_handled``);
        # a failure deletes the in-progress record, so the redelivered SQS record may try again.
        self._send_once: Callable[..., dict[str, Any]] = idempotent_function(
            self._send,
            data_keyword_argument="bounce",
            persistence_store=persistence,
            config=self.config,
            key_prefix="ipv6gate-bounce",  # stable across function renames and deployments
        )

    def handle(self, event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
        self.config.register_lambda_context(context)
        self._context = context
        return process_partial_response(
            event=event, record_handler=self._record, processor=self.processor, context=context
        )

    def _record(self, record: SQSRecord) -> dict[str, Any]:
        request = parse_record_body(
            record.body, logger=self.logger, metrics=self.metrics, sqs_message_id=record.message_id
        )
        self.logger.append_keys(message_id=request.message_id)
        try:
            return self._send_once(bounce={"idempotency_key": request.idempotency_key()}, request=request)
        finally:
            self.logger.remove_keys(["message_id"])

    def _send(self, *, bounce: dict[str, str], request: BounceRequest) -> dict[str, Any]:
        """``bounce`` carries the idempotency key (message id and recipients); ``request`` the rest."""
        return self.sender.send(request, remaining_seconds=self._remaining_seconds).to_dict()

    def _remaining_seconds(self) -> float:
        context = self._context
        return context.get_remaining_time_in_millis() / 1000 if context is not None else float("inf")

    def _already_handled(self, response: Any, idempotent_data: DataRecord) -> Any:
        """The stored outcome of an earlier delivery is returned: no second bounce."""
        key = idempotent_data.idempotency_key
        self.logger.info("bounce already handled; not sent again", extra={"idempotency_key": key})
        self.metrics.add_metric(name=metric_names.BOUNCE_DUPLICATES_SKIPPED, unit=MetricUnit.Count, value=1)
        return response
