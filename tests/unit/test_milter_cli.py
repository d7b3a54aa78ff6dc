"""`ipv6gate milter`: where it listens, and bad configuration as one line."""

from __future__ import annotations

import concurrent.futures as cf
import io
import ipaddress
import json
import sys
import time

import pytest

from ipv6gate.entrypoints.cli import main
from ipv6gate.entrypoints.milter_cli import socket_spec
from ipv6gate.settings import MilterSettings, SettingsError


@pytest.mark.parametrize(
    ("listen", "spec"),
    [
        ("127.0.0.1:8894", "inet:8894@127.0.0.1"),
        ("[::1]:8894", "inet6:8894@[::1]"),
        ("localhost:25", "inet:25@localhost"),
        ("unix:/run/ipv6gate/milter.sock", "unix:/run/ipv6gate/milter.sock"),
    ],
)
def test_listen_forms(listen: str, spec: str) -> None:
    assert socket_spec(listen) == spec


@pytest.mark.parametrize("listen", ["8894", "127.0.0.1", "[::1]", "[::zz]:25", "1.2.3.4:0", "1.2.3.4:70000", "unix:"])
def test_bad_listen_is_bad_input_in_one_line(listen: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["milter", "--listen", listen]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ipv6gate milter: ") and err.count("\n") == 1


def test_bad_milter_setting_names_it(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MILTER_MAX_RECIPIENTS", "0")
    assert main(["milter", "--listen", "127.0.0.1:8894"]) == 2
    assert "MILTER_MAX_RECIPIENTS: 0 is outside 1..10000" in capsys.readouterr().err


def test_authserv_id_defaults_to_the_host_and_must_be_a_name() -> None:
    assert MilterSettings.from_env({}, hostname="MX1.Example.NET").authserv_id == "mx1.example.net"
    assert MilterSettings.from_env({"MILTER_AUTHSERV_ID": "mx.example.org"}).authserv_id == "mx.example.org"
    with pytest.raises(SettingsError, match="MILTER_AUTHSERV_ID"):
        MilterSettings.from_env({"MILTER_AUTHSERV_ID": "mx example;org"})


def test_no_region_fails_the_start_instead_of_accepting_every_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("TENANTS_TABLE", "tenants")
    assert main(["milter", "--listen", "127.0.0.1:8894"]) == 2
    err = capsys.readouterr().err
    assert "no AWS region" in err and err.count("\n") == 1


def test_a_socket_it_cannot_open_is_one_line(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    tenants = tmp_path / "tenants.json"
    tenants.write_text('[{"domain": "example.com", "ipv6_inbound": true}]')
    assert main(["milter", "--listen", f"unix:{tmp_path}/no/such/dir/milter.sock", "--tenants", str(tenants)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ipv6gate milter: configuration: cannot listen on unix:") and err.count("\n") == 1


class _SlowStdout(io.StringIO):
    """stdout that gives the other threads their turn after every write (as a full buffer's flush does)."""

    def write(self, text: str) -> int:
        written = super().write(text)
        time.sleep(0.0002)
        return written


def test_decision_and_emf_lines_are_never_interleaved(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decisions are reported from several threads at once: every line written must stay whole JSON.
    (Metrics' ``print`` writes the EMF text and its newline separately; measured through Postfix, a
    decision line from another thread landed between them and was lost to a log reader.)"""
    from aws_lambda_powertools import Logger, Metrics

    from ipv6gate.checks.results import CheckResult, Result
    from ipv6gate.decision import replies
    from ipv6gate.decision.rule import Checks, Disposition, RecipientVerdict, Verdict
    from ipv6gate.entrypoints.milter_cli import decision_publisher
    from ipv6gate.entrypoints.telemetry import log_json
    from ipv6gate.evaluation.record import Decision
    from ipv6gate.mail.source import Source

    out = _SlowStdout()
    monkeypatch.setattr(sys, "stdout", out)  # where Metrics prints its EMF lines
    logger = Logger(service="interleave-test", stream=out, json_serializer=log_json)
    publish = decision_publisher(logger, Metrics(namespace="Test", service="interleave-test"))
    checks = Checks(*(CheckResult(m, Result.FAIL, "") for m in ("iprev", "spf", "dkim")))
    verdict = RecipientVerdict("a@t.test", Verdict.REJECT, replies.ipv6_not_accepted("t.test"), "not a tenant")
    source = Source(ipaddress.IPv6Address("2001:db8::25"), "mail.example", "mx")
    decisions = [Decision(f"m{i}", source, Disposition.STOP_RULE_SET, [verdict], checks) for i in range(200)]
    with cf.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(publish, decisions))
    parsed = [json.loads(line) for line in out.getvalue().splitlines()]  # a broken line raises here
    assert sum(1 for p in parsed if p.get("message") == "decision") == 200
    assert sum(1 for p in parsed if "_aws" in p) == 200


def test_a_decision_the_recorder_could_not_take_is_logged_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recorder queue full: the decision (with its replies) is still one log line, and DecisionsNotRecorded
    is counted; nothing else is needed to know what the session was told."""
    from aws_lambda_powertools import Logger, Metrics

    from ipv6gate.checks.results import CheckResult, Result
    from ipv6gate.decision import replies
    from ipv6gate.decision.rule import Checks, Disposition, RecipientVerdict, Verdict
    from ipv6gate.entrypoints.milter_cli import publish_lock, unrecorded
    from ipv6gate.entrypoints.telemetry import log_json
    from ipv6gate.evaluation.record import Decision
    from ipv6gate.mail.source import Source
    from ipv6gate.metric_names import DECISIONS_NOT_RECORDED

    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    logger = Logger(service="unrecorded-test", stream=out, json_serializer=log_json)
    report = unrecorded(logger, Metrics(namespace="Test", service="unrecorded-test"), publish_lock(logger))
    checks = Checks(*(CheckResult(m, Result.FAIL, "") for m in ("iprev", "spf", "dkim")))
    verdict = RecipientVerdict("a@t.test", Verdict.REJECT, replies.ipv6_not_accepted("t.test"), "not a tenant")
    source = Source(ipaddress.IPv6Address("2001:db8::25"), "mail.example", "mx")
    report(Decision("q1", source, Disposition.STOP_RULE_SET, [verdict], checks))
    line, emf = (json.loads(x) for x in out.getvalue().splitlines())
    assert line["level"] == "WARNING" and "recorder queue is full" in line["message"]
    assert line["message_id"] == "q1"
    assert line["decision"]["recipients"][0]["reply"].startswith("550 5.2.1")
    assert emf[DECISIONS_NOT_RECORDED] == [1.0] or emf[DECISIONS_NOT_RECORDED] == 1.0


def test_a_retired_variable_fails_the_start_instead_of_being_ignored():
    with pytest.raises(SettingsError, match=r"^MILTER_STEP_THREADS: no longer read; .*MILTER_MAX_SESSIONS"):
        MilterSettings.from_env({"MILTER_STEP_THREADS": "128"})
    assert MilterSettings.from_env({"MILTER_STEP_THREADS": " "}).max_sessions > 0
