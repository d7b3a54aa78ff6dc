"""One message through the rule, in order: source -> recipients and tenants -> checks -> decision -> bounce.

The Lambda handler and the CLI both call ``Gate.evaluate``, so what ``ipv6gate evaluate`` prints is
what the function decides. The checks run on the ``CheckRunner`` until ``decision.policy.certain``
says the verdicts no longer depend on the rest; side effects are the ``Actor``'s. Faults in DNS or
AWS never reject silently: they become ``temperror`` results or notes, and the decision says what
happened.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from ipv6gate.bounce.policy import decide_bounce
from ipv6gate.checks.iprev import check_iprev
from ipv6gate.checks.results import CheckResult, Result, skipped
from ipv6gate.decision.policy import Checks, Recipient, certain, decide, disposition, needs_checks
from ipv6gate.decision.tenants import Tenant
from ipv6gate.dns import Deadline, DnsResolver, DnsSession
from ipv6gate.evaluation.actor import Actor
from ipv6gate.evaluation.record import Decision
from ipv6gate.evaluation.runner import Check, CheckRunner, until_cancelled
from ipv6gate.evaluation.stored_message import check_stored_dkim
from ipv6gate.mail.domains import DomainError, recipient_domain
from ipv6gate.mail.event import Mail
from ipv6gate.mail.source import Source, Unknown, find_source
from ipv6gate.ports import BounceQueue, MessageStore, TenantDirectory, TenantLookupError, TraceStore
from ipv6gate.settings import Settings


class Gate:
    """Long-lived (one per cold start): settings, the ports, the check runner and the actor."""

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
        self.tenants = tenants
        self.messages = messages
        self.clock = clock
        self.runner = CheckRunner(dns, clock)
        self.actor = Actor(bounces, trace, now)
        # False: stop waiting as soon as the verdict is certain (the Lambda). True: run every check to
        # the end, e.g. to see every result in ``ipv6gate evaluate --all-checks``.
        self.complete_checks = complete_checks

    @property
    def dns(self) -> DnsResolver:
        return self.runner.dns

    def evaluate(self, mail: Mail, raw_message: bytes | None = None) -> Decision:
        started = self.clock()
        notes: list[str] = []
        faults: list[str] = []
        source = find_source(mail.headers, self.settings.trusted_receivers, mail.message_id)
        recipients = recipients_of(mail.recipients, source, self.tenants, notes, faults)
        queries = 0
        if needs_checks(source, recipients):
            assert isinstance(source, Source)
            checks, queries = self._run_checks(mail, source, recipients, raw_message)
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
        """Queue the bounce and record the decision (``Actor.act``); never raises."""
        return self.actor.act(decision)

    def _run_checks(
        self, mail: Mail, source: Source, recipients: list[Recipient], raw: bytes | None
    ) -> tuple[Checks, int]:
        s = self.settings
        # Imported here so an IPv4 decision never pays for pyspf (cold start).
        from ipv6gate.checks.spf import check_spf

        checks: dict[str, Check] = {
            "iprev": lambda session: check_iprev(session, source.ip, s.ptr_mode),
            "spf": lambda session: check_spf(
                session, source.ip, mail.mail_from, source.helo, void_limit=s.spf_void_lookup_limit
            ),
            "dkim": lambda session: self._dkim(mail, session, raw),
        }

        def is_certain(results: Mapping[str, CheckResult]) -> bool:
            return certain(source, recipients, dict(results), s.temperror_action)

        deadline = Deadline(s.decision_budget_seconds, self.clock)
        results, queries = self.runner.run(checks, deadline, None if self.complete_checks else is_certain)
        return Checks(results["iprev"], results["spf"], results["dkim"]), queries

    def _dkim(self, mail: Mail, session: DnsSession, raw: bytes | None) -> CheckResult:
        limit = self.settings.dkim_max_signatures
        if raw is not None:
            from ipv6gate.checks.dkim import check_dkim_stream

            return check_dkim_stream(session, until_cancelled(io.BytesIO(raw), session), max_signatures=limit)
        if not mail.may_be_dkim_signed:
            return CheckResult("dkim", Result.NONE, "no DKIM-Signature header (message not fetched)")
        # Streamed: the body is hashed chunk by chunk, never held whole (30 MB messages).
        return check_stored_dkim(
            self.messages,
            mail.message_id,
            session,
            max_bytes=self.settings.message_max_bytes,
            max_signatures=limit,
            wrap=lambda stream: until_cancelled(stream, session),
        )


def recipients_of(
    addresses: Sequence[str], source: Source | Unknown, directory: TenantDirectory, notes: list[str], faults: list[str]
) -> list[Recipient]:
    """Each envelope recipient with its canonical domain and tenant; a failed tenant lookup fails open."""
    domains: dict[str, str | None] = {}
    for address in addresses:
        try:
            domains[address] = recipient_domain(address)
        except DomainError as exc:
            domains[address] = None
            notes.append(f"recipient {address[:80]!r} ignored: {exc}")
    tenants: dict[str, Tenant] = {}
    if isinstance(source, Source) and source.version == 6:
        wanted = sorted({d for d in domains.values() if d})
        try:
            tenants = directory.get_many(wanted) if wanted else {}
        except TenantLookupError as exc:
            # Fail open: without tenant data nobody can be said to have opted in. Say so loudly.
            failed = set(wanted if exc.domains is None else exc.domains)
            who = "every recipient" if exc.domains is None else f"recipients at {', '.join(sorted(failed))}"
            notes.append(f"tenant lookup failed, {who} accepted: {exc}")
            faults.append("tenant_lookup")
            tenants = dict(exc.found)
            return [
                Recipient(a, d, tenants.get(d) if d else None, f"tenant lookup failed: {exc}" if d in failed else None)
                for a, d in domains.items()
            ]
    return [Recipient(a, d, tenants.get(d) if d else None) for a, d in domains.items()]
