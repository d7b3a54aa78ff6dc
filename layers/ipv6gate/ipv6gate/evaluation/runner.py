"""The check runner: a decision's checks on a small thread pool, until the policy says the verdict is certain.

One deadline for all checks, but a DNS session (and query cap) each: a sender's SPF record, which it
writes itself, must not be able to spend the queries the PTR lookup needs. When the runner stops
waiting, every session is cancelled, so a check still running stops at its next DNS query, and a
DKIM check stops reading its message (``until_cancelled``).
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Callable, Mapping
from typing import BinaryIO

from ipv6gate.checks.results import CheckResult, Result, skipped
from ipv6gate.dns import Deadline, DnsResolver, DnsSession

#: A check: given its own DNS session, its result. Runs on a pool thread.
Check = Callable[[DnsSession], CheckResult]
#: The policy's question: are the verdicts certain from these results, whatever the others say?
Certain = Callable[[Mapping[str, CheckResult]], bool]

GRACE_SECONDS = 2.0  # beyond the DNS budget, for CPU work such as hashing a large body


class CheckRunner:
    """Long-lived (one per cold start): the thread pool the checks of every decision share."""

    def __init__(self, dns: DnsResolver, clock: Callable[[], float] = time.monotonic) -> None:
        self.dns = dns
        self.clock = clock
        # Room for a decision's checks plus stragglers of an earlier one that are winding down.
        self._pool = cf.ThreadPoolExecutor(max_workers=6, thread_name_prefix="ipv6gate-check")

    def run(
        self, checks: Mapping[str, Check], deadline: Deadline, certain: Certain | None
    ) -> tuple[dict[str, CheckResult], int]:
        """Every check's result and the DNS queries they made; ``certain=None`` waits for all of them.

        A check that has not finished when the runner stops is ``skipped`` when the verdict no longer
        needs it, else ``temperror``; one that raised is ``temperror`` (a bug must not reject mail).
        """
        sessions = {name: self.dns.session(deadline) for name in checks}
        futures = {self._pool.submit(check, sessions[name]): name for name, check in checks.items()}
        results: dict[str, CheckResult] = {}
        give_up = self.clock() + max(0.0, deadline.remaining()) + GRACE_SECONDS
        pending = set(futures)
        while pending and not (certain is not None and certain(results)):
            done, pending = cf.wait(pending, timeout=max(0.0, give_up - self.clock()), return_when=cf.FIRST_COMPLETED)
            if not done:
                break
            for future in done:
                results[futures[future]] = _outcome(futures[future], future)
        for session in sessions.values():
            session.cancel()
        for future in [f for f in pending if f.done()]:  # finished while the sessions were cancelled
            results[futures[future]] = _outcome(futures[future], future)
        unneeded = certain is not None and certain(results)
        for future in pending:
            name = futures[future]
            if name in results:
                continue
            if unneeded:
                results[name] = skipped(name, "not needed: the verdict was already certain")
            else:
                results[name] = CheckResult(name, Result.TEMPERROR, "check did not finish within the decision budget")
        return results, sum(session.queries for session in sessions.values())


def until_cancelled(stream: BinaryIO, session: DnsSession) -> _UntilCancelled:
    """``stream``, stopping (an OSError, which the DKIM check reports as unreadable) once ``session`` is cancelled."""
    return _UntilCancelled(stream, session)


class _UntilCancelled:
    def __init__(self, stream: BinaryIO, session: DnsSession) -> None:
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
