"""The stack's custom resources (functions/stack_setup): rule-set target, tenant seed, activation.

SES and DynamoDB are moto in-process (``mock_aws``) behind the real adapters; CloudFormation's
response PUT goes to a local HTTP server, and the deployed handler (functions/stack_setup/app.py)
is run end to end against both.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from moto import mock_aws

from ipv6gate.aws.custom_resources import NOT_CREATED, StackSetup, StackSetupError, send_response
from ipv6gate.aws.dynamodb import TenantAdmin, tenant_from_item
from ipv6gate.aws.receipt_rules import SesReceiptRules
from ipv6gate.aws.s3 import S3BucketEmptier
from ipv6gate.decision.tenants import Mode, rule_coverage

REGION = "eu-west-1"
TABLE = "tenants"
NOW = "2026-12-08T01:00:00+00:00"
REPO = Path(__file__).resolve().parents[2]


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, object, dict[str, Any]]] = []

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.lines.append(("info", msg, kwargs))

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.lines.append(("warning", msg, kwargs))

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.lines.append(("error", msg, kwargs))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        ses = boto3.client("ses", region_name=REGION)
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "domain", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "domain", "KeyType": "HASH"}],
        )
        yield ses, ddb


@pytest.fixture
def setup(aws: tuple[Any, Any]) -> StackSetup:
    ses, ddb = aws
    return StackSetup(
        rules=SesReceiptRules(ses),
        tenants=lambda t: TenantAdmin(ddb, t),
        now=lambda: NOW,
        log=_Log(),
        buckets=S3BucketEmptier(boto3.client("s3", region_name=REGION)),
    )


def event(kind: str, request: str = "Create", physical: str | None = None, old: dict | None = None, **props: Any):
    e: dict[str, Any] = {
        "RequestType": request,
        "ResourceType": f"Custom::{kind}",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:x", **props},
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/ipv6gate/1",
        "RequestId": "req-1",
        "LogicalResourceId": "Logical",
        "ResponseURL": "http://127.0.0.1:9/unused",
    }
    if physical is not None:
        e["PhysicalResourceId"] = physical
    if old is not None:
        e["OldResourceProperties"] = old
    return e


def active(ses: Any) -> str | None:
    return (ses.describe_active_receipt_rule_set().get("Metadata") or {}).get("Name")


def items(ddb: Any) -> dict[str, dict]:
    return {i["domain"]["S"]: i for i in ddb.scan(TableName=TABLE)["Items"]}


def assert_one_line_failure(reply: dict, *fragments: str) -> None:
    assert reply["Status"] == "FAILED", reply
    assert "\n" not in reply["Reason"] and len(reply["Reason"]) <= 1000
    for fragment in fragments:
        assert fragment in reply["Reason"], reply["Reason"]


# --------------------------------------------------------------------------- rule-set target
def test_target_names_the_given_existing_set(aws, setup):
    ses, _ = aws
    ses.create_receipt_rule_set(RuleSetName="ops")
    reply = setup.handle(event("ReceiptRuleSetTarget", RuleSetName="ops"))
    assert reply["Status"] == "SUCCESS"
    assert reply["Data"] == {"RuleSetName": "ops"}
    assert active(ses) is None, "naming a set does not activate it"
    for key in ("StackId", "RequestId", "LogicalResourceId"):
        assert reply[key] == event("ReceiptRuleSetTarget")[key]


def test_target_refuses_a_set_that_does_not_exist(setup):
    reply = setup.handle(event("ReceiptRuleSetTarget", RuleSetName="typo"))
    assert_one_line_failure(reply, "'typo' does not exist in eu-west-1", "RuleSetName")
    assert reply["PhysicalResourceId"] == NOT_CREATED


def test_target_empty_name_is_the_active_set_and_stays_it_on_update(aws, setup):
    ses, _ = aws
    for name in ("ops", "other"):
        ses.create_receipt_rule_set(RuleSetName=name)
    ses.set_active_receipt_rule_set(RuleSetName="ops")
    created = setup.handle(event("ReceiptRuleSetTarget", RuleSetName=""))
    assert created["Data"] == {"RuleSetName": "ops"}
    ses.set_active_receipt_rule_set(RuleSetName="other")  # the operator switches later
    updated = setup.handle(
        event("ReceiptRuleSetTarget", "Update", created["PhysicalResourceId"], old={"RuleSetName": ""}, RuleSetName="")
    )
    assert updated["Data"] == {"RuleSetName": "ops"}, "an update must not move the rule"
    assert updated["PhysicalResourceId"] == created["PhysicalResourceId"]
    physical = created["PhysicalResourceId"]
    renamed = setup.handle(
        event("ReceiptRuleSetTarget", "Update", physical, old={"RuleSetName": ""}, RuleSetName="other")
    )
    assert renamed["Data"] == {"RuleSetName": "other"}
    assert active(ses) == "other"


def test_target_without_an_active_set_fails_with_one_line(setup):
    reply = setup.handle(event("ReceiptRuleSetTarget", RuleSetName=""))
    assert_one_line_failure(reply, "no SES receipt rule set is active in eu-west-1", "RuleSetMode=own")


def test_target_delete_changes_nothing(aws, setup):
    ses, _ = aws
    ses.create_receipt_rule_set(RuleSetName="ops")
    ses.set_active_receipt_rule_set(RuleSetName="ops")
    reply = setup.handle(event("ReceiptRuleSetTarget", "Delete", "rule-set:ops", RuleSetName=""))
    assert reply["Status"] == "SUCCESS" and reply["PhysicalResourceId"] == "rule-set:ops"
    assert active(ses) == "ops"
    ses.describe_receipt_rule_set(RuleSetName="ops")  # still there


# --------------------------------------------------------------------------- tenant seed
def seed(request: str = "Create", recipients: list[str] | None = None, **extra: Any) -> dict:
    props = {"TableName": TABLE, "Recipients": recipients or [], "StackName": "ipv6gate", "Seed": "monitor"}
    return event("TenantSeed", request, None if request == "Create" else "tenant-seed", **{**props, **extra})


def test_seed_creates_missing_tenants_in_monitor_mode(aws, setup):
    _, ddb = aws
    reply = setup.handle(seed(recipients=["Example.COM", "ann@mail.example.org", "example.com"]))
    assert reply["Status"] == "SUCCESS", reply
    assert reply["Data"] == {"Created": "2", "Existing": "0"}
    stored = items(ddb)
    assert set(stored) == {"example.com", "mail.example.org"}
    for domain, item in stored.items():
        tenant = tenant_from_item(item)  # the gate reads it as it reads any tenant
        assert tenant.mode is Mode.MONITOR and tenant.ipv6_inbound is True, domain
        assert item["updated_by"] == {"S": "stack ipv6gate"} and item["updated_at"] == {"S": NOW}


def test_seed_never_touches_an_existing_item(aws, setup):
    _, ddb = aws
    admin = TenantAdmin(ddb, TABLE)
    admin.disable("off.example", by="ops", now="2026-01-01T00:00:00+00:00")
    admin.enable("strict.example", mode=Mode.ENFORCE, by="ops", now="2026-01-01T00:00:00+00:00")
    admin.add_partner("strict.example", "2001:db8:10::/48", by="ops", now="2026-01-01T00:00:00+00:00")
    before = items(ddb)
    reply = setup.handle(seed(recipients=["off.example", "strict.example", "new.example"]))
    assert reply["Data"] == {"Created": "1", "Existing": "2"}
    after = items(ddb)
    assert {k: after[k] for k in before} == before
    assert tenant_from_item(after["new.example"]).mode is Mode.MONITOR


def test_seed_is_idempotent_on_update_and_seeds_added_domains(aws, setup):
    _, ddb = aws
    setup.handle(seed(recipients=["a.example"]))
    first = items(ddb)
    reply = setup.handle(seed("Update", ["a.example", "b.example"], old={"Recipients": ["a.example"]}))
    assert reply["Status"] == "SUCCESS" and reply["PhysicalResourceId"] == "tenant-seed"
    assert reply["Data"] == {"Created": "1", "Existing": "1"}
    assert items(ddb)["a.example"] == first["a.example"]
    assert set(items(ddb)) == {"a.example", "b.example"}


def test_seed_deletes_nothing_on_delete_or_when_a_domain_is_dropped(aws, setup):
    _, ddb = aws
    setup.handle(seed(recipients=["a.example", "b.example"]))
    setup.handle(seed("Update", ["a.example"]))
    reply = setup.handle(seed("Delete", ["a.example"]))
    assert reply["Status"] == "SUCCESS"
    assert set(items(ddb)) == {"a.example", "b.example"}


def test_seed_with_empty_recipients_takes_every_domain_identity(aws, setup):
    ses, ddb = aws
    ses.verify_domain_identity(Domain="one.example")
    ses.verify_domain_identity(Domain="two.example")
    ses.verify_email_identity(EmailAddress="someone@three.example")  # an address identity receives nothing
    reply = setup.handle(seed(recipients=[""]))  # CloudFormation's CommaDelimitedList of ""
    assert reply["Data"] == {"Created": "2", "Existing": "0"}
    assert set(items(ddb)) == {"one.example", "two.example"}


def test_seed_refuses_subdomain_entries_and_writes_nothing(aws, setup):
    _, ddb = aws
    reply = setup.handle(seed(recipients=["a.example", ".example.org"]))
    assert_one_line_failure(reply, "'.example.org'", "550 5.2.1", "SeedTenants=off")
    assert items(ddb) == {}


def test_seed_refuses_a_bad_entry_naming_it(aws, setup):
    _, ddb = aws
    reply = setup.handle(seed(recipients=["a.example", "1.2.3.4"]))
    assert_one_line_failure(reply, "Recipients entry '1.2.3.4'")
    assert items(ddb) == {}


def test_seed_off_writes_nothing_and_a_bad_seed_value_fails(aws, setup):
    _, ddb = aws
    assert setup.handle(seed(recipients=[".example.org"], Seed="off"))["Status"] == "SUCCESS"
    assert items(ddb) == {}
    assert_one_line_failure(setup.handle(seed(recipients=["a.example"], Seed="enforce")), "monitor|off")


def test_seed_failure_of_dynamodb_is_one_line(setup):
    reply = setup.handle(seed(recipients=["a.example"], TableName="missing"))
    assert_one_line_failure(reply, "DynamoDB missing: ResourceNotFoundException")


def test_rule_coverage_forms():
    coverage = rule_coverage(["ann@Example.COM", "example.com", ".sub.example", "b.example"])
    assert coverage.domains == ("example.com", "b.example")
    assert coverage.subdomain_entries == (".sub.example",)
    assert not coverage.all_domains
    assert rule_coverage(["", " "]).all_domains
    with pytest.raises(ValueError, match=r"Recipients entry '@example\.com'"):
        rule_coverage(["@example.com"])


# --------------------------------------------------------------------------- activation
def activation(request: str = "Create", physical: str | None = None, name: str = "gate-set") -> dict:
    return event("ActiveReceiptRuleSet", request, physical, RuleSetName=name)


@pytest.fixture
def sets(aws) -> Any:
    ses, _ = aws
    for name in ("ops", "gate-set", "third"):
        ses.create_receipt_rule_set(RuleSetName=name)
    return ses


def test_activation_restores_the_previous_set_on_delete(sets, setup):
    sets.set_active_receipt_rule_set(RuleSetName="ops")
    created = setup.handle(activation())
    assert created["Status"] == "SUCCESS" and active(sets) == "gate-set"
    deleted = setup.handle(activation("Delete", created["PhysicalResourceId"]))
    assert deleted["Status"] == "SUCCESS"
    assert active(sets) == "ops"


def test_activation_leaves_a_set_the_operator_activated_since(sets, setup):
    sets.set_active_receipt_rule_set(RuleSetName="ops")
    created = setup.handle(activation())
    sets.set_active_receipt_rule_set(RuleSetName="third")
    setup.handle(activation("Delete", created["PhysicalResourceId"]))
    assert active(sets) == "third"


def test_activation_of_the_already_active_set_reverts_nothing(sets, setup):
    sets.set_active_receipt_rule_set(RuleSetName="gate-set")
    created = setup.handle(activation())
    setup.handle(activation("Delete", created["PhysicalResourceId"]))
    assert active(sets) == "gate-set"


def test_activation_with_nothing_active_before_deactivates_on_delete(sets, setup):
    created = setup.handle(activation())
    assert active(sets) == "gate-set"
    setup.handle(activation("Delete", created["PhysicalResourceId"]))
    assert active(sets) is None


def test_activation_deactivates_when_the_previous_set_is_gone(sets, setup):
    sets.set_active_receipt_rule_set(RuleSetName="third")
    created = setup.handle(activation())
    sets.delete_receipt_rule_set(RuleSetName="third")
    assert setup.handle(activation("Delete", created["PhysicalResourceId"]))["Status"] == "SUCCESS"
    assert active(sets) is None


def test_activation_update_keeps_its_id_and_the_first_previous_set(sets, setup):
    sets.set_active_receipt_rule_set(RuleSetName="ops")
    created = setup.handle(activation())
    updated = setup.handle(activation("Update", created["PhysicalResourceId"]))
    assert updated["PhysicalResourceId"] == created["PhysicalResourceId"], "a new id would trigger a delete"
    assert active(sets) == "gate-set"
    setup.handle(activation("Delete", updated["PhysicalResourceId"]))
    assert active(sets) == "ops"


def test_failed_activation_is_one_line_and_its_rollback_changes_nothing(sets, setup):
    sets.set_active_receipt_rule_set(RuleSetName="ops")
    failed = setup.handle(activation(name="no-such-set"))
    assert_one_line_failure(failed, "SES set_active_receipt_rule_set")
    assert failed["PhysicalResourceId"] == NOT_CREATED
    assert setup.handle(activation("Delete", NOT_CREATED, name="no-such-set"))["Status"] == "SUCCESS"
    assert active(sets) == "ops"


def test_unknown_type_and_request_fail_with_one_line(setup):
    assert_one_line_failure(setup.handle(event("Nope")), "unknown custom resource type 'Custom::Nope'")
    assert_one_line_failure(setup.handle(event("TenantSeed", "Replace")), "unknown RequestType 'Replace'")


def test_an_unexpected_error_still_answers(setup):
    def boom(_table: str) -> Any:
        raise RuntimeError("disk on fire")

    setup.tenants = boom
    reply = setup.handle(seed(recipients=["a.example"]))
    assert_one_line_failure(reply, "RuntimeError: disk on fire")


# --------------------------------------------------------------------------- the response PUT
class _Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str | None, dict]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Recorder.received.append((self.path, self.headers.get("Content-Type"), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def cfn_endpoint() -> Iterator[str]:
    _Recorder.received = []
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_send_response_puts_the_document_unsigned_content_type(cfn_endpoint):
    send_response(f"{cfn_endpoint}/presigned?X-Amz-Signature=abc", {"Status": "SUCCESS"})
    [(path, content_type, body)] = _Recorder.received
    assert path == "/presigned?X-Amz-Signature=abc"
    assert content_type in ("", None)  # the pre-signed URL was signed without one
    assert body == {"Status": "SUCCESS"}


def test_send_response_fails_with_one_line_when_unreachable():
    with (
        socket_closed_port() as port,
        pytest.raises(StackSetupError, match="could not send the response to CloudFormation"),
    ):
        send_response(f"http://127.0.0.1:{port}/x", {"Status": "SUCCESS"}, timeout=1, tries=2)
    with pytest.raises(StackSetupError, match="not an http"):
        send_response("file:///etc/passwd", {})


class socket_closed_port:
    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        return int(self._sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


def test_deployed_handler_answers_cloudformation_end_to_end(aws, cfn_endpoint):
    ses, ddb = aws
    ses.create_receipt_rule_set(RuleSetName="ops")
    ses.set_active_receipt_rule_set(RuleSetName="ops")
    spec = importlib.util.spec_from_file_location("stack_setup_app", REPO / "functions" / "stack_setup" / "app.py")
    assert spec and spec.loader
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "setup", 256, "r1"
        invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:setup"

    for e in (event("ReceiptRuleSetTarget", RuleSetName=""), seed(recipients=["a.example"])):
        e["ResponseURL"] = f"{cfn_endpoint}/cfn"
        app.lambda_handler(e, Context())
    target, seeded = (body for _, _, body in _Recorder.received)
    assert target["Status"] == "SUCCESS" and target["Data"] == {"RuleSetName": "ops"}
    assert seeded["Status"] == "SUCCESS" and seeded["Data"] == {"Created": "1", "Existing": "0"}
    assert tenant_from_item(items(ddb)["a.example"]).mode is Mode.MONITOR


# --------------------------------------------------------------------------- what the seed means for mail
@pytest.mark.parametrize("seeded", [True, False])
def test_first_deploy_rejects_nothing_for_a_seeded_domain(aws, setup, resolver, messages, powertools, seeded):
    """The gate reading the table the seed wrote: a covered domain that was no tenant is monitored, not refused."""

    from devstack import world
    from ipv6gate.aws.dynamodb import DynamoTenantDirectory
    from ipv6gate.entrypoints.lambda_gate import handle_ses_event
    from ipv6gate.settings import Settings
    from ipv6gate.wiring import assemble_gate

    _, ddb = aws
    if seeded:
        assert setup.handle(seed(recipients=["fresh.test"]))["Data"]["Created"] == "1"
    gate = assemble_gate(
        Settings.from_env({"AWS_REGION": REGION}), resolver, DynamoTenantDirectory(ddb, TABLE), messages
    )
    event_ = world.ses_event(ip=world.NO_PTR_IP, recipients=("a@fresh.test",))
    disposition = handle_ses_event(event_, gate, *powertools)
    # Without the seed, the domain is no tenant: 550 5.2.1 and the rest of the rule set is stopped.
    assert disposition == {"disposition": "CONTINUE" if seeded else "STOP_RULE_SET"}


def test_stack_lifecycle_in_the_operators_active_set_leaves_it_as_it_was(aws, setup):
    """CloudFormation's order for the defaults plus ActivateRuleSet=true: create, update, delete."""
    ses, _ = aws
    ses.create_receipt_rule_set(RuleSetName="ops")
    ses.create_receipt_rule(RuleSetName="ops", Rule={"Name": "deliver", "Enabled": True})
    ses.create_receipt_rule(RuleSetName="ops", After="deliver", Rule={"Name": "archive", "Enabled": True})
    ses.set_active_receipt_rule_set(RuleSetName="ops")

    def rules() -> list[str]:
        return [r["Name"] for r in ses.describe_receipt_rule_set(RuleSetName="ops")["Rules"]]

    target = setup.handle(event("ReceiptRuleSetTarget", RuleSetName=""))
    assert setup.handle(seed(recipients=["a.example"]))["Status"] == "SUCCESS"
    # AWS::SES::ReceiptRule with the target's name and no After, as the template declares it.
    ses.create_receipt_rule(RuleSetName=target["Data"]["RuleSetName"], Rule={"Name": "ipv6gate-gate", "Enabled": True})
    activated = setup.handle(activation(name="ops"))
    assert rules() == ["ipv6gate-gate", "deliver", "archive"] and active(ses) == "ops"

    physical = target["PhysicalResourceId"]
    assert setup.handle(event("ReceiptRuleSetTarget", "Update", physical, old={"RuleSetName": ""}, RuleSetName=""))[
        "Data"
    ] == {"RuleSetName": "ops"}
    assert setup.handle(seed("Update", ["a.example", "b.example"]))["Status"] == "SUCCESS"

    setup.handle(activation("Delete", activated["PhysicalResourceId"], name="ops"))
    # CloudFormation deletes the gate's rule here (moto has no DeleteReceiptRule; make deploy-rehearsal runs it).
    setup.handle(seed("Delete", ["a.example", "b.example"]))
    setup.handle(event("ReceiptRuleSetTarget", "Delete", physical, RuleSetName=""))
    assert rules() == ["ipv6gate-gate", "deliver", "archive"] and active(ses) == "ops"


# --------------------------------------------------------------------------- the message bucket's drain
def _bucket(name: str, keys: int) -> Any:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    for i in range(keys):
        s3.put_object(Bucket=name, Key=f"inbound/m{i}", Body=b"x")
    s3.put_object(Bucket=name, Key="inbound/AMAZON_SES_SETUP_NOTIFICATION", Body=b"x")
    return s3


def _keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_drain_keeps_the_bucket_on_create_and_update_and_empties_it_on_delete(aws, setup):
    s3 = _bucket("msgs", 1200)  # more than one DeleteObjects call (1000 keys each)
    created = setup.handle(event("MessageBucketDrain", BucketName="msgs"))
    assert created["Status"] == "SUCCESS"
    updated = setup.handle(event("MessageBucketDrain", "Update", created["PhysicalResourceId"], BucketName="msgs"))
    assert updated["PhysicalResourceId"] == created["PhysicalResourceId"]
    assert len(_keys(s3, "msgs")) == 1000  # a listing page: nothing was deleted
    deleted = setup.handle(event("MessageBucketDrain", "Delete", created["PhysicalResourceId"], BucketName="msgs"))
    assert deleted["Status"] == "SUCCESS" and _keys(s3, "msgs") == []
    s3.delete_bucket(Bucket="msgs")  # what CloudFormation does next: possible only now


def test_drain_of_a_new_bucket_is_a_new_id_so_the_old_one_is_emptied(aws, setup):
    _bucket("old", 1)
    old = setup.handle(event("MessageBucketDrain", BucketName="old"))["PhysicalResourceId"]
    new = setup.handle(event("MessageBucketDrain", "Update", old, old={"BucketName": "old"}, BucketName="new"))
    assert new["PhysicalResourceId"] != old


def test_drain_delete_after_a_failed_create_or_of_a_gone_bucket_changes_nothing(aws, setup):
    s3 = _bucket("kept", 2)
    failed = setup.handle(event("MessageBucketDrain", BucketName=""))
    assert failed["Status"] == "FAILED" and "BucketName" in failed["Reason"]
    rollback = setup.handle(event("MessageBucketDrain", "Delete", failed["PhysicalResourceId"], BucketName="kept"))
    assert rollback["Status"] == "SUCCESS" and len(_keys(s3, "kept")) == 3
    gone = setup.handle(event("MessageBucketDrain", "Delete", "drain:gone", BucketName="gone"))
    assert gone["Status"] == "SUCCESS"


def test_drain_failure_is_one_line_naming_the_bucket(aws, setup, monkeypatch):
    from botocore.exceptions import ClientError

    _bucket("locked", 1)

    def denied(*args: Any, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "DeleteObjects")

    monkeypatch.setattr(setup.buckets._client, "delete_objects", denied)
    failed = setup.handle(event("MessageBucketDrain", "Delete", "drain:locked", BucketName="locked"))
    assert failed["Status"] == "FAILED" and failed["Reason"] == "s3://locked: AccessDenied"
    assert failed["PhysicalResourceId"] == "drain:locked"


def test_a_drain_out_of_time_answers_failed_while_it_can_and_the_next_delete_goes_on(aws, setup):
    s3 = _bucket("big", 2500)  # three listing pages
    left = iter([100.0, 100.0, 10.0])  # the third page would start with less than the answer needs

    failed = setup.handle(event("MessageBucketDrain", "Delete", "drain:big", BucketName="big"), lambda: next(left))
    assert failed["Status"] == "FAILED" and failed["PhysicalResourceId"] == "drain:big"
    assert failed["Reason"].startswith("s3://big: 2000 messages deleted, more left when the function's time ran out")
    assert "\n" not in failed["Reason"] and len(_keys(s3, "big")) == 501
    again = setup.handle(event("MessageBucketDrain", "Delete", "drain:big", BucketName="big"), lambda: 100.0)
    assert again["Status"] == "SUCCESS" and _keys(s3, "big") == []


@pytest.mark.parametrize("name", ["ops.rules", "-ops", "ops-", "x" * 64, "a b"])
def test_a_name_ses_would_refuse_is_one_line_and_changes_nothing(aws, setup, name):
    ses, _ = aws
    ses.create_receipt_rule_set(RuleSetName="ops")
    ses.set_active_receipt_rule_set(RuleSetName="ops")
    target = setup.handle(event("ReceiptRuleSetTarget", RuleSetName=name))
    assert target["Status"] == "FAILED" and "is not an SES rule set name" in target["Reason"]
    assert "\n" not in target["Reason"]
    activated = setup.handle(activation(name=name))
    assert activated["Status"] == "FAILED" and "is not an SES rule set name" in activated["Reason"]
    assert active(ses) == "ops"
