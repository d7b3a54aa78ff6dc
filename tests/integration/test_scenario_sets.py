"""Scenario sets other than ``events/`` (``make demo SCENARIOS=<dir>``, ``make local SCENARIOS=<dir>``).

A second set is generated in a temporary folder: two of the demo's events as if SES had received
them in us-east-1 (its ``Received`` header names ``inbound-smtp.us-east-1.amazonaws.com``), with a
``settings.json`` giving that region and a gate setting. It runs through ``scripts/demo.py`` (what
``make demo`` runs) against moto and Knot. Without the region the gate would not trust the header
(no client address: accepted), so a pass shows the set's region reached the function.

Bad sets fail before anything starts: one line on stderr naming the problem, exit 2, no traceback,
for ``scripts/demo.py``, ``scripts/local.py`` and ``scripts/deploy_rehearsal.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import sam_template
from devstack.scenarios import EVENTS_DIR

pytestmark = pytest.mark.integration

REPO = sam_template.REPO
EVENTS = EVENTS_DIR
PICKED = ("ipv6-no-ptr.json", "ipv6-spf-pass.json")


def _us_east_1_set(target: Path, *, settings: dict[str, object] | None) -> Path:
    target.mkdir(parents=True)
    shutil.copytree(EVENTS / "zones", target / "zones")
    shutil.copy(EVENTS / "tenants.json", target / "tenants.json")
    expected = json.loads((EVENTS / "expected.json").read_text(encoding="utf-8"))
    for name in PICKED:
        text = (EVENTS / name).read_text(encoding="utf-8")
        assert "eu-west-1" in text
        (target / name).write_text(text.replace("eu-west-1", "us-east-1"), encoding="utf-8")
    (target / "expected.json").write_text(json.dumps({n: expected[n] for n in PICKED}), encoding="utf-8")
    if settings is not None:
        (target / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    return target


def _run(script: str, scenarios: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"scripts.{script.removesuffix('.py')}", "--scenarios", str(scenarios)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_demo_runs_a_us_east_1_set_with_its_settings(tmp_path: Path) -> None:
    scenarios = _us_east_1_set(
        tmp_path / "us-east-1", settings={"region": "us-east-1", "environment": {"PTR_MODE": "fcrdns"}}
    )
    proc = _run("demo.py", scenarios)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "region us-east-1" in proc.stdout
    assert "settings.json: {'PTR_MODE': 'fcrdns'}" in proc.stdout
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith(PICKED)]
    assert len(rows) == 2 and all(" ok " in row for row in rows), rows
    assert "450 4.7.25" in next(r for r in rows if r.startswith("ipv6-no-ptr.json"))


def test_without_its_region_the_same_set_mismatches(tmp_path: Path) -> None:
    # Received in us-east-1 but judged as eu-west-1: SES's header is not trusted, the client unknown.
    scenarios = _us_east_1_set(tmp_path / "no-region", settings=None)
    proc = _run("demo.py", scenarios)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "MISMATCH ipv6-no-ptr.json: disposition CONTINUE != expected STOP_RULE_SET" in proc.stderr


def _bad_sets(tmp_path: Path) -> list[tuple[Path, str]]:
    cases: list[tuple[Path, str]] = [(tmp_path / "nowhere", "no such directory")]
    no_expected = _us_east_1_set(tmp_path / "no-expected", settings=None)
    (no_expected / "expected.json").unlink()
    cases.append((no_expected, "expected.json is missing"))
    malformed = _us_east_1_set(tmp_path / "malformed", settings=None)
    (malformed / "settings.json").write_text('{"region": "us-east-1",', encoding="utf-8")
    cases.append((malformed, "settings.json: not valid JSON"))
    unknown = _us_east_1_set(tmp_path / "unknown", settings={"environment": {"PTR_MOD": "fcrdns"}})
    cases.append((unknown, "unknown setting 'PTR_MOD'"))
    bad_region = _us_east_1_set(tmp_path / "bad-region", settings={"region": "mars-1"})
    cases.append((bad_region, "region 'mars-1' is not an AWS region name"))
    stack_owned = _us_east_1_set(tmp_path / "stack-owned", settings={"environment": {"DNS_SERVERS": "192.0.2.1"}})
    cases.append((stack_owned, "DNS_SERVERS is set by the local stack"))
    return cases


@pytest.mark.parametrize("script", ["demo.py", "local.py", "deploy_rehearsal.py"])
def test_a_bad_set_is_one_line_and_exit_2(tmp_path: Path, script: str) -> None:
    for scenarios, message in _bad_sets(tmp_path / script):
        proc = _run(script, scenarios, timeout=60)
        assert proc.returncode == 2, (scenarios, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (message, proc.stderr)
