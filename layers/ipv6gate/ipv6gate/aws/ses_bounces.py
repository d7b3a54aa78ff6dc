"""The bouncer: one queued ``BounceRequest`` becomes at most one SES ``SendBounce`` call.

SES allows SendBounce at most once per second per account and only within 24 hours of receipt.
So the bouncer paces its calls (``Pacer``), drops a request that has aged out of the window (a log
line and a metric, and the SQS record succeeds: retrying cannot help), retries throttling with
exponential backoff and jitter while the invocation has time left, and raises on anything else so
that the SQS record fails, is redelivered, and after ``maxReceiveCount`` lands in the dead-letter
queue (where an alarm watches). Idempotency (one bounce per message and recipients) is the
job of ``aws.bounce_batches`` (Powertools Idempotency on DynamoDB).

Everything with a side effect is injected (SES client, clocks, sleep, randomness, logger, metrics),
so the tests check pacing and backoff in fake time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from ipv6gate import metric_names as m
from ipv6gate.bounce.backscatter import BounceAction, BounceDecision
from ipv6gate.bounce.request import BounceRequest, BounceRequestError
from ipv6gate.settings import BouncerSettings

# Error codes SES (query protocol) and the AWS SDKs use for "slow down"; SES v1 answers
# ``Throttling`` ("Maximum sending rate exceeded.") with HTTP 400.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "SlowDown",
    }
)
THROTTLING_HTTP_STATUS = frozenset({429, 503})


# --------------------------------------------------------------------------- pacing
class Pacer:
    """At most ``rate_per_second`` calls per second: ``wait()`` before each call.

    Per process (one Lambda container; the function's reserved concurrency of 1 keeps it to one
    at a time). Throttling answers from SES, e.g. when something else in the account also calls
    SendBounce, are handled by the retries in ``BounceSender``.
    """

    def __init__(
        self,
        rate_per_second: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate_per_second > 0:
            raise ValueError("rate_per_second must be positive")
        self.interval = 1.0 / rate_per_second
        self.clock = clock
        self._sleep = sleep
        self._next_at: float | None = None

    def wait(self) -> float:
        """Block until the next call may start, and claim that slot; return the seconds waited."""
        started = now = self.clock()
        while self._next_at is not None and now < self._next_at:
            self._sleep(self._next_at - now)
            now = self.clock()
        self._next_at = now + self.interval
        return now - started

    def delay_before_next(self) -> float:
        """Seconds ``wait()`` would block now."""
        return 0.0 if self._next_at is None else max(0.0, self._next_at - self.clock())

    def sleep(self, seconds: float) -> None:
        """Sleep with the pacer's (injectable) sleep, e.g. for a backoff."""
        if seconds > 0:
            self._sleep(seconds)


# --------------------------------------------------------------------------- sending
class BounceRetryLater(Exception):
    """Not sent this time but a later delivery of the SQS record may succeed (throttled, out of time)."""


@dataclass(frozen=True, slots=True)
class BounceOutcome:
    status: str  # "sent", "expired" or "suppressed"
    message_id: str  # SES's id of the bounced (original) message
    ses_message_id: str = ""  # the id SES gave the bounce, when sent
    attempts: int = 0  # SendBounce calls made
    age_seconds: float = 0.0  # since SES received the original message

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message_id": self.message_id,
            "ses_message_id": self.ses_message_id,
            "attempts": self.attempts,
            "age_seconds": round(self.age_seconds, 3),
        }


def is_throttling(exc: BaseException) -> bool:
    """SES (or the endpoint in front of it) asked us to slow down."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in THROTTLING_CODES or status in THROTTLING_HTTP_STATUS


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or type(exc).__name__)
    return type(exc).__name__


def backoff_seconds(retry: int, settings: BouncerSettings, rand: Callable[[], float]) -> float:
    """Delay before retry number ``retry`` (1-based): exponential, capped, with "equal jitter" in [d/2, d]."""
    ceiling = min(settings.backoff_cap_seconds, settings.backoff_base_seconds * 2.0 ** (retry - 1))
    return ceiling / 2 + rand() * ceiling / 2


@dataclass
class BounceSender:
    """Long-lived (one per cold start): what sending a bounce needs besides the request itself."""

    ses_client: Any
    settings: BouncerSettings
    pacer: Pacer
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    logger: Logger = field(default_factory=Logger)
    metrics: Metrics = field(default_factory=Metrics)
    rand: Callable[[], float] = random.random
    # Proves the sender of a request the gate queued before SPF/DKIM finished (evaluation/sender_proof).
    authenticate: Callable[[BounceRequest], BounceDecision] | None = None

    def send(self, request: BounceRequest, remaining_seconds: Callable[[], float] | None = None) -> BounceOutcome:
        """Send the bounce for ``request``, or drop it when it is past the window or its sender unproven.

        Returns normally when sent or dropped (the SQS record succeeds). Raises ``BounceRetryLater``
        when throttling outlasted the retries or the invocation's time, and re-raises any other error
        from SES (the SQS record fails and is redelivered, eventually into the dead-letter queue).
        """
        log = {"message_id": request.message_id, "recipients": [r.recipient for r in request.recipients]}
        age = self.clock() - _aware(request.arrival_time())
        if age > self.settings.max_age:
            bounce = {**log, "age_hours": round(age.total_seconds() / 3600, 2)}
            bounce["max_age_hours"] = self.settings.max_age_hours
            self.logger.warning(
                "bounce request expired; dropped (SES sends bounces only within the window)", extra={"bounce": bounce}
            )
            self.metrics.add_metric(name=m.BOUNCES_EXPIRED, unit=MetricUnit.Count, value=1)
            return BounceOutcome("expired", request.message_id, age_seconds=age.total_seconds())
        if request.authenticate and not self._sender_proven(request, log):
            return BounceOutcome("suppressed", request.message_id, age_seconds=age.total_seconds())
        return self._send_with_retries(request, log, remaining_seconds)

    def _sender_proven(self, request: BounceRequest, log: dict[str, Any]) -> bool:
        """The gate decided before SPF/DKIM finished: prove the sender here, or send nothing."""
        verdict = (
            self.authenticate(request)
            if self.authenticate is not None
            else BounceDecision(BounceAction.SUPPRESS, "no authenticator configured in the bouncer")
        )
        if verdict.action is BounceAction.DEFER:
            self.metrics.add_metric(name=m.BOUNCE_AUTH_DEFERRED, unit=MetricUnit.Count, value=1)
            raise BounceRetryLater(f"sender authentication unfinished: {verdict.reason}")
        if verdict.action is BounceAction.SUPPRESS:
            extra = {"bounce": {**log, "reason": verdict.reason}}
            self.logger.info("bounce suppressed: sender not authenticated", extra=extra)
            self.metrics.add_metric(name=m.BOUNCES_SUPPRESSED, unit=MetricUnit.Count, value=1)
            return False
        return True

    def _send_with_retries(
        self, request: BounceRequest, log: dict[str, Any], remaining: Callable[[], float] | None
    ) -> BounceOutcome:
        settings = self.settings
        params = request.send_bounce_params(settings.bounce_sender, settings.bounce_sender_arn or None)
        attempt = 0
        while True:
            self._ensure_time(self.pacer.delay_before_next(), remaining, log)
            self.pacer.wait()
            attempt += 1
            try:
                response = self.ses_client.send_bounce(**params)
            except Exception as exc:
                delay = self._backoff_after(exc, attempt, log)
                self._ensure_time(delay, remaining, log)
                extra = {"bounce": {**log, "attempt": attempt, "delay": delay}}
                self.logger.info("SendBounce throttled; backing off", extra=extra)
                self.pacer.sleep(delay)
                continue
            return self._sent(request, response, attempt, log)

    def _backoff_after(self, exc: Exception, attempt: int, log: dict[str, Any]) -> float:
        """The backoff before the next attempt; re-raises what is not throttling, or throttling past the retries."""
        if not is_throttling(exc):
            self.logger.error(
                "SendBounce failed", extra={"bounce": {**log, "error": _error_code(exc), "attempt": attempt}}
            )
            self.metrics.add_metric(name=m.BOUNCE_SEND_ERRORS, unit=MetricUnit.Count, value=1)
            raise exc
        self.metrics.add_metric(name=m.BOUNCE_THROTTLED, unit=MetricUnit.Count, value=1)
        if attempt >= self.settings.max_attempts:
            self.logger.warning(
                "SendBounce still throttled; retrying later", extra={"bounce": {**log, "attempts": attempt}}
            )
            raise BounceRetryLater(f"SendBounce throttled {attempt} times ({_error_code(exc)})") from exc
        return backoff_seconds(attempt, self.settings, self.rand)

    def _sent(self, request: BounceRequest, response: Any, attempt: int, log: dict[str, Any]) -> BounceOutcome:
        outcome = BounceOutcome(
            "sent",
            request.message_id,
            ses_message_id=str(response.get("MessageId", "")),
            attempts=attempt,
            age_seconds=(self.clock() - _aware(request.arrival_time())).total_seconds(),
        )
        sent: dict[str, Any] = {"statuses": [r.status for r in request.recipients], "mail_from": request.mail_from}
        sent |= {"ses_message_id": outcome.ses_message_id, "attempts": attempt}
        self.logger.info("bounce sent", extra={"bounce": {**log, **sent}})
        self.metrics.add_metric(name=m.BOUNCES_SENT, unit=MetricUnit.Count, value=1)
        self.metrics.add_metric(name=m.BOUNCE_DELAY, unit=MetricUnit.Seconds, value=outcome.age_seconds)
        return outcome

    def _ensure_time(self, wait: float, remaining: Callable[[], float] | None, log: dict[str, Any]) -> None:
        """Refuse to start a call that might not finish before the invocation's deadline."""
        if remaining is None:
            return
        left = remaining()
        reserve = self.settings.call_reserve_seconds
        if left - wait < reserve:
            self.logger.warning(
                "not enough time left in this invocation; retrying later", extra={"bounce": {**log, "left": left}}
            )
            self.metrics.add_metric(name=m.BOUNCE_DEFERRED, unit=MetricUnit.Count, value=1)
            raise BounceRetryLater(f"{left:.1f} s left, {wait:.1f} s to wait, {reserve} s needed")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- records
def parse_record_body(body: str, *, logger: Logger, metrics: Metrics, sqs_message_id: str = "") -> BounceRequest:
    """The bounce request in an SQS body; a malformed one is logged, counted and re-raised (-> DLQ)."""
    try:
        return BounceRequest.from_json(body)
    except BounceRequestError as exc:
        logger.error(
            "malformed bounce request; the record fails and ends in the dead-letter queue",
            extra={"sqs_message_id": sqs_message_id, "error": str(exc), "body_prefix": body[:200]},
        )
        metrics.add_metric(name=m.MALFORMED_BOUNCE_REQUESTS, unit=MetricUnit.Count, value=1)
        raise
