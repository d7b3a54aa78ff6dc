"""``make sandbox``: the printed exports point the installed CLI at moto with the template's tables.

Started as a newcomer would (``python -m scripts.sandbox``), then ``tenants``, ``evaluate --record``
and ``trace`` run against it as subprocesses with only the printed environment; Ctrl-C ends it.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.sandbox import READY

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("ipv6gate"))
EXPECTED = json.loads((REPO / "events" / "expected.json").read_text())


class Sandbox:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.seen):
            try:
                self.seen.append(self.lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"sandbox never printed {text!r}; output:\n" + "\n".join(self.seen)) from None

    def exports(self) -> dict[str, str]:
        pairs = (shlex.split(line.removeprefix("export "))[0] for line in self.seen if line.startswith("export "))
        return dict(pair.split("=", 1) for pair in pairs)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    home = tmp_path_factory.mktemp("home")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.sandbox"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        box = Sandbox(proc)
        box.wait_for(READY)
        yield box
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def cli(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **sandbox.exports()}
    return subprocess.run([CLI, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_exports_name_the_templates_tables_and_the_zone_files(sandbox: Sandbox) -> None:
    exported = sandbox.exports()
    assert exported["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert exported["TENANTS_TABLE"] and exported["TRACE_TABLE"] and exported["MESSAGE_BUCKET"]
    assert exported["DNS_ZONE_DIR"] == str(REPO / "events" / "zones")
    assert exported["AWS_ACCESS_KEY_ID"] == "testing"


def test_tenants_evaluate_record_and_trace_against_the_sandbox(sandbox: Sandbox) -> None:
    listed = cli(sandbox, "tenants", "list")
    assert listed.returncode == 0 and listed.stdout.split() == ["example.com", "example.net", "example.org"]

    events = sorted(str(p) for p in (REPO / "events").glob("ipv*.json"))
    evaluated = cli(sandbox, "evaluate", *events, "--record")
    assert evaluated.returncode == 0 and evaluated.stderr == ""
    decisions = {Path(d["event"]).name: d for d in map(json.loads, evaluated.stdout.splitlines())}
    for name, want in EXPECTED.items():  # tenants from the table, raw messages from the bucket
        assert decisions[name]["disposition"] == want["disposition"], name
        assert decisions[name]["faults"] == [], name
    assert decisions["ipv6-dkim-only.json"]["checks"]["dkim"]["result"] == "pass"

    no_ptr = EXPECTED["ipv6-no-ptr.json"]["message_id"]
    traced = cli(sandbox, "trace", no_ptr)
    assert traced.returncode == 0, traced.stderr
    record = json.loads(traced.stdout)
    assert record["message_id"] == no_ptr and record["recipients"][0]["reply"].startswith("450 4.7.25")
    assert record["bounce"]["action"] == "none"  # the sandbox has no bounce queue: nothing was queued

    by_domain = [json.loads(line) for line in cli(sandbox, "trace", "--domain", "example.com").stdout.splitlines()]
    assert no_ptr in {s["message_id"] for s in by_domain}
    ipv4 = cli(sandbox, "trace", EXPECTED["ipv4-sender.json"]["message_id"])
    assert ipv4.returncode == 4 and "no recorded decision" in ipv4.stderr


def test_tenant_changes_reach_the_next_evaluation(sandbox: Sandbox) -> None:
    event = str(REPO / "events" / "ipv6-tenant-not-opted-in.json")  # PTR and SPF fine, to example.net
    before = json.loads(cli(sandbox, "evaluate", event).stdout)["recipients"][0]
    assert before["reply"].startswith("550 5.2.1")
    assert cli(sandbox, "tenants", "enable", "example.net").returncode == 0
    out = cli(sandbox, "evaluate", event)
    after = json.loads(out.stdout)["recipients"][0]
    assert out.returncode == 0 and after["verdict"] == "accept" and after["reply"] is None
    assert cli(sandbox, "tenants", "disable", "example.net").returncode == 0


def test_the_example_commands_work_as_printed_without_the_venv_on_path(sandbox: Sandbox) -> None:
    # Last but one: the examples end by switching example.com to monitor mode.
    start = sandbox.seen.index("then, for example:")
    examples = [line.strip() for line in sandbox.seen[start + 1 :] if line.startswith("  ")]
    assert examples and all(line.startswith(".venv/bin/ipv6gate ") for line in examples), examples
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), **sandbox.exports()}
    for line in examples:
        out = subprocess.run(
            ["sh", "-c", line], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert out.returncode == 0 and out.stderr == "", (line, out.stderr)


def test_ctrl_c_stops_it(sandbox: Sandbox) -> None:
    sandbox.proc.send_signal(signal.SIGINT)
    assert sandbox.proc.wait(timeout=30) == 0
    sandbox.wait_for("sandbox stopped", timeout=5)
