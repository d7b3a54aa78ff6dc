"""The pure parts of the local Lambda engine: reading SAM CLI's output, the apt mirror, the recipe key,
the host-network container options, and judging the bouncer's answers. No Docker needed."""

from __future__ import annotations

import importlib.util
import io
import json
import tarfile
from pathlib import Path

import dns.zone
import pytest

from devstack import lambda_image, local_lambda, scenarios, start_lambda
from devstack.docker_engine import EngineError

REPORT = (
    "END RequestId: 3f1c\n"
    "REPORT RequestId: 3f1c\tInit Duration: 2412.53 ms\tDuration: 310.77 ms\tBilled Duration: 311 ms\t"
    "Memory Size: 256 MB\tMax Memory Used: 88 MB\t\n"
)


def _invoke(stdout: str, stderr: str = "", code: int = 0) -> local_lambda.LocalInvoke:
    return local_lambda.LocalInvoke("e.json", code, stdout, stderr, 1.0)


def test_report_line_is_read() -> None:
    report = _invoke("{}", REPORT).report
    assert report == local_lambda.Report(init_ms=2412.53, duration_ms=310.77, memory_mb=256, max_memory_used_mb=88)
    warm = _invoke("{}", "REPORT RequestId: x\tDuration: 4.02 ms\tBilled Duration: 5 ms\tMemory Size: 128 MB\t").report
    assert warm is not None and warm.init_ms is None and warm.duration_ms == 4.02


def test_emulator_phase_lines_give_init_and_handler_time() -> None:
    # The emulator's REPORT folds an on-demand init into Duration; its debug lines split the two.
    cold = (
        "[INFO] (rapid) INIT REPORT(durationMs: 9894.818000)\n"
        "[INFO] (rapid) INVOKE RTDONE(status: success, produced bytes: 0, duration: 175.897000ms)\n"
        "REPORT RequestId: a\tInit Duration: 1.66 ms\tDuration: 10082.20 ms\tBilled Duration: 10083 ms\t"
        "Memory Size: 256 MB\tMax Memory Used: 256 MB\t\n"
    )
    warm = (
        "[INFO] (rapid) INVOKE RTDONE(status: success, produced bytes: 0, duration: 12.5ms)\n"
        "REPORT RequestId: b\tDuration: 14.02 ms\tBilled Duration: 15 ms\tMemory Size: 256 MB\t\n"
    )
    first, second = local_lambda.reports_in(cold + warm)
    assert (first.init_ms, first.duration_ms) == (9894.818, 175.897)
    assert (second.init_ms, second.duration_ms) == (None, 12.5)


def test_handler_error_is_an_error_although_sam_exits_0() -> None:
    failed = _invoke('{"errorType": "KeyError", "errorMessage": "\'Records\'"}')
    assert failed.error == "KeyError: 'Records'"
    assert _invoke('{"disposition": "CONTINUE"}').error is None
    assert "exited 1" in str(_invoke("", "Error: Docker is unreachable", code=1).error)
    assert "no JSON response" in str(_invoke("", "Invoking app.lambda_handler").error)


def test_log_lines_are_taken_from_the_container_output() -> None:
    decision = {"level": "INFO", "message": "decision", "decision": {"client_ip": "2001:db8::1", "recipients": []}}
    emf = {"_aws": {"CloudWatchMetrics": [{"Metrics": [{"Name": "Decisions"}]}]}, "Decisions": [1.0]}
    stderr = "\n".join(["Mounting /x as /var/task", json.dumps(decision), json.dumps(emf), REPORT])
    call = _invoke('{"disposition": "CONTINUE"}', stderr)
    assert call.logs("decision") == [decision]
    assert call.metrics() == {"Decisions": 1.0}
    outcome = call.outcome()
    assert outcome.disposition == "CONTINUE" and outcome.decision == decision["decision"]


def test_apt_mirror_comes_from_the_machines_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n",
        encoding="utf-8",
    )
    assert lambda_image.apt_mirror(tmp_path) == "http://mirror.invalid/debian"
    one_line = tmp_path / "one-line"
    (one_line / "sources.list.d").mkdir(parents=True)
    (one_line / "sources.list").write_text(
        "# comment\ndeb [signed-by=/k.gpg] http://other.invalid/debian bookworm main\n", encoding="utf-8"
    )
    assert lambda_image.apt_mirror(one_line) == "http://other.invalid/debian"
    empty = tmp_path / "empty"
    (empty / "sources.list.d").mkdir(parents=True)
    with pytest.raises(EngineError, match="no Debian archive"):
        lambda_image.apt_mirror(empty)


def test_recipe_change_changes_the_cache_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = lambda_image.recipe_hash("arm64")
    assert before != lambda_image.recipe_hash("x86_64")
    monkeypatch.setitem(lambda_image.RECIPE, "sdk_wheels", ["boto3==1.0.0"])
    assert lambda_image.recipe_hash("arm64") != before


def test_base_image_environment_matches_the_runtime() -> None:
    env = lambda_image.RECIPE["env"]
    assert env["LAMBDA_TASK_ROOT"] == "/var/task" and env["LAMBDA_RUNTIME_DIR"] == "/var/runtime"
    assert lambda_image.PYTHONPATH.split(":")[:3] == [
        "/var/task",
        "/opt/python/lib/python3.13/site-packages",
        "/opt/python",
    ]
    assert 'python3.13 -m awslambdaric "$_HANDLER"' in str(lambda_image.RECIPE["bootstrap"])
    assert any(w.startswith("boto3==") for w in lambda_image.RECIPE["sdk_wheels"])


def test_bouncer_cases_are_judged_on_failures_logs_and_metrics() -> None:
    [expired, *_] = local_lambda.bouncer_cases("us-east-1")
    logs = [
        {"level": "WARNING", "message": "bounce request expired; dropped"},
        {"level": "ERROR", "message": "malformed bounce request; the record fails"},
        {
            "_aws": {
                "CloudWatchMetrics": [{"Metrics": [{"Name": "BouncesExpired"}, {"Name": "MalformedBounceRequests"}]}]
            },
            "BouncesExpired": 1,
            "MalformedBounceRequests": 1,
        },
    ]
    stderr = "\n".join(json.dumps(r) for r in logs)
    good = _invoke(json.dumps({"batchItemFailures": [{"itemIdentifier": "sqs-malformed-1"}]}), stderr)
    assert local_lambda.judge_bouncer(expired, good) == []
    none_failed = _invoke(json.dumps({"batchItemFailures": []}), stderr)
    assert local_lambda.judge_bouncer(expired, none_failed) == ["batchItemFailures [] != expected ['sqs-malformed-1']"]
    body = json.loads(expired.bodies["sqs-expired-1"])
    assert body["reporting_mta"] == "dns; inbound-smtp.us-east-1.amazonaws.com"


def _fake_rootfs(path: Path) -> Path:
    """A few members as ``mmdebstrap --variant=extract`` writes them: unpacked, nothing configured."""
    files = {
        "./usr/lib/python3.13/json/__init__.py": b"VALUE = 1\n",
        "./usr/share/ca-certificates/mozilla/A.crt": b"-----A-----",
        "./usr/share/ca-certificates/mozilla/B.crt": b"-----B-----\n",
        "./var/runtime/stale": b"the runtime's folder comes from the wheels, not the packages",
    }
    with tarfile.open(path, "w") as out:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(payload), 1_700_000_000
            out.addfile(info, io.BytesIO(payload))
    return path


def test_base_image_layer_is_assembled_without_running_the_packages(tmp_path: Path) -> None:
    runtime, lang = tmp_path / "runtime", tmp_path / "lang"
    (runtime / "awslambdaric").mkdir(parents=True)
    (runtime / "bootstrap").write_text(str(lambda_image.RECIPE["bootstrap"]))
    (lang / "boto3").mkdir(parents=True)
    layer = lambda_image.assemble_layer(_fake_rootfs(tmp_path / "rootfs.tar"), runtime, lang, tmp_path / "work")
    with tarfile.open(layer) as tar:
        members = {m.name: m for m in tar}
        assert {n: members[f"./{n}"].linkname for n in ("bin", "lib", "sbin")} == {
            "bin": "usr/bin",
            "lib": "usr/lib",
            "sbin": "usr/sbin",
        }
        bundle = tar.extractfile("./etc/ssl/certs/ca-certificates.crt")
        assert bundle is not None and bundle.read() == b"-----A-----\n-----B-----\n"
        passwd = tar.extractfile("./etc/passwd")
        assert passwd is not None and passwd.read().startswith(b"root:x:0:0:")
        # The standard library's byte code, valid for the source as the image has it (its mtime).
        pyc = tar.extractfile("./usr/lib/python3.13/json/__pycache__/__init__.cpython-313.pyc")
        assert pyc is not None
        header = pyc.read(16)
        assert header[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(header[8:12], "little") == 1_700_000_000
        assert members["./usr/lib/python3.13/json/__pycache__/__init__.cpython-313.pyc"].uid == 0
        assert "./var/runtime/stale" not in members and "./var/runtime/bootstrap" in members
        assert "./var/lang/lib/python3.13/site-packages/boto3" in members


def test_bouncer_cases_bring_their_own_zone(tmp_path: Path) -> None:
    (tmp_path / "set" / "zones").mkdir(parents=True)
    (tmp_path / "set" / "zones" / "store.example.zone").write_text("; the set's\n")
    chosen = scenarios.ScenarioSet(tmp_path / "set", [], {})
    served = local_lambda.zones_with(chosen, local_lambda.BOUNCER_ZONES, tmp_path / "served")
    assert sorted(p.name for p in served.iterdir()) == ["bounce-sender.test.zone", "store.example.zone"]
    zone = dns.zone.from_text((served / "bounce-sender.test.zone").read_text(), check_origin=True)
    sender = json.loads(local_lambda.bouncer_cases("eu-west-1")[2].bodies["sqs-deferred-1"])["mail_from"]
    assert zone.origin is not None and sender.endswith("@" + zone.origin.to_text(omit_final_dot=True))
    [spf] = [r.to_text() for r in zone.find_rdataset("@", "TXT")]
    assert "-all" in spf and "2001:db8:bad::" not in spf  # a definite fail for the queued bounce's client
    (tmp_path / "set" / "zones" / "bounce-sender.test.zone").write_text("; the set's own\n")
    with pytest.raises(scenarios.ScenarioError, match=r"bounce-sender\.test\.zone is the bouncer's"):
        local_lambda.zones_with(chosen, local_lambda.BOUNCER_ZONES, tmp_path / "again")


def test_one_invocations_output_ends_with_its_report_line() -> None:
    output = "START RequestId: a\n{}\nEND RequestId: a\n" + REPORT + "START RequestId: b\n"
    assert output[: start_lambda._report_end(output)].endswith("Max Memory Used: 88 MB\t\n")
    assert start_lambda._report_end("START RequestId: a\nREPORT RequestId: a\tDuration: 1") == -1
    assert start_lambda._report_end("START RequestId: a\n") == -1
