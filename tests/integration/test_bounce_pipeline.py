"""The bouncer function against moto server: a real SQS queue with a dead-letter queue, a real
DynamoDB idempotency table, and SES as a botocore ``Stubber`` (moto does not implement send_bounce;
the stubber validates each request against the real SES model).

The handler is ``functions/bouncer/app.py`` imported once with its environment (one cold start);
batches are received from the queue and run as Lambda's SQS event source would run them
(``tests/support/bounce_pipeline.py``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from botocore.stub import Stubber

from devstack import world
from devstack.moto_server import REGION, MotoServer
from ipv6gate.bounce.request import BouncedRecipient, BounceRequest
from tests.support.bounce_pipeline import drain_bounce_queue, load_bouncer_app, run_bouncer_on_queue

pytestmark = pytest.mark.integration

SENDER = "mailer-daemon@gate.test"
IDEMPOTENCY_TABLE = "ipv6gate-idempotency-test"
NO_PTR = "450 4.7.25 Service unavailable, sending IPv6 address [2001:db8:2::25] must have reverse DNS record."
OPTED_OUT = "550 5.2.1 Service unavailable, [optout.test] does not accept email over IPv6."
MAX_RECEIVE = 2


@pytest.fixture(scope="module")
def sqs(moto: MotoServer) -> Any:
    return moto.client("sqs", REGION)


@pytest.fixture(scope="module")
def dynamodb(moto: MotoServer) -> Any:
    ddb = moto.client("dynamodb", REGION)
    ddb.create_table(
        TableName=IDEMPOTENCY_TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_time_to_live(
        TableName=IDEMPOTENCY_TABLE, TimeToLiveSpecification={"AttributeName": "expiration", "Enabled": True}
    )
    return ddb


@pytest.fixture(scope="module")
def app(
    moto: MotoServer, dynamodb: Any, keys: world.Keys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    """The bouncer module after one cold start with the template's kind of environment."""
    zones = world.write_zone_dir(tmp_path_factory.mktemp("bouncer-zones"), keys)
    env = {
        **moto.env(),
        "DNS_ZONE_DIR": str(zones),  # for requests whose sender the bouncer must authenticate
        "BOUNCE_SENDER": SENDER,
        "IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
        "BOUNCE_RATE_PER_SECOND": "5",  # keeps the suite quick; pacing itself is unit-tested in fake time
        "POWERTOOLS_SERVICE_NAME": "ipv6gate-bouncer",
        "POWERTOOLS_METRICS_NAMESPACE": "IPv6GateTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_LAMBDA_FUNCTION_NAME": "ipv6gate-BouncerFunction",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield load_bouncer_app()


class SesStub:
    """The SES client the bouncer uses, stubbed; counts every SendBounce that reached it."""

    def __init__(self, moto: MotoServer) -> None:
        self.client = moto.client("ses", REGION)
        self.stubber = Stubber(self.client)
        self.calls: list[dict[str, Any]] = []
        self.client.meta.events.register("before-parameter-build.ses.SendBounce", self._count)

    def _count(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(params)

    def expect(self, request: BounceRequest, message_id: str = "bounce-1") -> None:
        self.stubber.add_response("send_bounce", {"MessageId": message_id}, request.send_bounce_params(SENDER))

    def throttle(self) -> None:
        self.stubber.add_client_error(
            "send_bounce", service_error_code="Throttling", service_message="Maximum sending rate exceeded."
        )


@pytest.fixture
def ses(app: ModuleType, moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[SesStub]:
    stub = SesStub(moto)
    monkeypatch.setattr(app.bouncer.sender, "ses_client", stub.client)  # the client the cold start built
    with stub.stubber:
        yield stub
        stub.stubber.assert_no_pending_responses()


@pytest.fixture
def queues(sqs: Any) -> tuple[str, str]:
    """A fresh bounce queue and its dead-letter queue (maxReceiveCount 2 to keep the test short)."""
    name = f"bounces-{uuid.uuid4().hex[:8]}"
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE)})
    url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": "360"})[
        "QueueUrl"
    ]
    return url, dlq_url


def bounce_request(*recipients: BouncedRecipient, age: timedelta = timedelta(minutes=5)) -> BounceRequest:
    arrival = (datetime.now(UTC) - age).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return BounceRequest(
        message_id=f"{uuid.uuid4().hex}-000000",
        mail_from="alice@good.test",
        client_ip="2001:db8:2::25",
        arrival=arrival,
        reporting_mta="dns; inbound-smtp.eu-west-1.amazonaws.com",
        recipients=recipients or (BouncedRecipient("bob@tenant.test", "4.7.25", NO_PTR),),
    )


def send(sqs: Any, url: str, body: str) -> str:
    return str(sqs.send_message(QueueUrl=url, MessageBody=body)["MessageId"])


def queue_depth(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def emitted_metrics(text: str) -> dict[str, float]:
    """EMF lines the handler printed (Powertools flushes once per invocation), summed per name."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for metric in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            value = blob[metric["Name"]]
            totals[metric["Name"]] = totals.get(metric["Name"], 0) + (sum(value) if isinstance(value, list) else value)
    return totals


def idempotency_items(dynamodb: Any) -> list[dict[str, Any]]:
    return list(dynamodb.scan(TableName=IDEMPOTENCY_TABLE)["Items"])


# --------------------------------------------------------------------------- tests
def test_one_bounce_however_often_the_request_is_delivered(app, ses, sqs, dynamodb, queues, capsys) -> None:
    url, _ = queues
    app.metrics.clear_metrics()
    capsys.readouterr()
    request = bounce_request()
    body = request.to_json()
    ses.expect(request)
    send(sqs, url, body)
    run = run_bouncer_on_queue(sqs, url, app.lambda_handler)
    assert run is not None and run.error is None
    assert run.response == {"batchItemFailures": []} and run.deleted_ids == [m["MessageId"] for m in run.received]
    assert len(ses.calls) == 1
    params = ses.calls[0]
    assert params["OriginalMessageId"] == request.message_id and params["BounceSender"] == SENDER
    assert params["BouncedRecipientInfoList"][0]["RecipientDsnFields"] == {
        "Action": "failed",
        "Status": "4.7.25",
        "DiagnosticCode": f"smtp; {NO_PTR}",
    }

    # SES retried the gate (the same request queued twice more), or SQS redelivered: no second bounce.
    send(sqs, url, body)
    send(sqs, url, body)
    runs = drain_bounce_queue(sqs, url, app.lambda_handler)
    assert sum(len(r.received) for r in runs) == 2
    assert all(r.error is None and r.failed_ids == [] for r in runs)
    assert len(ses.calls) == 1
    assert queue_depth(sqs, url) == 0
    counts = emitted_metrics(capsys.readouterr().out)
    assert counts["BouncesSent"] == 1 and counts["BounceDuplicatesSkipped"] == 2

    # The record that made that so: one per bounce, COMPLETED, living past the 24 h window.
    key = "ipv6gate-bounce#"
    [item] = [i for i in idempotency_items(dynamodb) if request.message_id in i.get("data", {}).get("S", "")]
    assert item["id"]["S"].startswith(key) and item["status"]["S"] == "COMPLETED"
    assert json.loads(item["data"]["S"])["status"] == "sent"
    assert int(item["expiration"]["N"]) > datetime.now(UTC).timestamp() + 24 * 3600


def test_other_recipients_of_the_same_message_get_their_own_bounce(app, ses, sqs, queues) -> None:
    url, _ = queues
    first = bounce_request(BouncedRecipient("bob@tenant.test", "4.7.25", NO_PTR))
    second = replace(first, recipients=(BouncedRecipient("carol@optout.test", "5.2.1", OPTED_OUT),))
    ses.expect(first, "bounce-a")
    ses.expect(second, "bounce-b")
    send(sqs, url, first.to_json())
    send(sqs, url, second.to_json())
    runs = drain_bounce_queue(sqs, url, app.lambda_handler)
    assert all(r.failed_ids == [] for r in runs)
    assert [c["BouncedRecipientInfoList"][0]["Recipient"] for c in ses.calls] == [
        "bob@tenant.test",
        "carol@optout.test",
    ]


def test_throttling_is_retried_within_the_invocation(app, ses, sqs, queues) -> None:
    url, _ = queues
    request = bounce_request()
    ses.throttle()
    ses.expect(request)
    send(sqs, url, request.to_json())
    run = run_bouncer_on_queue(sqs, url, app.lambda_handler)
    assert run is not None and run.failed_ids == [] and run.error is None
    assert len(ses.calls) == 2  # throttled once, then sent
    assert queue_depth(sqs, url) == 0


def test_a_failed_send_is_redelivered_and_not_counted_as_sent(app, ses, sqs, dynamodb, queues) -> None:
    url, _ = queues
    request = bounce_request()
    ses.stubber.add_client_error("send_bounce", service_error_code="InternalFailure", http_status_code=500)
    ses.expect(request)
    send(sqs, url, request.to_json())
    runs = drain_bounce_queue(sqs, url, app.lambda_handler)
    assert [r.failed_ids != [] for r in runs] == [True, False]  # failed, then redelivered and sent
    assert len(ses.calls) == 2
    # The failure left no idempotency record behind that would have blocked the retry.
    assert [
        json.loads(i["data"]["S"])["status"]
        for i in idempotency_items(dynamodb)
        if request.message_id in i["data"]["S"]
    ] == ["sent"]


def test_expired_request_is_dropped_without_sending(app, ses, sqs, queues) -> None:
    url, dlq = queues
    send(sqs, url, bounce_request(age=timedelta(hours=24, minutes=5)).to_json())
    run = run_bouncer_on_queue(sqs, url, app.lambda_handler)
    assert run is not None and run.failed_ids == [] and run.error is None
    assert ses.calls == []
    assert queue_depth(sqs, url) == 0 and queue_depth(sqs, dlq) == 0


def test_poison_message_is_reported_then_dead_lettered(app, ses, sqs, queues) -> None:
    url, dlq = queues
    good = bounce_request()
    ses.expect(good)
    poison_body = '{"version": 1, "message_id": "x"}'
    good_id = send(sqs, url, good.to_json())
    poison_id = send(sqs, url, poison_body)

    # One batch with both: only the poison record is reported; the good one is sent and deleted.
    run = run_bouncer_on_queue(sqs, url, app.lambda_handler, visibility_timeout=0)
    assert run is not None and run.error is None
    assert sorted(m["MessageId"] for m in run.received) == sorted([good_id, poison_id])
    assert run.response == {"batchItemFailures": [{"itemIdentifier": poison_id}]}
    assert run.deleted_ids == [good_id]
    assert len(ses.calls) == 1

    # Redelivered alone it fails the whole invocation; past maxReceiveCount SQS moves it to the DLQ.
    runs = drain_bounce_queue(sqs, url, app.lambda_handler)
    assert len(runs) == MAX_RECEIVE - 1
    assert all(r.response is None and r.error is not None and r.failed_ids == [poison_id] for r in runs)
    assert queue_depth(sqs, url) == 0
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert [m["Body"] for m in dead] == [poison_body]
    assert len(ses.calls) == 1


def test_gate_to_queue_to_bouncer_end_to_end(app, ses, sqs, queues, make_gate) -> None:
    """A PTR-less sender whose SPF passes: the gate stops the message and queues a bounce, the bouncer
    sends one DSN with 4.7.25; the same SES event delivered twice still gives one bounce."""
    from ipv6gate.aws.sqs import SqsBounceQueue
    from ipv6gate.mail.event import parse_event

    url, _ = queues
    gate = make_gate()
    gate.evaluator.bounces = SqsBounceQueue(sqs, url)
    arrival = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event = world.ses_event(ip=world.NO_PTR_IP, mail_from="alice@noptr.test", message_id=f"{uuid.uuid4().hex}")
    event["Records"][0]["ses"]["mail"]["timestamp"] = arrival

    first = gate.record(gate.evaluate(parse_event(event)))
    assert first.disposition == "STOP_RULE_SET" and first.bounce is not None
    # "defer" when the PTR answer came before SPF's: then the bouncer proves the sender itself.
    assert first.bounce.action.value in ("send", "defer"), first.bounce
    request = first.bounce_request()
    assert request is not None
    ses.expect(request)
    gate.record(gate.evaluate(parse_event(event)))  # SES retried the invocation

    runs = drain_bounce_queue(sqs, url, app.lambda_handler)
    assert sum(len(r.received) for r in runs) == 2 and all(r.error is None for r in runs)
    [params] = ses.calls
    [info] = params["BouncedRecipientInfoList"]
    assert info["Recipient"] == "bob@tenant.test"
    assert info["RecipientDsnFields"]["Status"] == "4.7.25"
    assert info["RecipientDsnFields"]["DiagnosticCode"] == (
        "smtp; 450 4.7.25 Service unavailable, sending IPv6 address [2001:db8:2::25] must have reverse DNS record."
    )
    assert params["MessageDsn"]["ReportingMta"] == "dns; inbound-smtp.eu-west-1.amazonaws.com"
    assert "PTR" in params["Explanation"]
    assert queue_depth(sqs, url) == 0


def test_bouncer_authenticates_a_deferred_request(app, ses, sqs, queues) -> None:
    """The gate decided before SPF finished: the bouncer sends only once SPF proves the sender."""
    url, _ = queues
    proven = replace(bounce_request(), mail_from="alice@noptr.test", authenticate=True, helo="mail.noptr.test")
    unproven = replace(bounce_request(), mail_from="alice@good.test", authenticate=True)
    ses.expect(proven)
    send(sqs, url, proven.to_json())
    send(sqs, url, unproven.to_json())
    runs = drain_bounce_queue(sqs, url, app.lambda_handler)
    assert all(r.error is None and r.failed_ids == [] for r in runs)
    assert [c["OriginalMessageId"] for c in ses.calls] == [proven.message_id]
