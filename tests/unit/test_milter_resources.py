"""The milter server's own resources: the session ceiling, pools that start and end with the server,
and the check runner's bounded DKIM readers."""

from __future__ import annotations

import threading
import time

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
        resources = Resources(max_sessions=3)
        assert [resources.hop(lambda i: i * 2, i) for i in range(10)] == list(range(0, 20, 2))
        done = threading.Event()
        assert resources.after_reply(done.set)
        assert done.wait(5)
        assert ours() and len([n for n in ours() if n.startswith("ipv6gate-smtp")]) <= 3
        resources.close()
        for t in threading.enumerate():
            if t.name.startswith(("ipv6gate-smtp", "ipv6gate-record")):
                t.join(5)
        assert not ours()


def test_every_admitted_session_gets_a_step_thread_without_waiting_for_another() -> None:
    """Step threads are sized from MILTER_MAX_SESSIONS: as many sessions as are admitted can each wait in
    a step at once (a RCPT waiting for its PTR), and none queues behind another's wait."""
    resources = Resources(max_sessions=6)
    waiting = threading.Barrier(6 + 1)
    release = threading.Event()

    def step() -> bool:
        waiting.wait(5)  # breaks (BrokenBarrierError) unless all six steps run at the same time
        return release.wait(5)

    sessions = [threading.Thread(target=resources.hop, args=(step,)) for _ in range(6)]
    for session in sessions:
        session.start()
    waiting.wait(5)
    release.set()
    for session in sessions:
        session.join(5)
    resources.close()


def test_a_full_recorder_queue_drops_the_record_at_once_and_says_which() -> None:
    """At most MILTER_MAX_SESSIONS records queued or running; the next is not queued, never waited for,
    and on_unrecorded gets its arguments (the CLI logs that decision and counts it)."""
    dropped: list[tuple[object, ...]] = []
    resources = Resources(max_sessions=5, on_unrecorded=dropped.append)
    release = threading.Event()
    done: list[int] = []

    def record(n: int) -> None:
        release.wait(5)
        done.append(n)

    assert all(resources.after_reply(record, n) for n in range(5))
    started = time.monotonic()
    assert not resources.after_reply(record, 5)
    assert time.monotonic() - started < 0.5 and dropped == [(5,)]
    release.set()
    resources.close()
    assert sorted(done) == [0, 1, 2, 3, 4]
    # Room again once the queue drains; after close nothing is queued and the caller is told.
    assert not resources.after_reply(record, 6) and dropped[-1] == (6,)


def test_room_comes_back_as_records_finish() -> None:
    resources = Resources(max_sessions=1)
    finished = [threading.Event() for _ in range(3)]
    for event in finished:
        deadline = time.monotonic() + 5
        while not resources.after_reply(event.set):  # the room is given back just after the work returns
            assert time.monotonic() < deadline, "the recorder queue stayed full"
            time.sleep(0.01)
        assert event.wait(5)
    resources.close()


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
