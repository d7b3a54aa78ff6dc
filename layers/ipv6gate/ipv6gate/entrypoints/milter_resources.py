"""What one ``serve`` of the milter owns: its session count with a ceiling, and its thread pools.

Created when the server starts and shut down when it stops, so a process can start and stop a
server more than once (the tests do) and nothing is shared through module globals. Every thread
the milter adds to libmilter's own (one per SMTP connection, libmilter's) comes from a pool of a
size a setting names:

- ``steps``: RCPT, the one session step that calls AWS (the tenant lookup), runs here while
  libmilter's thread waits for it: libmilter's threads are not Python's, and awscrt crashed the
  process on them (the other steps call no AWS and run on libmilter's thread, no hop). Sized from
  ``MILTER_MAX_SESSIONS``, one per admitted session: a session has at most one step in flight, so
  no step ever waits in a queue behind another session's (each may wait up to the decision budget,
  and a queue of them would outlast Postfix's milter timeouts). Threads start only when needed;
- ``recorder`` (4): the trace write, log line and metrics after a reply. Its queue holds at most
  ``MILTER_MAX_SESSIONS`` decisions; past that a decision is not queued: ``on_unrecorded`` hears of
  it at once (the CLI logs the decision itself and counts ``DecisionsNotRecorded``), and the
  SMTP reply, already decided, is neither changed nor delayed;
- the check runner's pool (``MILTER_CHECK_THREADS``) and its DKIM readers (``MILTER_DKIM_READERS``),
  owned by the gate's ``CheckRunner``.

Past ``MILTER_MAX_SESSIONS`` sessions in flight a new one is refused at connect with ``421 4.3.2``
before anything starts for it (no PTR lookup, no step).
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable
from typing import Any

RECORDER_THREADS = 4


class Sessions:
    """SMTP connections in progress: admitted up to ``ceiling``; a stop can wait for them (bounded)."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self._open = 0
        self._changed = threading.Condition()

    def opened(self) -> bool:
        """Count a new connection; False when it is past the ceiling (it is counted all the same until closed)."""
        with self._changed:
            self._open += 1
            return self._open <= self.ceiling

    def closed(self) -> None:
        with self._changed:
            self._open -= 1
            self._changed.notify_all()

    @property
    def open(self) -> int:
        return self._open

    def drain(self, seconds: float) -> int:
        """Wait until none is open or ``seconds`` pass; how many are still open."""
        deadline = time.monotonic() + seconds
        with self._changed:
            while self._open > 0 and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            return self._open


class Resources:
    """A server's sessions and pools; ``close`` ends them (the recorder's queued work first)."""

    def __init__(
        self,
        *,
        max_sessions: int,
        on_busy: Callable[[str, Any], None] = lambda *_: None,
        on_unrecorded: Callable[[tuple[Any, ...]], None] = lambda _args: None,
    ) -> None:
        self.sessions = Sessions(max_sessions)
        self.busy = on_busy  # told of each temporary refusal at a ceiling: the setting's name, the reply
        self.unrecorded = on_unrecorded  # told of each work the full recorder queue did not take: its args
        self._steps = cf.ThreadPoolExecutor(max_workers=max_sessions, thread_name_prefix="ipv6gate-smtp")
        self._recorder = cf.ThreadPoolExecutor(max_workers=RECORDER_THREADS, thread_name_prefix="ipv6gate-record")
        self._recorder_room = threading.BoundedSemaphore(max_sessions)  # queued or running records

    def hop[T](self, step: Callable[..., T], *args: Any) -> T:
        """Run ``step`` on a step thread and wait for it (the caller is libmilter's thread)."""
        return self._steps.submit(step, *args).result()

    def after_reply(self, work: Callable[..., Any], *args: Any) -> bool:
        """Queue ``work(*args)`` for a recorder thread; never waits. False (and ``on_unrecorded``) when full."""
        if not self._recorder_room.acquire(blocking=False):
            self.unrecorded(args)
            return False
        try:
            self._recorder.submit(self._record, work, args)
        except RuntimeError:  # shut down already: a session that outlived the server's stop
            self._recorder_room.release()
            self.unrecorded(args)
            return False
        return True

    def _record(self, work: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            work(*args)
        finally:
            self._recorder_room.release()

    def close(self) -> None:
        self._recorder.shutdown(wait=True)  # the last decisions reach the trace and the log
        self._steps.shutdown(wait=False, cancel_futures=True)
