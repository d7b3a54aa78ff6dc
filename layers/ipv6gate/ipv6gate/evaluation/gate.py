"""Orchestration: SES mail -> source and recipients -> tenants -> checks (concurrently) -> decision.

The Lambda handler and the CLI both call ``Gate.evaluate``, so what ``ipv6gate evaluate`` prints is
what the function decides. Faults in DNS or AWS never reject silently: they become ``temperror``
results or notes, and the decision says what happened.
"""

from __future__ import annotations

import concurrent.futures as cf
import io
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import BinaryIO

from ipv6gate.bounce.policy import decide_bounce
from ipv6gate.checks.iprev import check_iprev
from ipv6gate.checks.results import CheckResult, Result, skipped
from ipv6gate.decision.policy import Checks, Recipient, certain, decide, disposition, needs_checks
from ipv6gate.decision.tenants import Tenant
from ipv6gate.dns import Deadline, DnsResolver, DnsSession
from ipv6gate.evaluation.record import Decision
from ipv6gate.evaluation.stored_message import check_stored_dkim
from ipv6gate.mail.domains import DomainError, recipient_domain
from ipv6gate.mail.event import Mail
from ipv6gate.mail.source import Source, Unknown, find_source
from ipv6gate.ports import (
    BounceQueue,
    BounceQueueError,
    MessageStore,
    TenantDirectory,
    TenantLookupError,
    TraceError,
    TraceStore,
)
from ipv6gate.settings import Settings

__all__ = ["Decision", "Gate"]  # Decision lives in decision.py; importing it from here still works


class Gate:
    """Long-lived (one per cold start): settings, the DNS layer and the ports, plus a small thread pool."""

    def __init__(
        self,
        settings: Settings,
        dns: DnsResolver,
        tenants: TenantDirectory,
        messages: MessageStore | None,
        clock: Callable[[], float] = time.monotonic,
        *,
        bounces: BounceQueue | None = None,
        trace: TraceStore | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        complete_checks: bool = False,
    ) -> None:
        self.settings = settings
        self.dns = dns
        self.tenants = tenants
        self.messages = messages
        self.clock = clock
        self.bounces = bounces
        self.trace = trace
        self.now = now
        # False: stop waiting as soon as the verdict is certain (the Lambda). True: run every check to
        # the end, e.g. to see every result in ``ipv6gate evaluate --all-checks``.
        self.complete_checks = complete_checks
        # Room for a decision's checks plus stragglers of an earlier one that are winding down.
        self._pool = cf.ThreadPoolExecutor(max_workers=6, thread_name_prefix="ipv6gate-check")

    def evaluate(self, mail: Mail, raw_message: bytes | None = None) -> Decision:
        started = self.clock()
        notes: list[str] = []
        faults: list[str] = []
        source = find_source(mail.headers, self.settings.trusted_receivers, mail.message_id)
        recipients = self._recipients(mail, source, notes, faults)
        queries = 0
        if needs_checks(source, recipients):
            assert isinstance(source, Source)
            deadline = Deadline(self.settings.decision_budget_seconds, self.clock)
            checks, queries = self._run_checks(mail, source, recipients, deadline, raw_message)
        else:
            why = "not needed: IPv4, unknown client, or no opted-in recipient"
            checks = Checks(skipped("iprev", why), skipped("spf", why), skipped("dkim", why))
        verdicts = decide(source, recipients, checks, self.settings.temperror_action)
        bounce = decide_bounce(
            mail_from=mail.mail_from,
            headers=mail.headers,
            verdicts=verdicts,
            checks=checks,
            mode=self.settings.bounce_mode,
        )
        return Decision(
            message_id=mail.message_id,
            source=source,
            disposition=disposition(verdicts),
            verdicts=verdicts,
            checks=checks,
            domains=tuple(sorted({r.domain for r in recipients if r.domain})),
            notes=tuple(notes),
            faults=tuple(faults),
            dns_queries=queries,
            elapsed_ms=(self.clock() - started) * 1000,
            mail_from=mail.mail_from,
            arrival=mail.timestamp,
            bounce=bounce,
            dkim_signed=mail.may_be_dkim_signed,
        )

    def act(self, decision: Decision) -> Decision:
        """The function's side effects: queue the bounce, record the decision. Never raises.

        A bounce that should go out but cannot be queued (a fault) would leave the sender with no word
        of a stopped message, so the message is let through instead (fail open) and the note says why.
        Without a queue configured at all, bounces are simply off.
        """
        notes = list(decision.notes)
        request = decision.bounce_request()
        if request is not None:
            try:
                if self.bounces is not None:  # none configured: bounces are off (configuration, not a fault)
                    self.bounces.enqueue(request)
            except BounceQueueError as exc:
                notes.append(f"bounce could not be queued, message let through: {exc}")
                lost = disposition(decision.verdicts, bounce_lost=True)
                decision = replace(decision, disposition=lost, faults=(*decision.faults, "bounce_queue"))
        decision = replace(decision, notes=tuple(notes))
        # IPv4 mail is outside the rule (always accepted): recording it would cost a write per
        # message and explain nothing, so the trace holds IPv6 and unknown-client decisions.
        ipv4 = isinstance(decision.source, Source) and decision.source.version == 4
        if self.trace is not None and not ipv4:
            try:
                self.trace.record(decision, self.now())
            except TraceError as exc:
                decision = replace(
                    decision,
                    notes=(*decision.notes, f"decision not recorded in the trace: {exc}"),
                    faults=(*decision.faults, "trace_write"),
                )
        return decision

    def _recipients(self, mail: Mail, source: Source | Unknown, notes: list[str], faults: list[str]) -> list[Recipient]:
        domains: dict[str, str | None] = {}
        for address in mail.recipients:
            try:
                domains[address] = recipient_domain(address)
            except DomainError as exc:
                domains[address] = None
                notes.append(f"recipient {address[:80]!r} ignored: {exc}")
        tenants: dict[str, Tenant] = {}
        if isinstance(source, Source) and source.version == 6:
            wanted = sorted({d for d in domains.values() if d})
            try:
                tenants = self.tenants.get_many(wanted) if wanted else {}
            except TenantLookupError as exc:
                # Fail open: without tenant data nobody can be said to have opted in. Say so loudly.
                notes.append(f"tenant lookup failed, every recipient accepted: {exc}")
                faults.append("tenant_lookup")
                return [Recipient(a, d, None, f"tenant lookup failed: {exc}") for a, d in domains.items()]
        return [Recipient(a, d, tenants.get(d) if d else None) for a, d in domains.items()]

    def _run_checks(
        self, mail: Mail, source: Source, recipients: list[Recipient], deadline: Deadline, raw: bytes | None
    ) -> tuple[Checks, int]:
        """The three checks concurrently; their results and the DNS queries they made.

        Unless ``complete_checks``, it stops waiting once the policy says the verdicts are certain.

        One deadline for all, but a DNS session (and query cap) each: a sender's SPF record, which
        it writes itself, must not be able to spend the queries the PTR lookup needs.
        """
        s = self.settings
        # Imported here so an IPv4 decision never pays for pyspf and dkimpy (cold start).
        from ipv6gate.checks.spf import check_spf

        sessions = {name: self.dns.session(deadline) for name in ("iprev", "spf", "dkim")}
        tasks: dict[str, Callable[[], CheckResult]] = {
            "iprev": lambda: check_iprev(sessions["iprev"], source.ip, s.ptr_mode),
            "spf": lambda: check_spf(
                sessions["spf"], source.ip, mail.mail_from, source.helo, void_limit=s.spf_void_lookup_limit
            ),
            "dkim": lambda: self._dkim(mail, sessions["dkim"], raw),
        }
        futures = {self._pool.submit(task): name for name, task in tasks.items()}
        results: dict[str, CheckResult] = {}

        def settled() -> bool:
            return not self.complete_checks and certain(source, recipients, results, s.temperror_action)

        # A small grace beyond the DNS budget for CPU work (hashing a large body).
        give_up = self.clock() + max(0.0, deadline.remaining()) + 2.0
        pending = set(futures)
        while pending and not settled():
            done, pending = cf.wait(pending, timeout=max(0.0, give_up - self.clock()), return_when=cf.FIRST_COMPLETED)
            if not done:
                break
            for future in done:
                results[futures[future]] = _outcome(futures[future], future)
        for session in sessions.values():
            session.cancel()  # whatever still runs stops at its next DNS query
        for future in pending:
            name = futures[future]
            if future.done():
                results[name] = _outcome(name, future)
            elif certain(source, recipients, results, s.temperror_action):
                results[name] = skipped(name, "not needed: the verdict was already certain")
            else:
                results[name] = CheckResult(name, Result.TEMPERROR, "check did not finish within the decision budget")
        checks = Checks(results["iprev"], results["spf"], results["dkim"])
        return checks, sum(session.queries for session in sessions.values())

    def _dkim(self, mail: Mail, session: DnsSession, raw: bytes | None) -> CheckResult:
        def until_cancelled(stream: BinaryIO) -> _UntilCancelled:
            return _UntilCancelled(stream, session)

        limit = self.settings.dkim_max_signatures
        if raw is not None:
            from ipv6gate.checks.dkim import check_dkim_stream

            return check_dkim_stream(session, until_cancelled(io.BytesIO(raw)), max_signatures=limit)
        if not mail.may_be_dkim_signed:
            return CheckResult("dkim", Result.NONE, "no DKIM-Signature header (message not fetched)")
        # Streamed: the body is hashed chunk by chunk, never held whole (30 MB messages).
        return check_stored_dkim(
            self.messages,
            mail.message_id,
            session,
            max_bytes=self.settings.message_max_bytes,
            max_signatures=limit,
            wrap=until_cancelled,
        )


class _UntilCancelled:
    """A message stream that stops (an OSError, which the DKIM check reports as unreadable) once the
    decision no longer waits for DKIM, so an abandoned check does not go on hashing a large body."""

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
