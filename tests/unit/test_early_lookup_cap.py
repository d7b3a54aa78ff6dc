"""Keys asked early share the checks' pool with every session's PTR and SPF: they may take a quarter of it."""

from __future__ import annotations

import concurrent.futures as cf
import threading

import pytest

from ipv6gate.evaluation.runner import BoundedSubmit


def test_past_its_limit_nothing_starts_and_a_finished_task_frees_its_slot() -> None:
    release = threading.Event()
    with cf.ThreadPoolExecutor(max_workers=4) as pool:
        bounded = BoundedSubmit(pool, 2)
        held = [bounded.submit(release.wait, 5.0) for _ in range(2)]
        with pytest.raises(RuntimeError, match="at their limit"):
            bounded.submit(release.wait, 5.0)
        release.set()
        assert all(f.result(timeout=5) for f in held)
        cf.wait(held)
        assert bounded.submit(lambda: "again").result(timeout=5) == "again"


def test_a_cancelled_task_frees_its_slot_and_a_refused_submit_takes_none() -> None:
    busy = threading.Event()
    pool = cf.ThreadPoolExecutor(max_workers=1)
    pool.submit(busy.wait, 5.0)  # the one thread is taken: the next task queues
    bounded = BoundedSubmit(pool, 1)
    queued = bounded.submit(lambda: None)
    assert queued.cancel()
    assert bounded.submit(lambda: "after cancel").cancel()  # the slot came back with the cancel
    busy.set()
    pool.shutdown(wait=True)
    for _ in range(2):  # a pool that takes no more work refuses; the slot is not kept by the refusal
        with pytest.raises(RuntimeError, match="shutdown"):
            bounded.submit(lambda: None)
