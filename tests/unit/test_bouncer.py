"""The bouncer's core in fake time: pacing, throttling backoff, the 24 h window, the exact SES request.

SES is a real botocore client wrapped in ``Stubber``, so every SendBounce request is validated
against the real SES API model (moto does not implement send_bounce).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from ipv6gate.aws.ses_bounces import (
    BounceRetryLater,
    BounceSender,
    Pacer,
    backoff_seconds,
    is_throttling,
    parse_record_body,
)
from ipv6gate.bounce.request import BouncedRecipient, BounceRequest, BounceRequestError
from ipv6gate.settings import BouncerSettings, SettingsError
from tests.support.powertools import emf, lines

ARRIVAL = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
RECEIVER = "inbound-smtp.eu-west-1.amazonaws.com"
SENDER = "bounces@gate.example"
NO_PTR = "450 4.7.25 Service unavailable, sending IPv6 address [2001:db8:2::25] must have reverse DNS record."
NO_AUTH = (
    "450 4.7.26 Service unavailable, message sent over IPv6 [2001:db8:2::25] must pass either SPF or DKIM validation."
)
OPTED_OUT = "550 5.2.1 Service unavailable, [optout.test] does not accept email over IPv6."


class FakeTime:
    """A monotonic clock and a sleep that only advances it (no real sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.slept.append(seconds)
        self.now += seconds

    def wall(self) -> datetime:
        """Wall clock that moves with the fake monotonic clock: one minute after arrival at the start."""
        return ARRIVAL + timedelta(minutes=1, seconds=self.now - 1000.0)


def request(message_id: str = "msg-1", *recipients: BouncedRecipient, arrival: str = "2026-11-27T12:00:00.000Z"):
    return BounceRequest(
        message_id=message_id,
        mail_from="alice@good.test",
        client_ip="2001:db8:2::25",
        arrival=arrival,
        reporting_mta=f"dns; {RECEIVER}",
        recipients=recipients or (BouncedRecipient("bob@tenant.test", "4.7.25", NO_PTR),),
    )


def expected_params(req: BounceRequest, **extra: Any) -> dict[str, Any]:
    """Written out by hand (not via send_bounce_params) so the wire shape is pinned here."""
    return {
        "OriginalMessageId": req.message_id,
        "BounceSender": SENDER,
        "Explanation": req.explanation(),
        "MessageDsn": {"ReportingMta": f"dns; {RECEIVER}", "ArrivalDate": ARRIVAL},
        "BouncedRecipientInfoList": [
            {
                "Recipient": r.recipient,
                "RecipientDsnFields": {"Action": "failed", "Status": r.status, "DiagnosticCode": f"smtp; {r.reply}"},
            }
            for r in req.recipients
        ],
        **extra,
    }


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def settings() -> BouncerSettings:
    return BouncerSettings(bounce_sender=SENDER, idempotency_table="idem")


@pytest.fixture
def pacer(clock: FakeTime) -> Pacer:
    return Pacer(1.0, clock=clock.monotonic, sleep=clock.sleep)


@pytest.fixture
def ses() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("ses", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def throttle(stubber: Stubber, code: str = "Throttling", status: int = 400) -> None:
    stubber.add_client_error(
        "send_bounce",
        service_error_code=code,
        service_message="Maximum sending rate exceeded.",
        http_status_code=status,
    )


# --------------------------------------------------------------------------- pacing
def test_pacer_spaces_calls_by_one_second_of_fake_time(clock: FakeTime, pacer: Pacer) -> None:
    starts = []
    for _ in range(5):
        pacer.wait()
        starts.append(clock.now)
    assert [b - a for a, b in itertools.pairwise(starts)] == [1.0] * 4
    assert clock.slept == [1.0] * 4  # only fake time passed


def test_pacer_does_not_wait_when_calls_are_already_spaced(clock: FakeTime, pacer: Pacer) -> None:
    assert pacer.wait() == 0.0
    clock.now += 3.0
    assert pacer.wait() == 0.0 and clock.slept == []
    clock.now += 0.25
    assert pacer.wait() == pytest.approx(0.75)


def test_pacer_rate_above_one(clock: FakeTime) -> None:
    pacer = Pacer(4.0, clock=clock.monotonic, sleep=clock.sleep)
    for _ in range(3):
        pacer.wait()
    assert clock.slept == [0.25, 0.25]
    with pytest.raises(ValueError, match="positive"):
        Pacer(0)


def test_the_sender_paces_requests_through_ses(
    clock: FakeTime, pacer: Pacer, settings: BouncerSettings, ses, powertools
) -> None:
    client, stubber = ses
    logger, metrics = powertools
    called_at: list[float] = []
    client.meta.events.register("before-parameter-build.ses.SendBounce", lambda **_: called_at.append(clock.now))
    reqs = [request(f"msg-{i}") for i in range(4)]
    for i, req in enumerate(reqs):
        stubber.add_response("send_bounce", {"MessageId": f"bounce-{i}"}, expected_params(req))
    outcomes = [BounceSender(client, settings, pacer, clock.wall, logger, metrics).send(r) for r in reqs]
    assert [o.ses_message_id for o in outcomes] == ["bounce-0", "bounce-1", "bounce-2", "bounce-3"]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(called_at)), called_at
    assert len(called_at) == 4
    assert emf(metrics)["BouncesSent"] == 4


# --------------------------------------------------------------------------- the exact request
@pytest.mark.parametrize(
    "recipients",
    [
        (BouncedRecipient("bob@tenant.test", "4.7.25", NO_PTR),),
        (BouncedRecipient("bob@tenant.test", "4.7.26", NO_AUTH),),
        (BouncedRecipient("carol@optout.test", "5.2.1", OPTED_OUT),),
        (
            BouncedRecipient("bob@tenant.test", "4.7.26", NO_AUTH),
            BouncedRecipient("carol@optout.test", "5.2.1", OPTED_OUT),
        ),
    ],
    ids=["4.7.25", "4.7.26", "5.2.1", "mixed"],
)
def test_send_bounce_request_matches_the_ses_model(
    recipients, clock: FakeTime, pacer: Pacer, settings: BouncerSettings, ses, powertools, stream
) -> None:
    client, stubber = ses
    logger, metrics = powertools
    req = request("0000014a-f4d4-4f89-93e4-35b6fc1d2d61-000000", *recipients)
    stubber.add_response("send_bounce", {"MessageId": "bounce-1"}, expected_params(req))
    outcome = BounceSender(client, settings, pacer, clock.wall, logger, metrics).send(req)
    assert outcome.status == "sent" and outcome.attempts == 1 and outcome.ses_message_id == "bounce-1"
    assert outcome.age_seconds == 60.0
    [line] = lines(stream)
    assert line["message"] == "bounce sent" and line["bounce"]["statuses"] == [r.status for r in recipients]
    assert emf(metrics)["BounceDelay"] == 60.0


def test_exact_dsn_fields_for_no_ptr(clock: FakeTime, pacer: Pacer, settings: BouncerSettings, ses, powertools) -> None:
    """The literal strings, once more, without any helper in between."""
    client, stubber = ses
    logger, metrics = powertools
    req = request("msg-ptr")
    want = {
        "OriginalMessageId": "msg-ptr",
        "BounceSender": "bounces@gate.example",
        "Explanation": req.explanation(),
        "MessageDsn": {"ReportingMta": "dns; inbound-smtp.eu-west-1.amazonaws.com", "ArrivalDate": ARRIVAL},
        "BouncedRecipientInfoList": [
            {
                "Recipient": "bob@tenant.test",
                "RecipientDsnFields": {
                    "Action": "failed",
                    "Status": "4.7.25",
                    "DiagnosticCode": "smtp; 450 4.7.25 Service unavailable, sending IPv6 address "
                    "[2001:db8:2::25] must have reverse DNS record.",
                },
            }
        ],
    }
    stubber.add_response("send_bounce", {"MessageId": "b"}, want)
    BounceSender(client, settings, pacer, clock.wall, logger, metrics).send(req)


def test_bounce_sender_arn_is_passed_for_sending_authorization(clock: FakeTime, pacer: Pacer, ses, powertools) -> None:
    client, stubber = ses
    logger, metrics = powertools
    arn = "arn:aws:ses:eu-west-1:210987654321:identity/gate.example"
    settings = BouncerSettings(bounce_sender=SENDER, bounce_sender_arn=arn, idempotency_table="idem")
    req = request()
    stubber.add_response("send_bounce", {"MessageId": "b"}, expected_params(req, BounceSenderArn=arn))
    BounceSender(client, settings, pacer, clock.wall, logger, metrics).send(req)


# --------------------------------------------------------------------------- throttling and errors
@pytest.mark.parametrize(
    ("code", "status"),
    [("Throttling", 400), ("ThrottlingException", 400), ("TooManyRequestsException", 429), ("Whatever", 503)],
)
def test_throttling_is_retried_with_backoff_then_sent(
    code, status, clock: FakeTime, pacer: Pacer, settings: BouncerSettings, ses, powertools
) -> None:
    client, stubber = ses
    logger, metrics = powertools
    req = request()
    throttle(stubber, code, status)
    throttle(stubber, code, status)
    stubber.add_response("send_bounce", {"MessageId": "bounce-1"}, expected_params(req))
    outcome = BounceSender(client, settings, pacer, clock.wall, logger, metrics, rand=lambda: 1.0).send(req)
    assert outcome.status == "sent" and outcome.attempts == 3
    assert clock.slept == [1.0, 2.0]  # backoff 1 s then 2 s (jitter at its top); the pacer had nothing to add
    counts = emf(metrics)
    assert counts["BounceThrottled"] == 2 and counts["BouncesSent"] == 1


def test_backoff_is_exponential_capped_and_jittered(settings: BouncerSettings) -> None:
    assert [backoff_seconds(n, settings, lambda: 1.0) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert [backoff_seconds(n, settings, lambda: 0.0) for n in range(1, 5)] == [0.5, 1, 2, 4]


def test_throttling_beyond_max_attempts_retries_later(
    clock: FakeTime, pacer: Pacer, settings: BouncerSettings, ses, powertools
) -> None:
    client, stubber = ses
    logger, metrics = powertools
    for _ in range(settings.max_attempts):
        throttle(stubber)
    with pytest.raises(BounceRetryLater, match="throttled 5 times"):
        BounceSender(client, settings, pacer, clock.wall, logger, metrics, rand=lambda: 0.0).send(request())
    assert emf(metrics)["BounceThrottled"] == 5


@pytest.mark.parametrize(
    ("throttled", "seconds_left"),
    [
        # Throttled once, then enough time for one call (15 s reserve), not for a 1 s backoff on top.
        pytest.param(True, 15.5, id="throttled-then-out-of-time"),
        # No response queued: a call would fail the stubber.
        pytest.param(False, 5.0, id="no-time-for-the-first-call"),
    ],
)
def test_no_call_starts_without_time_for_it(
    throttled: bool, seconds_left: float, clock: FakeTime, pacer: Pacer, settings: BouncerSettings, ses, powertools
) -> None:
    client, stubber = ses
    logger, metrics = powertools
    deadline = clock.now + seconds_left
    if throttled:
        throttle(stubber)
    with pytest.raises(BounceRetryLater, match="left"):
        BounceSender(client, settings, pacer, clock.wall, logger, metrics, rand=lambda: 1.0).send(
            request(), remaining_seconds=lambda: deadline - clock.now
        )
    assert clock.slept == []
    assert emf(metrics)["BounceDeferred"] == 1


@pytest.mark.parametrize("code", ["MessageRejected", "InvalidParameterValue", "AccessDenied"])
def test_other_errors_raise_for_redelivery(
    code, clock: FakeTime, pacer: Pacer, settings: BouncerSettings, ses, powertools, stream
) -> None:
    client, stubber = ses
    logger, metrics = powertools
    stubber.add_client_error("send_bounce", service_error_code=code, service_message="no", http_status_code=400)
    with pytest.raises(ClientError) as info:
        BounceSender(client, settings, pacer, clock.wall, logger, metrics).send(request())
    assert info.value.response["Error"]["Code"] == code
    assert clock.slept == []  # not retried here: SQS redelivers, then the DLQ
    [line] = lines(stream)
    assert line["level"] == "ERROR" and line["bounce"]["error"] == code
    assert emf(metrics)["BounceSendErrors"] == 1


def test_is_throttling() -> None:
    def error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "SendBounce")

    assert is_throttling(error("Throttling", 400))
    assert is_throttling(error("ServiceUnavailable", 503))
    assert is_throttling(error("", 429))
    assert not is_throttling(error("MessageRejected", 400))
    assert not is_throttling(error("InternalFailure", 500))
    assert not is_throttling(ValueError("Throttling"))


# --------------------------------------------------------------------------- the 24 h window
def test_request_older_than_the_window_is_dropped_not_sent(
    clock: FakeTime, pacer: Pacer, settings: BouncerSettings, ses, powertools, stream
) -> None:
    client, _ = ses  # nothing queued: any SendBounce would raise
    logger, metrics = powertools
    old = request(arrival="2026-11-26T11:59:00Z")  # 24 h 1 min before clock.wall()
    outcome = BounceSender(client, settings, pacer, clock.wall, logger, metrics).send(old)
    assert outcome.status == "expired" and outcome.attempts == 0
    [line] = lines(stream)
    assert line["level"] == "WARNING" and "expired" in line["message"]
    assert line["bounce"]["message_id"] == "msg-1" and line["bounce"]["max_age_hours"] == 24
    assert emf(metrics) == {"BouncesExpired": 1}
    assert clock.slept == []


def test_window_edge_and_setting(clock: FakeTime, pacer: Pacer, ses, powertools) -> None:
    client, stubber = ses
    logger, metrics = powertools
    just_in_time = request(arrival="2026-11-26T12:01:00+00:00")  # exactly 24 h old
    stubber.add_response("send_bounce", {"MessageId": "b"}, None)
    settings = BouncerSettings(bounce_sender=SENDER, idempotency_table="idem")
    assert BounceSender(client, settings, pacer, clock.wall, logger, metrics).send(just_in_time).status == "sent"
    short = BouncerSettings(bounce_sender=SENDER, idempotency_table="idem", max_age_hours=1)
    two_hours = request(arrival="2026-11-27T10:00:00")  # naive: read as UTC
    assert BounceSender(client, short, pacer, clock.wall, logger, metrics).send(two_hours).status == "expired"


# --------------------------------------------------------------------------- record bodies
def test_malformed_body_is_logged_counted_and_raised(powertools, stream) -> None:
    logger, metrics = powertools
    with pytest.raises(BounceRequestError):
        parse_record_body("{not json", logger=logger, metrics=metrics, sqs_message_id="sqs-1")
    [line] = lines(stream)
    assert line["level"] == "ERROR" and line["sqs_message_id"] == "sqs-1"
    assert emf(metrics) == {"MalformedBounceRequests": 1}
    req = request()
    assert parse_record_body(req.to_json(), logger=logger, metrics=metrics) == req


# --------------------------------------------------------------------------- settings
GOOD_ENV = {"BOUNCE_SENDER": "bounces@gate.example", "IDEMPOTENCY_TABLE": "idem"}


def test_settings_defaults() -> None:
    s = BouncerSettings.from_env(GOOD_ENV)
    assert s == BouncerSettings(bounce_sender="bounces@gate.example", idempotency_table="idem")
    assert s.max_age_hours == 24 and s.rate_per_second == 1.0 and s.bounce_sender_arn == ""
    assert s.idempotency_expiry_seconds >= 24 * 3600 + 3600


def test_settings_values() -> None:
    arn = "arn:aws:ses:eu-west-1:123456789012:identity/gate.example"
    s = BouncerSettings.from_env(
        {**GOOD_ENV, "BOUNCE_SENDER_ARN": arn, "BOUNCE_MAX_AGE_HOURS": "6", "BOUNCE_RATE_PER_SECOND": "0.5"}
    )
    assert (s.bounce_sender_arn, s.max_age_hours, s.rate_per_second) == (arn, 6, 0.5)
    assert s.max_age == timedelta(hours=6)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"IDEMPOTENCY_TABLE": "idem"}, "BOUNCE_SENDER: not set"),
        ({**GOOD_ENV, "BOUNCE_SENDER": "gate.example"}, "BOUNCE_SENDER: 'gate.example' is not an email address"),
        ({**GOOD_ENV, "BOUNCE_SENDER": "Bounces <b@gate.example>"}, "BOUNCE_SENDER:"),
        ({**GOOD_ENV, "BOUNCE_SENDER": "b@localhost"}, "BOUNCE_SENDER:"),
        ({"BOUNCE_SENDER": "b@gate.example"}, "IDEMPOTENCY_TABLE: not set"),
        ({**GOOD_ENV, "BOUNCE_SENDER_ARN": "gate.example"}, "BOUNCE_SENDER_ARN: 'gate.example' is not an SES identity"),
        ({**GOOD_ENV, "BOUNCE_MAX_AGE_HOURS": "25"}, "BOUNCE_MAX_AGE_HOURS: 25 is outside 1..24"),
        ({**GOOD_ENV, "BOUNCE_MAX_AGE_HOURS": "1.5"}, "BOUNCE_MAX_AGE_HOURS: '1.5' is not a whole number"),
        ({**GOOD_ENV, "BOUNCE_RATE_PER_SECOND": "0"}, "BOUNCE_RATE_PER_SECOND: 0.0 is outside 0.01..10.0"),
        ({**GOOD_ENV, "BOUNCE_RATE_PER_SECOND": "fast"}, "BOUNCE_RATE_PER_SECOND: 'fast' is not a number"),
        ({**GOOD_ENV, "BOUNCE_RATE_PER_SECOND": "nan"}, "BOUNCE_RATE_PER_SECOND: nan is outside"),
    ],
)
def test_settings_errors_are_one_line_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        BouncerSettings.from_env(env)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
