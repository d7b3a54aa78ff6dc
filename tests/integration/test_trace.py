"""The decision trace in a real local DynamoDB (moto server): written by Gate.act, read by `ipv6gate trace`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devstack import world
from devstack.moto_server import MotoServer, aws_env
from devstack.moto_stack import create_template_table
from ipv6gate.aws.trace import DynamoTraceStore
from ipv6gate.evaluation.gate import Gate
from ipv6gate.mail.event import parse_event

pytestmark = pytest.mark.integration
TABLE = "trace-test"
CLI = str(Path(sys.executable).with_name("ipv6gate"))
T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def stack(moto: MotoServer) -> tuple[dict[str, str], Any]:
    env = {**os.environ, **aws_env(moto.endpoint_url), "TRACE_TABLE": TABLE}
    client = moto.client("dynamodb")
    create_template_table(client, "TraceTable", TABLE)
    return env, client


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "trace", *args], check=False, env=env, capture_output=True, text=True, timeout=60)


def test_decisions_are_recorded_and_queried_newest_first(
    stack: tuple[dict[str, str], Any], make_gate: Callable[..., Gate]
) -> None:
    env, client = stack
    gate = make_gate()
    gate.recorder.trace = DynamoTraceStore(client, TABLE, ttl_days=30)
    events = [
        ("m-old", world.NO_PTR_IP, ("a@tenant.test",)),
        ("m-mid", world.GOOD_IP, ("a@tenant.test", "b@optout.test")),
        ("m-new", world.NO_PTR_IP, ("c@optout.test",)),
    ]
    for minute, (message_id, ip, rcpts) in enumerate(events):
        gate.recorder.now = lambda minute=minute: T0 + timedelta(minutes=minute)  # type: ignore[misc]
        gate.record(gate.evaluate(parse_event(world.ses_event(ip=ip, recipients=rcpts, message_id=message_id))))

    one = cli(env, "m-old")
    assert one.returncode == 0, one.stderr
    record = json.loads(one.stdout)
    assert record["message_id"] == "m-old" and record["decided_at"].startswith("2026-11-27T12:00:00")
    assert record["recipients"][0]["reply"].startswith("450 4.7.25")
    assert record["checks"]["iprev"]["result"] == "permerror"

    by_ip = [json.loads(line) for line in cli(env, "--ip", "2001:DB8:2:0::25").stdout.splitlines()]
    assert [r["message_id"] for r in by_ip] == ["m-new", "m-old"]
    by_domain = [json.loads(line) for line in cli(env, "--domain", "OPTOUT.test").stdout.splitlines()]
    assert [r["message_id"] for r in by_domain] == ["m-new", "m-mid"]
    assert by_domain[1]["replies"][1].startswith("550 5.2.1")
    by_sender = cli(env, "--sender", "Alice@Good.test", "--limit", "1")
    assert [json.loads(line)["message_id"] for line in by_sender.stdout.splitlines()] == ["m-new"]

    item = client.get_item(TableName=TABLE, Key={"pk": {"S": "msg#m-old"}, "sk": {"S": "decision"}})["Item"]
    assert int(item["expires_at"]["N"]) == int((T0 + timedelta(days=30)).timestamp())


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("no-such-id",), 4, "no recorded decision"),
        (("--ip", "not-an-ip"), 1, "--ip 'not-an-ip'"),
        ((), 2, "give a MESSAGE_ID"),
        (("m", "--ip", "2001:db8::1"), 2, "MESSAGE_ID and --ip are exclusive"),
        (("m", "--domain", "example.com"), 2, "MESSAGE_ID and --domain are exclusive"),
        (("--ip", "192.0.2.25"), 1, "IPv4 mail is never recorded"),
        (("--ip", "::ffff:192.0.2.25"), 1, "': 192.0.2.25 is IPv4, and IPv4 mail is never recorded"),
        (("--ip", "2001:db8::1", "--domain", "x.test"), 2, "not allowed with argument"),
        (("--limit", "0", "--ip", "2001:db8::1"), 1, "argument --limit: 0 is outside 1..1000"),
    ],
)
def test_bad_trace_queries(stack: tuple[dict[str, str], Any], args: tuple[str, ...], code: int, message: str) -> None:
    out = cli(stack[0], *args)
    assert out.returncode == code and message in out.stderr and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("ipv6gate trace: ")


@pytest.mark.parametrize("args", [("--ip", "2001:db8::1"), ("some-id",)])
def test_no_aws_region_is_one_line(stack: tuple[dict[str, str], Any], args: tuple[str, ...]) -> None:
    env = {k: v for k, v in stack[0].items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    out = cli({**env, "AWS_CONFIG_FILE": "/nonexistent"}, *args)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("ipv6gate trace: configuration: no AWS region: set AWS_REGION or AWS_DEFAULT_REGION")
    assert len(out.stderr.splitlines()) == 1


def test_aws_region_alone_is_enough(stack: tuple[dict[str, str], Any]) -> None:
    """boto3 reads AWS_DEFAULT_REGION only; the CLI takes AWS_REGION too (Lambda's, and what it says to set)."""
    env = {k: v for k, v in stack[0].items() if k != "AWS_DEFAULT_REGION"}
    out = cli({**env, "AWS_CONFIG_FILE": "/nonexistent"}, "no-such-id")
    assert out.returncode == 4 and "no recorded decision" in out.stderr


def test_missing_table_is_reported(stack: tuple[dict[str, str], Any]) -> None:
    out = cli({**stack[0], "TRACE_TABLE": "nope"}, "--ip", "2001:db8::1")
    assert out.returncode == 3 and "ResourceNotFoundException" in out.stderr


def test_the_start_time_probe_writes_nothing_and_names_a_missing_table(stack: tuple[dict[str, str], Any]) -> None:
    from ipv6gate.ports import TraceError

    _, client = stack
    before = client.scan(TableName=TABLE)["Items"]
    DynamoTraceStore(client, TABLE, ttl_days=30).probe()
    assert client.scan(TableName=TABLE)["Items"] == before  # a deletion of a key that cannot exist
    with pytest.raises(TraceError, match="no-such-trace: ResourceNotFoundException"):
        DynamoTraceStore(client, "no-such-trace", ttl_days=30).probe()
