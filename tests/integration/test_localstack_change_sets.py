"""Every composition of template.yaml gets a change set from the rehearsal's LocalStack (with its plugin).

The full rehearsal deploys the defaults and RuleSetMode=own with ActivateRuleSet=true and a kept
tenants table; CI's reduced one only the defaults. A change set is LocalStack's whole reading of the
template (the SAM transform, conditions, every reference) before anything runs, so this catches, in
seconds, a template LocalStack cannot take for a composition CI never deploys (it did: a ``Ref`` to
SAM's generated ``StackSetupFunctionRole``, resolved before the transform; see the plugin's
``engine_fixes``). Nothing is executed; no Lambda or docker is needed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from devstack.docker_engine import EngineError
from devstack.localstack_server import LocalStackServer
from devstack.sam_template import load_template

pytestmark = pytest.mark.integration

COMPOSITIONS = {
    "defaults": {},
    "own, activated, kept tenants table": {
        "RuleSetMode": "own",
        "ActivateRuleSet": "true",
        "ExistingTenantsTable": "kept-tenants",
    },
    # (Recipients empty is left out: LocalStack's change sets refuse an empty list parameter in the
    # AllRecipients condition's Fn::Join; CloudFormation takes it, tests/template/test_readme_deploy.py.)
    "existing named set, activated": {"RuleSetName": "ops", "ActivateRuleSet": "true"},
}


@pytest.fixture(scope="module")
def cloudformation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # Loopback only: the bridge address LocalStack also listens on is another loopback one here.
    server = LocalStackServer(
        docker_host="unix:///nonexistent.sock",
        bridge_ip="127.0.0.2",
        image="unused",
        arch="x86_64",
        state_dir=tmp_path_factory.mktemp("localstack"),
    )
    try:
        server.start()
    except EngineError as exc:
        pytest.fail(f"LocalStack could not start: {exc}", pytrace=False)
    try:
        yield boto3.client(
            "cloudformation",
            endpoint_url=server.endpoint_url,
            region_name="eu-west-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
    finally:
        server.stop()


def _packaged() -> str:
    template = load_template()
    for resource in template["Resources"].values():  # local paths -> S3 URIs, as `sam deploy` uploads them
        for key in ("CodeUri", "ContentUri"):
            if isinstance(resource.get("Properties", {}).get(key), str):
                resource["Properties"][key] = "s3://bucket/key.zip"
    return json.dumps(template)


@pytest.mark.parametrize("composition", list(COMPOSITIONS))
def test_localstack_takes_the_template_in_every_composition(cloudformation, composition: str) -> None:
    values = {"Recipients": "example.com", "BounceSender": "postmaster@example.com", **COMPOSITIONS[composition]}
    stack = "cs-" + "".join(c if c.isalnum() else "-" for c in composition)[:40]
    cloudformation.create_change_set(
        StackName=stack,
        ChangeSetName="first",
        TemplateBody=_packaged(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
        ChangeSetType="CREATE",
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.monotonic() + 60
    while True:
        described = cloudformation.describe_change_set(StackName=stack, ChangeSetName="first")
        if described["Status"] not in ("CREATE_PENDING", "CREATE_IN_PROGRESS") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert described["Status"] == "CREATE_COMPLETE", described.get("StatusReason")
    created = {c["ResourceChange"]["LogicalResourceId"] for c in described["Changes"]}
    assert {"ReceiptRule", "MessageBucketDrain", "TenantSeed", "StackSetupFunctionRole"} <= created
    activates = values.get("ActivateRuleSet") == "true"
    assert ("ActivateRuleSetPolicy" in created) is activates and ("ActiveReceiptRuleSet" in created) is activates
    assert ("TenantsTable" in created) is ("ExistingTenantsTable" not in values)
    assert ("ReceiptRuleSet" in created) is (values.get("RuleSetMode") == "own")
