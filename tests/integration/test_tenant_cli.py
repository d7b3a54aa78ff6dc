"""`ipv6gate tenants ...` against a real local DynamoDB (moto server), through the installed command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.moto_server import MotoServer, aws_env

pytestmark = pytest.mark.integration
TABLE = "tenants-cli-test"
CLI = str(Path(sys.executable).with_name("ipv6gate"))


@pytest.fixture(scope="module")
def env(moto: MotoServer) -> dict[str, str]:
    env = {**os.environ, **aws_env(moto.endpoint_url), "TENANTS_TABLE": TABLE}
    client = moto.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "domain", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "domain", "KeyType": "HASH"}],
    )
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "tenants", *args], check=False, env=env, capture_output=True, text=True, timeout=60)


def item(env: dict[str, str], domain: str) -> dict[str, object]:
    out = cli(env, "status", domain, "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_enable_monitor_disable_round_trip(env: dict[str, str]) -> None:
    out = cli(env, "enable", "Bücher.Example.", "--monitor", "--by", "ops@example.test")
    assert out.returncode == 0, out.stderr
    assert "xn--bcher-kva.example  ipv6=on  mode=monitor" in out.stdout
    got = item(env, "xn--bcher-kva.example")
    assert got["ipv6_inbound"] is True and got["mode"] == "monitor" and got["updated_by"] == "ops@example.test"
    assert str(got["updated_at"]).endswith("+00:00")

    assert cli(env, "enable", "bücher.example").returncode == 0
    assert item(env, "xn--bcher-kva.example")["mode"] == "enforce"
    assert cli(env, "disable", "XN--BCHER-KVA.example").returncode == 0
    assert item(env, "xn--bcher-kva.example")["ipv6_inbound"] is False


def test_partners_are_a_set_of_canonical_prefixes(env: dict[str, str]) -> None:
    assert cli(env, "enable", "partners.example").returncode == 0
    assert cli(env, "add-partner", "partners.example", "2001:DB8:10:0::/48").returncode == 0
    assert cli(env, "add-partner", "partners.example", "2001:db8:20::/48").returncode == 0
    assert item(env, "partners.example")["partner_prefixes"] == ["2001:db8:10::/48", "2001:db8:20::/48"]
    assert cli(env, "remove-partner", "partners.example", "2001:db8:10::/48").returncode == 0
    assert item(env, "partners.example")["partner_prefixes"] == ["2001:db8:20::/48"]


def test_list_and_status_of_unknown(env: dict[str, str]) -> None:
    assert cli(env, "enable", "listed.example").returncode == 0
    listed = cli(env, "list")
    assert listed.returncode == 0 and "listed.example" in listed.stdout.splitlines()
    unknown = cli(env, "status", "never.example")
    assert unknown.returncode == 0 and "ipv6=off" in unknown.stdout and "550 5.2.1" in unknown.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("enable", "not a domain"), "is not a host-style domain"),
        (("enable", "single"), "is not a host-style domain"),
        (("enable", ""), "empty domain"),
        (("enable", "1.2.3.4"), "'1.2.3.4' is an IP address, not a domain"),
        (("status", "192.0.2.1"), "is an IP address, not a domain"),
        (("remove", "1.2.3.4"), "is an IP address, not a domain"),
        (("add-partner", "ok.example", "192.0.2.0/24"), "is an IPv4 prefix"),
        (("add-partner", "ok.example", "2001:db8::1/48"), "is not an IPv6 prefix"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(env: dict[str, str], args: tuple[str, ...], message: str) -> None:
    before = cli(env, "list", "--format", "json").stdout
    out = cli(env, *args)
    assert out.returncode == 1 and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and message in out.stderr and "Traceback" not in out.stderr
    assert cli(env, "list", "--format", "json").stdout == before


def test_missing_table_is_a_clear_error(env: dict[str, str]) -> None:
    out = cli({**env, "TENANTS_TABLE": "no-such-table"}, "enable", "x.example")
    assert out.returncode == 3 and "ResourceNotFoundException" in out.stderr and "Traceback" not in out.stderr


def test_remove_deletes_the_record(env: dict[str, str]) -> None:
    assert cli(env, "enable", "gone.example", "--monitor").returncode == 0
    out = cli(env, "remove", "Gone.Example.")
    assert out.returncode == 0 and out.stderr == ""
    assert out.stdout.startswith("removed  gone.example  ipv6=on  mode=monitor")
    assert "gone.example" not in cli(env, "list").stdout.splitlines()
    assert "(no tenant record" in cli(env, "status", "gone.example").stdout


def test_remove_of_a_domain_without_a_record_is_not_found(env: dict[str, str]) -> None:
    before = cli(env, "list", "--format", "json").stdout
    out = cli(env, "remove", "never.example")
    assert out.returncode == 4 and out.stdout == ""
    assert out.stderr == "ipv6gate tenants remove: 'never.example': no tenant record to remove\n"
    assert cli(env, "list", "--format", "json").stdout == before


def test_a_hand_written_item_the_gate_cannot_use_is_shown_as_invalid(env: dict[str, str], moto: MotoServer) -> None:
    moto.client("dynamodb").put_item(
        TableName=TABLE, Item={"domain": {"S": "byhand.example"}, "ipv6_inbound": {"S": "yes"}}
    )
    status = cli(env, "status", "byhand.example")
    assert status.returncode == 0
    assert "INVALID (tenant byhand.example: ipv6_inbound must be true or false, not 'yes')" in status.stdout
    listed = [json.loads(line) for line in cli(env, "list", "--format", "json").stdout.splitlines()]
    assert {
        "domain": "byhand.example",
        "invalid": "tenant byhand.example: ipv6_inbound must be true or false, not 'yes'",
    } in listed
    fixed = cli(env, "enable", "byhand.example")  # enabling writes a Boolean: the item is usable again
    assert fixed.returncode == 0 and "INVALID" not in fixed.stdout


# --stack NAME: the table is the stack's TenantsTableName output (CloudFormation DescribeStacks).
STACK_TEMPLATE = {
    "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
    "Outputs": {"TenantsTableName": {"Value": TABLE}},
}


@pytest.fixture(scope="module")
def stack_env(env: dict[str, str], moto: MotoServer) -> dict[str, str]:
    cloudformation = moto.client("cloudformation")
    cloudformation.create_stack(StackName="gate-stack", TemplateBody=json.dumps(STACK_TEMPLATE))
    other = {"Resources": STACK_TEMPLATE["Resources"], "Outputs": {"Other": {"Value": "x"}}}
    cloudformation.create_stack(StackName="not-a-gate", TemplateBody=json.dumps(other))
    return {k: v for k, v in env.items() if k != "TENANTS_TABLE"}


def test_stack_names_the_deployed_table(stack_env: dict[str, str], env: dict[str, str]) -> None:
    out = cli(stack_env, "enable", "stack.example", "--stack", "gate-stack")
    assert out.returncode == 0, out.stderr
    assert item(env, "stack.example")["ipv6_inbound"] is True  # written to the output's table
    assert cli(stack_env, "disable", "stack.example", "--stack", "gate-stack").returncode == 0
    assert item(env, "stack.example")["ipv6_inbound"] is False


@pytest.mark.parametrize(
    ("stack", "message"),
    [
        ("no-such-stack", "stack no-such-stack: no such stack in this account and region"),
        ("not-a-gate", "stack not-a-gate: has no output TenantsTableName"),
    ],
)
def test_stack_without_the_table_is_one_line(stack_env: dict[str, str], stack: str, message: str) -> None:
    out = cli(stack_env, "enable", "nothing.example", "--stack", stack)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"ipv6gate tenants enable: configuration: {message}")
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr
