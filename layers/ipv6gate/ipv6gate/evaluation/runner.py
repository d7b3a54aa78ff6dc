"""The check runner: a decision's checks on a small thread pool, until the policy says the verdict is certain.

One deadline for all checks, but a DNS session (and query cap) each: a sender's SPF record, which it
writes itself, must not be able to spend the queries the PTR lookup needs. When the runner stops
waiting, every session is cancelled, so a check still running stops at its next DNS query, and a
DKIM check stops reading its message (``until_cancelled``).

The ``Evaluator`` starts each check when its input is known (``start``: for the SES door all at
once; for the SMTP door PTR at connect, SPF at MAIL FROM, DKIM at the end of the headers) and
collects them as the decision needs them (``collect``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.dns import Deadline, DnsResolver, DnsSession

if TYPE_CHECKING:  # the checks' stream protocol, named in annotations only (no dkimpy at cold start)
    from ipv6gate.checks.dkim_body import ByteStream

#: A check: given its own DNS session, its result. Runs on a pool thread.
Check = Callable[[DnsSession], CheckResult]
#: The policy's question: are the verdicts certain from these results, whatever the others say?
Certain = Callable[[Mapping[str, CheckResult]], bool]

GRACE_SECONDS = 2.0  # beyond the DNS budget, for CPU work such as hashing a large body


@dataclass(frozen=True, slots=True)
class Running:
    """A started check: its future, its own DNS session and the deadline it was given."""

    name: str
    future: cf.Future[CheckResult]
    session: DnsSession
    deadline: Deadline

    def peek(self) -> CheckResult | None:
        """The result when the check has finished, without waiting."""
        return _outcome(self.name, self.future) if self.future.done() else None


class RunnerBusy(Exception):
    """Every DKIM reader is taken: the message cannot be checked now (the milter answers 451 4.3.2)."""


class BoundedSubmit:
    """A pool's ``submit`` while fewer than ``limit`` of the tasks it started are unfinished; past that
    it raises ``RuntimeError`` (what a pool that takes no more work raises) and starts nothing.

    For DKIM keys asked early (the milter): a sender chooses their names, and they run on the pool
    every session's PTR and SPF lookups need, so they get a quarter of it; without a slot the DKIM
    check asks its key itself, on its own reader."""

    def __init__(self, pool: cf.ThreadPoolExecutor, limit: int) -> None:
        self._pool = pool
        self._slots = threading.BoundedSemaphore(limit)

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> cf.Future[Any]:
        if not self._slots.acquire(blocking=False):
            raise RuntimeError("early lookups at their limit")
        try:
            future = self._pool.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _done: self._slots.release())  # also when cancelled
        return future


def _check_pool(max_workers: int, prestart: bool) -> cf.ThreadPoolExecutor:
    """The checks' pool. Lambda: room for a decision's checks plus stragglers of an earlier one that
    are winding down; the milter sizes it for its concurrent sessions."""
    pool = cf.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ipv6gate-check")
    if prestart:  # every thread now (a cold start), not in the first decisions: each task waits for all
        everyone = threading.Barrier(max_workers, timeout=5.0)
        for _ in range(max_workers):
            pool.submit(_arrive, everyone)
    return pool


class CheckRunner:
    """Long-lived (one per cold start or process): the thread pool the checks of every decision share,
    and for the milter a bounded set of DKIM readers."""

    def __init__(
        self,
        dns: DnsResolver,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_workers: int = 6,
        readers: int = 0,
        prestart: bool = False,
    ) -> None:
        self.dns = dns
        self.clock = clock
        self._pool = _check_pool(max_workers, prestart)
        self._early = BoundedSubmit(self._pool, max(1, max_workers // 4))  # early keys: a quarter, at most
        # The milter's DKIM checks read the body as the client sends it, which may take minutes: they
        # get readers of their own, never a pool thread that other sessions' PTR and SPF lookups
        # wait for. A reader is taken or refused at once (never queued: a queued reader would leave
        # the session's writer waiting on a pipe nobody reads).
        self._readers = (
            cf.ThreadPoolExecutor(max_workers=readers, thread_name_prefix="ipv6gate-dkim") if readers else None
        )
        self._free_readers = threading.BoundedSemaphore(readers) if readers else None

    def start(
        self, name: str, check: Check, deadline: Deadline, *, reader: bool = False, session: DnsSession | None = None
    ) -> Running:
        """Start ``check`` on the pool, or with ``reader`` on a free DKIM reader (``RunnerBusy`` when none is).

        ``session``: a DNS session opened earlier for this check (lookups asked ahead in it), else a new one.
        """
        if not reader:
            session = session or self.dns.session(deadline)
            return Running(name, self._pool.submit(check, session), session, deadline)
        if self._readers is None or self._free_readers is None:
            raise RuntimeError("this runner has no readers")
        if not self._free_readers.acquire(blocking=False):
            raise RunnerBusy(name)
        free = self._free_readers

        def read(session: DnsSession) -> CheckResult:
            try:
                return check(session)
            finally:
                free.release()  # before the result is seen: a session that waited for it may start another

        session = session or self.dns.session(deadline)
        try:
            return Running(name, self._readers.submit(read, session), session, deadline)
        except BaseException:
            free.release()
            raise

    def ask_txt_early(self, session: DnsSession, name: str) -> None:
        """A TXT lookup in ``session`` started now on the pool, for a check that will ask it later."""
        session.ask_txt_early(name, self._early.submit)  # none free: the DKIM check asks it itself

    def shutdown(self) -> None:
        """End the threads (a stopped server): checks still running are no longer waited for."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._readers is not None:
            self._readers.shutdown(wait=False, cancel_futures=True)

    def collect(
        self,
        running: Iterable[Running],
        certain: Certain | None,
        known: Mapping[str, CheckResult] | None = None,
        *,
        keep: Running | None = None,
    ) -> dict[str, CheckResult]:
        """The results of ``running``, waiting until ``certain(known + results)`` or each check's deadline.

        Then every one of them still running is cancelled: it is left out when the verdict no longer
        needs it (``Checks.of`` records it as skipped), else ``temperror``; one that raised is
        ``temperror`` (a bug must not reject mail). Checks not passed in are left alone (the milter's
        SPF while a RCPT waits for the PTR), and so is ``keep`` (the milter's PTR lookup, which
        outlives a transaction).
        """
        futures = {r.future: r for r in running}
        known = dict(known or {})
        results: dict[str, CheckResult] = {}

        def take(done: Iterable[cf.Future[CheckResult]]) -> bool:
            """Add the results of ``done``; whether the verdicts are now certain (the policy is asked
            once per new set of results: it tries every completion of the missing ones)."""
            for future in done:
                results[futures[future].name] = _outcome(futures[future].name, future)
            return certain is not None and certain(known | results)

        budget = max((r.deadline.remaining() for r in futures.values()), default=0.0)
        give_up = self.clock() + max(0.0, budget) + GRACE_SECONDS
        finished = {f for f in futures if f.done()}  # e.g. run in the calling thread: no wait needed
        pending = set(futures) - finished
        decided = take(finished)
        while pending and not decided:
            done, pending = cf.wait(pending, timeout=max(0.0, give_up - self.clock()), return_when=cf.FIRST_COMPLETED)
            if not done:
                break
            decided = take(done)
        for future in pending:
            if futures[future] is not keep:
                futures[future].session.cancel()
        late = [f for f in pending if f.done()]  # finished while the sessions were cancelled
        if late:
            decided = take(late)
        if decided:
            return results
        for future in pending:
            name = futures[future].name
            if name not in results:
                results[name] = CheckResult(name, Result.TEMPERROR, "check did not finish within the decision budget")
        return results

    def cancel(self, running: Iterable[Running]) -> None:
        """Stop checks whose results nobody will ask for (an aborted SMTP transaction)."""
        for r in running:
            r.session.cancel()


def run_here(dns: DnsResolver, name: str, check: Check, deadline: Deadline) -> Running:
    """``check`` run in the calling thread, returned finished (a crash kept for ``collect``, as on the pool).

    For a check the caller would only wait for (no verdict can do without the SES door's PTR lookup):
    its query goes out, and its answer is read, without a hand-off between threads.
    """
    session = dns.session(deadline)
    future: cf.Future[CheckResult] = cf.Future()
    try:
        future.set_result(check(session))
    except Exception as exc:  # collect() reports it as temperror, as a crash on the pool
        future.set_exception(exc)
    return Running(name, future, session, deadline)


def _arrive(everyone: threading.Barrier) -> None:
    with contextlib.suppress(threading.BrokenBarrierError):
        everyone.wait()


def until_cancelled(stream: ByteStream, session: DnsSession) -> _UntilCancelled:
    """``stream``, stopping (an OSError, which the DKIM check reports as unreadable) once ``session`` is cancelled."""
    return _UntilCancelled(stream, session)


class _UntilCancelled:
    def __init__(self, stream: ByteStream, session: DnsSession) -> None:
        self._stream = stream
        self._session = session

    def read(self, size: int = -1) -> bytes:
        if self._session.cancelled:
            raise OSError("decision already made")
        return self._stream.read(size)


def _outcome(name: str, future: cf.Future[CheckResult]) -> CheckResult:
    exc = future.exception()
    if exc is not None:  # a bug or a library crash must not reject mail
        return CheckResult(name, Result.TEMPERROR, f"check crashed: {exc.__class__.__name__}")
    return future.result()
