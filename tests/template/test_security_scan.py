"""The security scan (``make security``: checkov on template.yaml and its SAM translation, cfn-lint -I).

Runs ``scripts/security_scan.py`` as the make target does. It creates ``.venv-security`` with the
pinned checkov when it is missing (about a minute on a fresh machine), so this test never skips.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devstack.sam_template import load_template

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "security_scan.py"
TIMEOUT = 1200  # venv creation and checkov's install on a fresh machine, then four scans


def run_scan(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.security_scan", "--json", str(report_path), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=TIMEOUT,
        check=False,
    )
    assert report_path.exists(), f"no report (exit {proc.returncode}):\n{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}"
    return proc, json.loads(report_path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def clean_scan(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    return run_scan(tmp_path_factory.mktemp("security"))


def test_template_has_no_unjustified_findings(clean_scan):
    proc, report = clean_scan
    assert report["problems"] == [], "\n".join(report["problems"])
    assert report["cfn_lint"] == [], "\n".join(report["cfn_lint"])
    assert report["ok"] is True
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not [f for f in report["findings"] if f["status"] == "failed"]


def test_checkov_is_the_pinned_version(clean_scan):
    _, report = clean_scan
    pin = re.search(r'^CHECKOV_VERSION = "([0-9.]+)"$', SCRIPT.read_text(encoding="utf-8"), re.M)
    assert pin, "CHECKOV_VERSION pin missing from the script"
    assert report["checkov_version"] == pin.group(1)
    assert pin.group(1).startswith("3.")


def test_both_scans_ran_checks(clean_scan):
    """Not vacuous: both the template and the SAM translation were parsed and checked."""
    _, report = clean_scan
    assert set(report["summaries"]) == {"template", "sam-translated"}
    for name, summary in report["summaries"].items():
        assert summary["parsing_errors"] == 0, name
        assert summary["resource_count"] >= 20, (name, summary)
        assert summary["passed"] >= 15, (name, summary)
    translated = {f["resource"] for f in report["findings"] if f["scan"] == "sam-translated"}
    # generated AWS::Lambda::Function resources, including the stack-setup function
    assert "AWS::Lambda::Function.GateFunction" in translated
    assert "AWS::Lambda::Function.StackSetupFunction" in translated


def test_every_justification_has_a_reason(clean_scan):
    _, report = clean_scan
    skipped = [f for f in report["findings"] if f["status"] == "skipped"]
    assert skipped, "expected the documented skips (DLQ, VPC, customer KMS keys, ...)"
    for finding in skipped:
        assert len(finding["reason"]) >= 40, finding


def test_docs_list_every_justified_check(clean_scan):
    _, report = clean_scan
    section = (REPO / "docs" / "security.md").read_text(encoding="utf-8")
    assert section.startswith("# Security findings")
    missing = sorted({f["check_id"] for f in report["findings"]} - set(re.findall(r"CKV_AWS_\d+", section)))
    assert not missing, f"docs/security.md does not list {missing}"


def test_unjustified_and_stale_skips_fail_the_scan(tmp_path):
    template = load_template()
    del template["Resources"]["GateFunction"]["Metadata"]  # its skips (DLQ, concurrency, VPC, env KMS)
    bucket = template["Resources"]["MessageBucket"]
    bucket["Metadata"]["checkov"]["skip"].append({"id": "CKV_AWS_999", "comment": "no such check on an S3 bucket"})
    broken = tmp_path / "template.json"
    broken.write_text(json.dumps(template, indent=1), encoding="utf-8")

    proc, report = run_scan(tmp_path, "--template", str(broken))

    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report["ok"] is False
    problems = "\n".join(report["problems"])
    assert "[template] CKV_AWS_116 AWS::Serverless::Function.GateFunction" in problems
    assert "[sam-translated] CKV_AWS_116 AWS::Lambda::Function.GateFunction" in problems
    assert "stale skip CKV_AWS_999 on MessageBucket" in problems
    # the other functions keep their justifications
    assert "BouncerFunction" not in problems
