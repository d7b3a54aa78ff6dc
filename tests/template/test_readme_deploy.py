"""README "Deploy" held to the template: its parameters table, and every command of the section.

The commands are read from the page: `sam deploy`'s overrides are parsed by the SAM CLI's own parser
and checked against template.yaml's Parameters; the own-mode slot (`aws ses create-receipt-rule
--after ...`, `set-active-receipt-rule-set`) is run against SES (moto, the real API model) after the
gate's rule, and the order is checked; the stack outputs and `ipv6gate` commands named must exist.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack.sam_template import load_template

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
# What the operator exports before running the section's blocks (README "The safe order").
OPERATOR_ENV = {
    "RECIPIENTS": "example.com,example.org",
    "BOUNCE_SENDER": "postmaster@example.com",
    "DOMAIN": "x.example",
    "TENANTS_TABLE": "ipv6gate-TenantsTable-1A2B3C4D5E6F",  # exported by the watch block
}


def deploy_section() -> str:
    start = README.index("\n## Deploy\n")
    end = README.index("\n## ", start + 1)
    return README[start:end]


def sh_commands() -> list[str]:
    """Every command line of the section's ```sh blocks (continuation lines joined)."""
    blocks = re.findall(r"^ *```sh\n(.*?)^ *```", deploy_section(), re.S | re.M)
    assert len(blocks) >= 5, "the deploy, outputs, enforce, roll-back and own-mode blocks"
    lines = [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def expand(command: str) -> list[str]:
    """The command's words as a shell gives them to the program, with the operator's variables set."""
    assert "$(" not in command, command
    out = subprocess.run(
        ["bash", "-c", f'for w in {command}; do printf "%s\\0" "$w"; done'],
        capture_output=True,
        text=True,
        env={**os.environ, **OPERATOR_ENV},
        check=True,
    )
    return out.stdout.split("\0")[:-1]


# --------------------------------------------------------------------------- the parameters table
def table_rows() -> dict[str, tuple[str, str, str]]:
    section = deploy_section()
    table = section[section.index("### Parameters") :]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = (cells[1], cells[2], cells[3])
    return rows


def settings_of(template: dict) -> dict[str, set[str]]:
    """Parameter -> the function environment variables whose value is taken from it."""
    found: dict[str, set[str]] = {}
    for res in template["Resources"].values():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        for var, value in res["Properties"].get("Environment", {}).get("Variables", {}).items():
            if not isinstance(value, dict):
                continue
            branches = value["Fn::If"][1:] if "Fn::If" in value else [value]
            for branch in branches:
                if isinstance(branch, dict) and "Ref" in branch and branch["Ref"] in template["Parameters"]:
                    found.setdefault(branch["Ref"], set()).add(var)
    return found


def shown_default(spec: dict) -> str:
    if "Default" not in spec:
        return "(required)"
    return "empty" if spec["Default"] == "" else f"`{spec['Default']}`"


def test_parameters_table_is_the_templates():
    template = load_template()
    rows = table_rows()
    params = template["Parameters"]
    assert set(rows) == set(params), (
        f"only in README: {set(rows) - set(params)}; only in template: {set(params) - set(rows)}"
    )
    settings = settings_of(template)
    for name, spec in params.items():
        setting, default, meaning = rows[name]
        assert default == shown_default(spec), f"{name}: README says {default}, template {shown_default(spec)}"
        want = ", ".join(f"`{v}`" for v in sorted(settings.get(name, ()))) or "—"
        assert setting == want, f"{name}: README setting {setting}, template {want}"
        assert len(meaning) > 10, name


def test_every_parameter_explains_itself():
    for name, spec in load_template()["Parameters"].items():
        assert len(spec.get("Description", "")) >= 20, f"{name}: no Description"


def test_the_own_set_is_said_to_deliver_nothing_where_it_is_chosen():
    params = load_template()["Parameters"]
    assert "delivers NOTHING" in params["RuleSetMode"]["Description"]
    assert "**delivered nowhere**" in deploy_section()


# --------------------------------------------------------------------------- the commands
def test_deploy_commands_give_every_required_parameter_and_only_real_ones():
    from samcli.cli.types import CfnParameterOverridesType
    from samcli.commands.deploy.command import cli as sam_deploy

    params = load_template()["Parameters"]
    deploys = [c for c in sh_commands() if c.startswith("sam deploy")]
    assert deploys, "no sam deploy command"
    known = {opt for p in sam_deploy.params for opt in p.opts}
    for command in deploys:
        words = expand(command)
        assert "--guided" not in words, "the rehearsal runs this block: no prompts for parameters"
        flags = [w for w in words[2:] if w.startswith("--")]
        assert set(flags) <= known, flags
        overrides = words[words.index("--parameter-overrides") + 1 :]
        given = CfnParameterOverridesType().convert(tuple(overrides), None, None)
        assert set(given) <= set(params), set(given) - set(params)
        required = {n for n, spec in params.items() if "Default" not in spec}
        assert required <= set(given), f"missing required parameters {required - set(given)}"
    assert "sam build" in sh_commands()


def test_empty_recipients_as_the_readme_writes_it_reach_the_template_empty():
    from samcli.cli.types import CfnParameterOverridesType

    assert "RECIPIENTS='\"\"'" in deploy_section()
    words = subprocess.run(
        ["bash", "-c", "RECIPIENTS='\"\"'; printf '%s' \"Recipients=$RECIPIENTS\""],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert CfnParameterOverridesType().convert((words,), None, None) == {"Recipients": ""}


def test_roll_back_uses_the_stack_of_samconfig():
    from samcli.commands.delete.command import cli as sam_delete

    commands = sh_commands()
    [delete] = [c for c in commands if c.startswith("sam delete")]
    # `sam delete` alone: emptying the bucket by hand while the gate's rule exists races SES's writes;
    # the stack's drain empties it after the rule is gone (tests/template/test_template.py holds the order).
    assert not [c for c in commands if c.startswith("aws s3 rm")]
    rollback = deploy_section().split("### Roll back", 1)[1].split("\n### ", 1)[0]
    assert re.findall(r"^ *```sh\n(.*?)^ *```", rollback, re.S | re.M) == ["sam delete --no-prompts\n"]
    resources = load_template()["Resources"]
    assert resources["MessageBucket"]["DeletionPolicy"] == "Delete"
    assert resources["MessageBucketDrain"]["Properties"]["BucketName"] == {"Ref": "MessageBucket"}
    known = {opt for p in sam_delete.params for opt in p.opts}
    assert set(expand(delete)[2:]) <= known
    config = tomllib.loads((REPO / "samconfig.toml").read_text(encoding="utf-8"))
    assert config["default"]["global"]["parameters"]["stack_name"] == "ipv6gate"


def test_outputs_read_by_the_section_exist():
    outputs = load_template()["Outputs"]
    named = re.findall(r"OutputKey=='(\w+)'", deploy_section())
    assert {"TenantsTableName", "TraceTableName"} <= set(named)
    assert set(named) <= set(outputs)
    for name in ("ReceiptRuleSetName", "ReceiptRuleName", "TenantsSeeded"):  # named in the prose
        assert f"`{name}`" in deploy_section() and name in outputs, name
    stacks = set(re.findall(r"--stack-name (\S+)", deploy_section()))
    assert stacks == {"ipv6gate"}, "the stack name of samconfig.toml"


@pytest.mark.parametrize("prefix", ["ipv6gate tenants", "ipv6gate report"])
def test_ipv6gate_commands_of_the_section_parse(prefix):
    commands = [c for c in sh_commands() if c.startswith(prefix)]
    assert commands, prefix
    for command in commands:
        words = expand(command)[1:]
        out = subprocess.run(
            [sys.executable, "-m", "ipv6gate.entrypoints.cli", *words, "--help"],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )
        assert out.returncode == 0, (command, out.stderr[-500:])


def _aws_ses(command: str) -> tuple[str, dict[str, Any]]:
    """`aws ses <op> --a-b x ...` -> (boto3 method name, keyword arguments)."""
    words = shlex.split(command)
    assert words[:2] == ["aws", "ses"], command
    op = words[2].replace("-", "_")
    kwargs: dict[str, Any] = {}
    for flag, value in zip(words[3::2], words[4::2], strict=True):
        key = "".join(part.capitalize() for part in flag.removeprefix("--").split("-"))
        kwargs[key] = json.loads(value) if value.startswith("{") else value
    return op, kwargs


def test_own_mode_slot_puts_delivery_after_the_gate_and_activates(monkeypatch):
    template = load_template()
    ses_commands = [c for c in sh_commands() if c.startswith("aws ses")]
    assert [c.split()[2] for c in ses_commands] == ["create-receipt-rule", "set-active-receipt-rule-set"]
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        ses = boto3.client("ses", region_name="eu-west-1")
        own_set = "ipv6gate"  # RuleSetMode=own, RuleSetName empty: the stack name (samconfig.toml)
        gate_rule = template["Parameters"]["RuleName"]["Default"]
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="my-mail-bucket")  # the operator's
        ses.create_receipt_rule_set(RuleSetName=own_set)
        ses.create_receipt_rule(RuleSetName=own_set, Rule={"Name": gate_rule, "Enabled": True})  # as the stack does
        for command in ses_commands:
            op, kwargs = _aws_ses(command)
            getattr(ses, op)(**kwargs)  # botocore validates the shapes against the SES model
        order = [r["Name"] for r in ses.describe_receipt_rule_set(RuleSetName=own_set)["Rules"]]
        assert order[0] == gate_rule and len(order) == 2, order
        assert ses.describe_active_receipt_rule_set()["Metadata"]["Name"] == own_set
