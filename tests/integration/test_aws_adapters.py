"""The DynamoDB and S3 adapters against moto server, and the ``ipv6gate`` CLI end to end (moto + Knot)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack import world
from devstack.knot import KnotServer
from devstack.moto_server import REGION, MotoServer, aws_env
from ipv6gate.aws.dynamodb import DynamoTenantDirectory
from ipv6gate.aws.s3 import S3MessageStore
from ipv6gate.checks.results import Result
from ipv6gate.decision.rule import Disposition
from ipv6gate.decision.tenants import Mode, Tenant
from ipv6gate.mail.event import parse_event
from ipv6gate.ports import MessageStoreError, TenantLookupError
from ipv6gate.settings import Settings
from ipv6gate.wiring import aws_client, build_gate

pytestmark = pytest.mark.integration

TABLE = "ipv6gate-tenants"
BUCKET = "ipv6gate-mail"
PREFIX = "inbound/"
CLI = Path(sys.executable).with_name("ipv6gate")


@pytest.fixture(scope="module")
def aws_state(moto: MotoServer) -> Iterator[None]:
    """The table and bucket, created once with explicitly configured clients."""
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    ddb = session.client("dynamodb", endpoint_url=moto.endpoint_url)
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "domain", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "domain", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    items: list[dict[str, Any]] = [
        {"domain": {"S": "tenant.test"}, "ipv6_inbound": {"BOOL": True}},
        {"domain": {"S": "optout.test"}, "ipv6_inbound": {"BOOL": False}, "mode": {"S": "enforce"}},
        {
            "domain": {"S": "watch.test"},
            "ipv6_inbound": {"BOOL": True},
            "mode": {"S": "monitor"},
            "partner_prefixes": {"SS": ["2001:db8:10::/48", "2001:db8:11::/48"]},
        },
        {"domain": {"S": "bad.test"}, "ipv6_inbound": {"BOOL": True}, "mode": {"S": "sometimes"}},
    ]
    for item in items:
        ddb.put_item(TableName=TABLE, Item=item)
    s3 = session.client("s3", endpoint_url=moto.endpoint_url)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    yield


@pytest.fixture
def aws(moto: MotoServer, aws_state: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment the function has: boto3 finds moto through AWS_ENDPOINT_URL alone."""
    env = aws_env(moto.endpoint_url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # no session cached from before the env
    return env


def put_message(message_id: str, raw: bytes) -> None:
    aws_client("s3").put_object(Bucket=BUCKET, Key=f"{PREFIX}{message_id}", Body=raw)


def signed_dkim_only_event(keys: world.Keys, message_id: str) -> tuple[dict[str, Any], bytes]:
    """From OTHER_IP (PTR ok, in no SPF record), signed by good.test: only DKIM can pass."""
    raw = world.sign(world.message(), keys)
    event = world.ses_event(ip=world.OTHER_IP, helo="mail.other.test", raw=raw, message_id=message_id)
    return event, raw


# -- DynamoDB ----------------------------------------------------------------------------------------


def test_tenants_from_dynamodb(aws: dict[str, str]) -> None:
    directory = DynamoTenantDirectory(aws_client("dynamodb"), TABLE)
    found = directory.get_many(["tenant.test", "watch.test", "optout.test", "unknown.test", "tenant.test"])

    assert set(found) == {"tenant.test", "watch.test", "optout.test"}
    assert found["tenant.test"] == Tenant("tenant.test", ipv6_inbound=True, mode=Mode.ENFORCE)
    assert found["optout.test"] == Tenant("optout.test", ipv6_inbound=False)
    watch = found["watch.test"]
    assert (watch.ipv6_inbound, watch.mode) == (True, Mode.MONITOR)
    assert set(watch.partner_prefixes) == {
        ipaddress.IPv6Network("2001:db8:10::/48"),
        ipaddress.IPv6Network("2001:db8:11::/48"),
    }
    assert watch.is_partner(ipaddress.IPv6Address("2001:db8:11::1"))
    assert directory.get_many([]) == {}
    assert directory.get_many(["unknown.test"]) == {}


def test_tenant_lookup_batches_over_100_keys(aws: dict[str, str]) -> None:
    wanted = [f"nobody{i}.test" for i in range(150)] + ["watch.test"]
    found = DynamoTenantDirectory(aws_client("dynamodb"), TABLE).get_many(wanted)
    assert set(found) == {"watch.test"}


def test_missing_table_is_tenant_lookup_error(aws: dict[str, str]) -> None:
    with pytest.raises(TenantLookupError, match="no-such-table: ResourceNotFoundException"):
        DynamoTenantDirectory(aws_client("dynamodb"), "no-such-table").get_many(["tenant.test"])


def test_the_start_time_probe_reads_the_table_or_names_what_is_wrong(aws: dict[str, str]) -> None:
    DynamoTenantDirectory(aws_client("dynamodb"), TABLE).probe()  # the table is there: nothing raised
    with pytest.raises(TenantLookupError, match="no-such-table: ResourceNotFoundException"):
        DynamoTenantDirectory(aws_client("dynamodb"), "no-such-table").probe()


def test_malformed_item_is_tenant_lookup_error_for_its_domain_only(aws: dict[str, str]) -> None:
    with pytest.raises(TenantLookupError, match=r"malformed tenant item: .*'sometimes'") as caught:
        DynamoTenantDirectory(aws_client("dynamodb"), TABLE).get_many(["bad.test", "tenant.test", "nobody.test"])
    assert caught.value.domains == ("bad.test",) and set(caught.value.found) == {"tenant.test"}


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"ipv6_inbound": {"S": "yes"}}, "ipv6_inbound must be true or false, not 'yes'"),
        (
            {"ipv6_inbound": {"N": "1"}},
            "ipv6_inbound must be true or false, not 1",
        ),  # a number, read as one (not the string '1')
        ({"ipv6_inbound": {"NULL": True}}, "ipv6_inbound must be true or false, not None"),
        (
            {"ipv6_inbound": {"BOOL": True}, "partner_prefixes": {"S": "2001:db8::/32"}},
            "partner_prefixes must be a list",
        ),
        ({"ipv6_inbound": {"BOOL": True}, "ipv6_inbond": {"BOOL": True}}, "unknown field 'ipv6_inbond'"),
    ],
)
def test_a_hand_written_item_fails_the_gate_open_for_that_domain_only(
    aws: dict[str, str], knot: KnotServer, attributes: dict[str, Any], message: str
) -> None:
    aws_client("dynamodb").put_item(TableName=TABLE, Item={"domain": {"S": "hand.test"}, **attributes})
    settings = Settings.from_env({**aws, "TENANTS_TABLE": TABLE, "DNS_SERVERS": knot.servers_env})
    gate = build_gate(settings)
    # No PTR: 4.7.25 for the opted-in tenant.test; hand.test's item cannot be read, so it fails open.
    event = world.ses_event(ip=world.NO_PTR_IP, recipients=("a@tenant.test", "b@hand.test"))
    decision = gate.evaluate(parse_event(event))
    assert [(v.verdict.value, v.reply.status if v.reply else None) for v in decision.verdicts] == [
        ("reject", "4.7.25"),
        ("accept", None),
    ]
    assert decision.faults == ("tenant_lookup",) and message in decision.notes[0]
    assert decision.notes[0].startswith("tenant lookup failed, recipients at hand.test accepted")


def test_gate_fails_open_when_the_table_is_missing(aws: dict[str, str], knot: KnotServer) -> None:
    settings = Settings.from_env({**aws, "TENANTS_TABLE": "no-such-table", "DNS_SERVERS": knot.servers_env})
    gate = build_gate(settings)
    # Without PTR this would be a 4.7.25 rejection for the opted-in tenant.test.
    decision = gate.evaluate(parse_event(world.ses_event(ip=world.NO_PTR_IP)))

    assert [v.verdict.value for v in decision.verdicts] == ["accept"]
    assert decision.verdicts[0].reply is None
    assert decision.disposition is Disposition.CONTINUE
    assert len(decision.notes) == 1
    assert "tenant lookup failed" in decision.notes[0]
    assert "no-such-table: ResourceNotFoundException" in decision.notes[0]


# -- S3 ----------------------------------------------------------------------------------------------


def test_s3_fetch(aws: dict[str, str]) -> None:
    raw = world.message(body="fetched from s3\n")
    put_message("msg-fetch", raw)
    aws_client("s3").put_object(Bucket=BUCKET, Key="msg-fetch", Body=b"wrong: no prefix")
    store = S3MessageStore(aws_client("s3"), BUCKET, PREFIX)

    assert store.open("msg-fetch", 1024 * 1024).read() == raw
    assert store.open("msg-fetch", len(raw)).read() == raw  # exactly at the limit is fine
    assert store.location("msg-fetch") == f"s3://{BUCKET}/{PREFIX}msg-fetch"


def test_s3_missing_key(aws: dict[str, str]) -> None:
    store = S3MessageStore(aws_client("s3"), BUCKET, PREFIX)
    with pytest.raises(MessageStoreError, match="NoSuchKey") as info:
        store.open("never-stored", 1024 * 1024).read()
    assert info.value.missing is True
    assert f"s3://{BUCKET}/{PREFIX}never-stored" in str(info.value)


def test_s3_missing_bucket_is_not_a_missing_message(aws: dict[str, str]) -> None:
    with pytest.raises(MessageStoreError, match="NoSuchBucket") as info:
        S3MessageStore(aws_client("s3"), "no-such-bucket", PREFIX).open("x", 1024).read()
    assert info.value.missing is False


def test_s3_refuses_an_object_over_max_bytes(aws: dict[str, str]) -> None:
    raw = world.message(body="x" * 5000 + "\n")
    put_message("msg-big", raw)
    with pytest.raises(MessageStoreError, match="over the 4096 limit") as info:
        S3MessageStore(aws_client("s3"), BUCKET, PREFIX).open("msg-big", 4096).read()
    assert info.value.missing is False


def test_gate_fetches_the_message_from_s3_for_dkim(aws: dict[str, str], knot: KnotServer, keys: world.Keys) -> None:
    env = {
        **aws,
        "TENANTS_TABLE": TABLE,
        "MESSAGE_BUCKET": BUCKET,
        "MESSAGE_PREFIX": PREFIX,
        "DNS_SERVERS": knot.servers_env,
    }
    gate = build_gate(Settings.from_env(env))
    gate.complete_checks = True  # SPF's fail too (the Lambda may skip it once PTR and DKIM pass)

    event, raw = signed_dkim_only_event(keys, "msg-gate-dkim")
    put_message("msg-gate-dkim", raw)
    decision = gate.evaluate(parse_event(event))
    assert decision.checks.dkim.result is Result.PASS, decision.checks.dkim
    assert decision.checks.spf.result is Result.FAIL
    assert [v.verdict.value for v in decision.verdicts] == ["accept"]

    # Signed but not in the bucket: DKIM cannot be decided, so the (default) temperror action accepts.
    event, _ = signed_dkim_only_event(keys, "msg-gate-absent")
    decision = gate.evaluate(parse_event(event))
    assert decision.checks.dkim.result is Result.TEMPERROR
    assert "raw message unavailable" in decision.checks.dkim.reason
    assert [v.verdict.value for v in decision.verdicts] == ["accept"]
    assert "dkim temperror decides" in decision.verdicts[0].reason


# -- the CLI end to end --------------------------------------------------------------------------------


def run_cli(
    moto: MotoServer, knot: KnotServer, home: Path, *paths: Path, **overrides: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),  # no ~/.aws of the developer's
        **aws_env(moto.endpoint_url),
        "TENANTS_TABLE": TABLE,
        "MESSAGE_BUCKET": BUCKET,
        "MESSAGE_PREFIX": PREFIX,
        "DNS_SERVERS": knot.servers_env,
        **overrides,
    }
    assert CLI.exists(), f"console script missing: {CLI} (pip install -e .)"
    return subprocess.run(
        [str(CLI), "evaluate", *map(str, paths)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_dkim_only_event_fetched_from_s3(
    aws: dict[str, str], moto: MotoServer, knot: KnotServer, keys: world.Keys, tmp_path: Path
) -> None:
    event, raw = signed_dkim_only_event(keys, "msg-cli-dkim")
    put_message("msg-cli-dkim", raw)
    path = world.dump(event, tmp_path / "event.json")

    proc = run_cli(moto, knot, tmp_path, path)

    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    (line,) = proc.stdout.splitlines()
    out = json.loads(line)
    assert out["event"] == str(path)
    assert out["message_id"] == "msg-cli-dkim"
    assert out["client_ip"] == world.OTHER_IP
    assert out["checks"]["iprev"]["result"] == "pass"
    assert out["checks"]["spf"]["result"] == "fail"
    assert out["checks"]["dkim"]["result"] == "pass"
    assert out["checks"]["dkim"]["properties"] == {"header.d": "good.test", "header.s": "rsa"}
    assert [r["verdict"] for r in out["recipients"]] == ["accept"]
    assert out["disposition"] == "CONTINUE"
    assert out["notes"] == []


def test_cli_bad_json_is_one_line_on_stderr(
    aws: dict[str, str], moto: MotoServer, knot: KnotServer, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"Records": [', encoding="utf-8")
    good = world.dump(world.ses_event(message_id="msg-cli-good"), tmp_path / "good.json")

    proc = run_cli(moto, knot, tmp_path, bad)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert str(bad) in line
    assert "invalid JSON" in line

    # A bad file among good ones: the good one is still decided, the exit status still says "error".
    proc = run_cli(moto, knot, tmp_path, bad, good)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    (line,) = proc.stdout.splitlines()
    out = json.loads(line)
    assert out["event"] == str(good)
    assert out["checks"]["spf"]["result"] == "pass"
    assert [r["verdict"] for r in out["recipients"]] == ["accept"]


def test_cli_exits_3_when_a_decision_failed_open(moto: MotoServer, knot: KnotServer, tmp_path: Path) -> None:
    """A mistyped TENANTS_TABLE: the function fails open (right for mail); the CLI must not look like an all-clear."""
    event = world.dump(world.ses_event(ip=world.NO_PTR_IP, message_id="msg-cli-fault"), tmp_path / "e.json")
    proc = run_cli(moto, knot, tmp_path, event, TENANTS_TABLE="no-such-table")
    assert proc.returncode == 3
    (line,) = proc.stdout.splitlines()
    assert json.loads(line)["faults"] == ["tenant_lookup"]
    (err,) = proc.stderr.splitlines()
    assert err.startswith(
        f"ipv6gate evaluate: {event}: tenant_lookup failed: tenant lookup failed, every recipient accepted"
    )
    assert "ResourceNotFoundException" in err
