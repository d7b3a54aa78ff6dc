"""AWS faults against moto server (and a closed port for "unreachable"): each has a defined outcome,
no message is stopped without a record, and no mail is lost (see README "Failure behaviour")."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from devstack import world
from devstack.moto_server import MotoServer
from ipv6gate.aws.dynamodb import DynamoTenantDirectory
from ipv6gate.aws.s3 import S3MessageStore
from ipv6gate.aws.sqs import SqsBounceQueue
from ipv6gate.aws.trace import DynamoTraceStore
from ipv6gate.evaluation.gate import Gate
from ipv6gate.mail.event import parse_event
from ipv6gate.ports import MessageStoreError, TenantLookupError

pytestmark = pytest.mark.integration
MakeGate = Callable[..., Gate]


def closed_port_client(service: str) -> Any:
    with socket.socket() as probe:  # bound then closed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    make: Any = boto3.client
    return make(
        service,
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 2, "mode": "standard"}),
    )


def test_dynamodb_unreachable_fails_open_with_a_note(make_gate: MakeGate) -> None:
    gate = make_gate()
    gate.evaluator.tenants = DynamoTenantDirectory(closed_port_client("dynamodb"), "tenants")
    with pytest.raises(TenantLookupError, match="Could not connect to the endpoint URL"):
        gate.evaluator.tenants.get_many(["tenant.test"])
    d = gate.evaluate(parse_event(world.ses_event(ip=world.NO_PTR_IP)))
    assert d.disposition == "CONTINUE" and d.verdicts[0].verdict.value == "accept"
    assert any("tenant lookup failed" in n for n in d.notes)


def test_dynamodb_throttled_fails_open_with_a_note(make_gate: MakeGate, moto: MotoServer) -> None:
    client = moto.client("dynamodb")
    stub = Stubber(client)
    for _ in range(2):
        stub.add_client_error("batch_get_item", "ProvisionedThroughputExceededException", http_status_code=400)
    gate = make_gate()
    gate.evaluator.tenants = DynamoTenantDirectory(client, "tenants")
    with stub:
        d = gate.evaluate(parse_event(world.ses_event(ip=world.NO_PTR_IP)))
        assert d.verdicts[0].verdict.value == "accept"
        assert any("ProvisionedThroughputExceeded" in n for n in d.notes)
        with pytest.raises(TenantLookupError):
            gate.evaluator.tenants.get_many(["tenant.test"])


@pytest.mark.parametrize("fault", ["missing-object", "missing-bucket", "unreachable"])
def test_s3_faults_make_dkim_temperror_never_a_rejection(
    make_gate: MakeGate, moto: MotoServer, keys: world.Keys, fault: str
) -> None:
    s3 = moto.client("s3")
    if "faults-messages" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket="faults-messages", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    client = closed_port_client("s3") if fault == "unreachable" else s3
    bucket = "no-such-bucket" if fault == "missing-bucket" else "faults-messages"
    store = S3MessageStore(client, bucket, "inbound/")
    with pytest.raises(MessageStoreError) as info:
        store.open("nope", 1024).read()
    assert info.value.missing is (fault == "missing-object")
    gate = make_gate()
    gate.messages = store
    raw = world.sign(world.message(), keys)
    d = gate.evaluate(parse_event(world.ses_event(ip=world.OTHER_IP, raw=raw)))  # DKIM would decide
    assert d.checks.dkim.result.value == "temperror" and "raw message unavailable" in d.checks.dkim.reason
    assert d.verdicts[0].verdict.value == "accept"


def test_sqs_send_failing_lets_the_message_through(make_gate: MakeGate, moto: MotoServer) -> None:
    gate = make_gate(bounce_mode="always")
    sqs = moto.client("sqs")
    gate.evaluator.bounces = SqsBounceQueue(sqs, "https://sqs.eu-west-1.amazonaws.com/123456789012/no-such-queue")
    d = gate.record(gate.evaluate(parse_event(world.ses_event(ip=world.NO_PTR_IP))))
    assert d.disposition == "CONTINUE"
    assert any("bounce could not be queued" in n for n in d.notes)


def test_trace_write_failing_changes_nothing_but_a_note(make_gate: MakeGate, moto: MotoServer) -> None:
    gate = make_gate()
    gate.recorder.trace = DynamoTraceStore(moto.client("dynamodb"), "no-such-trace-table", ttl_days=30)
    d = gate.record(gate.evaluate(parse_event(world.ses_event(ip=world.NO_PTR_IP))))
    assert d.disposition == "STOP_RULE_SET"
    assert any("not recorded in the trace" in n and "ResourceNotFoundException" in n for n in d.notes)
