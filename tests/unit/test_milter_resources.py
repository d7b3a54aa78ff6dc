"""The milter server's own resources: the session ceiling, pools that start and end with the server,
and the check runner's bounded DKIM readers."""

from __future__ import annotations

import threading

import pytest

from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.dns import DnsResolver
from ipv6gate.entrypoints.milter_resources import Resources, Sessions
from ipv6gate.evaluation.runner import CheckRunner, RunnerBusy


def test_sessions_past_the_ceiling_are_refused_until_one_closes() -> None:
    sessions = Sessions(2)
    assert sessions.opened() and sessions.opened()
    assert not sessions.opened()  # the third, counted until libmilter closes it
    sessions.closed()
    sessions.closed()
    assert sessions.opened()
    assert sessions.open == 2


def test_resources_start_and_end_with_each_server_more_than_once() -> None:
    def ours() -> set[str]:
        return {t.name for t in threading.enumerate() if t.name.startswith(("ipv6gate-smtp", "ipv6gate-record"))}

    assert not ours()
    for _ in range(2):
        resources = Resources(max_sessions=10, step_threads=3)
        assert [resources.hop(lambda i: i * 2, i) for i in range(10)] == list(range(0, 20, 2))
        done = threading.Event()
        resources.after_reply(done.set)
        assert done.wait(5)
        assert ours() and len([n for n in ours() if n.startswith("ipv6gate-smtp")]) <= 3
        resources.close()
        for t in threading.enumerate():
            if t.name.startswith(("ipv6gate-smtp", "ipv6gate-record")):
                t.join(5)
        assert not ours()


def test_a_dkim_reader_is_taken_or_refused_at_once_never_queued(resolver: DnsResolver) -> None:
    from ipv6gate.dns import Deadline

    runner = CheckRunner(resolver, max_workers=2, readers=2)
    release = threading.Event()

    def reading(_session: object) -> CheckResult:
        release.wait(10)
        return CheckResult("dkim", Result.PASS, "")

    first = runner.start("dkim", reading, Deadline(5), reader=True)
    second = runner.start("dkim", reading, Deadline(5), reader=True)
    with pytest.raises(RunnerBusy):
        runner.start("dkim", reading, Deadline(5), reader=True)
    release.set()
    assert first.future.result(5).result is Result.PASS and second.future.result(5).result is Result.PASS
    third = runner.start("dkim", reading, Deadline(5), reader=True)  # free again
    assert third.future.result(5).result is Result.PASS
    runner.shutdown()
