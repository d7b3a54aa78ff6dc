"""The handlers' cold start: what importing each function's module pulls in.

X-Ray tracing comes from Lambda itself (``Tracing: Active``); no X-Ray SDK is imported, and AWS
clients are built on first use, so an IPv4 decision never pays for botocore's client machinery.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import app
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after_import(function: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TENANTS_", "BOUNCE", "TRACE_"))}
    env |= {
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "TENANTS_TABLE": "tenants",
        "IDEMPOTENCY_TABLE": "idem",
    }
    env |= {"BOUNCE_SENDER": "mailer-daemon@example.com", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO / "layers" / "ipv6gate"), str(REPO / "functions" / function)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("function", ["gate", "bouncer", "stack_setup"])
def test_no_xray_sdk_is_imported(function):
    modules = _modules_after_import(function)
    assert not {m for m in modules if m.split(".")[0] == "aws_xray_sdk"}


def test_gate_builds_no_aws_client_at_import():
    modules = _modules_after_import("gate")
    assert "botocore.client" not in modules
    assert "boto3" not in modules


CLIENT_PROBE = """
import json, sys
from ipv6gate.wiring import Clients, ses_bounce_client
clients = Clients("eu-west-1")
made = [type(clients.get(s)).__name__ for s in ("dynamodb", "s3", "sqs")] + [type(ses_bounce_client()).__name__]
print(json.dumps({"made": made, "modules": sorted(sys.modules)}))
"""


def test_aws_clients_come_without_boto3():
    """botocore makes the clients: ``import boto3`` would add s3transfer (a third of the imports of a cold decision)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "eu-west-1"}
    out = subprocess.run(
        [sys.executable, "-c", CLIENT_PROBE], capture_output=True, text=True, env=env, cwd=REPO, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout)
    assert found["made"] == ["DynamoDB", "S3", "SQS", "SES"]
    assert not {m for m in found["modules"] if m.split(".")[0] in ("boto3", "s3transfer")}
