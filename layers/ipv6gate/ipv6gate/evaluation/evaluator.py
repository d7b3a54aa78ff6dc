"""The one way a message goes through the rule, whichever door it came in by.

A door (the SES event all at once in ``whole_message``, the SMTP stages in ``staged``, the bouncer's
sender proof) gives the ``Evaluator`` what it learns as it learns it: the client, the recipients, the
envelope sender, the message. Each check starts as soon as its input is known; the policy
(``decision.rule``: ``certain``, ``settled``, ``decide``) says when the verdicts no longer depend on
the rest; ``conclude`` builds the one ``Decision``, bounce included. What it returns is final:
recording it afterwards only reports, as notes and faults, what could not be written.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from ipv6gate.bounce.backscatter import BounceAction, BounceDecision, decide_bounce
from ipv6gate.checks.iprev import check_iprev
from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.decision.rule import (
    Checks,
    Disposition,
    Recipient,
    RecipientVerdict,
    Verdict,
    certain,
    decide,
    disposition,
    settled,
)
from ipv6gate.decision.tenants import Tenant
from ipv6gate.dns import Deadline
from ipv6gate.evaluation.record import Decision, bounce_request
from ipv6gate.evaluation.runner import Check, CheckRunner, Running, run_here
from ipv6gate.evaluation.stored_message import UNAVAILABLE
from ipv6gate.mail.domains import DomainError, recipient_domain
from ipv6gate.mail.source import Source, Unknown
from ipv6gate.ports import BounceQueue, BounceQueueError, TenantDirectory, TenantLookupError, answers_at_hand
from ipv6gate.settings import Settings

#: Why a check has no result: it never started, or was cancelled, because no verdict depended on it.
ALREADY_CERTAIN = "the verdict was already certain"


@dataclass
class Draft:
    """What a door has gathered about one message when it asks for the decision."""

    source: Source | Unknown
    mail_from: str
    started: float
    pending: list[Recipient] = field(default_factory=list)  # decided in ``conclude``
    settled: list[RecipientVerdict] = field(default_factory=list)  # decided earlier (the milter's RCPTs)
    domains: set[str] = field(default_factory=set)  # canonical, for the trace's index
    notes: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    message_id: str = ""
    arrival: str = ""  # SES's receipt timestamp
    headers: Sequence[tuple[str, str]] = ()
    dkim_signed: bool = False
    front_door: str = "ses"


class Evaluator:
    """Long-lived (one per process): the settings, the tenant directory, the check runner, the bounce queue.

    ``tenants`` None: it judges no recipients (the bouncer's sender proof). ``bounces`` None: bounces are
    off, and the decision says so; ``dry_run`` (``ipv6gate evaluate``) shows the policy's bounce, undone.
    """

    def __init__(
        self,
        settings: Settings,
        runner: CheckRunner,
        tenants: TenantDirectory | None,
        *,
        bounces: BounceQueue | None = None,
        dry_run: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.tenants = tenants
        self.bounces = bounces
        self.dry_run = dry_run
        self.clock = clock

    def deadline(self) -> Deadline:  # one per decision: every check of it shares the budget
        return Deadline(self.settings.decision_budget_seconds, self.clock)

    # ------------------------------------------------------------------ inputs
    def recipients(self, addresses: Sequence[str], source: Source | Unknown, draft: Draft) -> list[Recipient]:
        """Each address with its canonical domain and tenant; a failed lookup fails open (noted in ``draft``)."""
        if self.tenants is None:
            raise RuntimeError("this evaluator judges no recipients (it has no tenant directory)")
        return recipients_of(addresses, source, self.tenants, draft.notes, draft.faults)

    def start_iprev(self, source: Source, deadline: Deadline | None = None, *, here: bool = False) -> Running:
        """The PTR check, as soon as the client is known (``here``: in the calling thread, returned finished)."""
        ip, mode = source.ip, self.settings.ptr_mode
        run = partial(run_here, self.runner.dns) if here else self.runner.start
        return run("iprev", lambda s: check_iprev(s, ip, mode), deadline or self.deadline())

    def start_spf(self, source: Source, mail_from: str, deadline: Deadline | None = None) -> Running:
        """SPF, as soon as the envelope sender is known."""
        from ipv6gate.checks.spf import check_spf  # imported here: an IPv4 decision never pays for pyspf

        limit = self.settings.spf_void_lookup_limit
        return self.runner.start(
            "spf",
            lambda s: check_spf(s, source.ip, mail_from, source.helo, void_limit=limit),
            deadline or self.deadline(),
        )

    def start_dkim(self, check: Check, deadline: Deadline | None = None, *, reader: bool = False) -> Running:
        """DKIM, as soon as the signed message can be read (a stored copy, or the SMTP stream)."""
        return self.runner.start("dkim", check, deadline or self.deadline(), reader=reader)

    # ------------------------------------------------------------------ asking the policy
    def certain(self, source: Source | Unknown, recipients: list[Recipient], known: Mapping[str, CheckResult]) -> bool:
        return certain(source, recipients, known, self.settings.temperror_action)  # whatever the rest say

    def settled(
        self, source: Source | Unknown, recipient: Recipient, known: Mapping[str, CheckResult]
    ) -> RecipientVerdict | None:
        """The recipient's verdict when the results not in yet cannot change it, else None."""
        verdicts = settled(source, [recipient], known, self.settings.temperror_action)
        return verdicts[0] if verdicts else None

    def collect(
        self,
        running: Iterable[Running],
        draft: Draft,
        known: Mapping[str, CheckResult] | None = None,
        *,
        keep: Running | None = None,
        complete: bool = False,
    ) -> dict[str, CheckResult]:
        """``known`` and the results of ``running``, waited for until the pending recipients' verdicts are
        certain (``complete``: until every check has finished) or the budget is spent."""
        known = dict(known or {})

        def is_certain(results: Mapping[str, CheckResult]) -> bool:
            return self.certain(draft.source, draft.pending, results)

        return known | self.runner.collect(running, None if complete else is_certain, known=known, keep=keep)

    # ------------------------------------------------------------------ the decision
    def conclude(self, draft: Draft, checks: Checks, *, queries: int) -> Decision:
        """The one ``Decision``: every recipient's verdict, the disposition, and (for SES) the bounce, queued."""
        verdicts = [*draft.settled, *decide(draft.source, draft.pending, checks, self.settings.temperror_action)]
        notes, faults = _notes_and_faults(draft, checks, verdicts)
        answer: Disposition | None = None
        bounce: BounceDecision | None = None
        lost = False
        if draft.front_door == "ses":  # SES has taken the message: a rejection reaches the sender only as a bounce
            bounce = decide_bounce(
                mail_from=draft.mail_from,
                headers=draft.headers,
                verdicts=verdicts,
                checks=checks,
                mode=self.settings.bounce_mode,
            )
            if not self.dry_run:
                bounce, lost = _carry_out(self.bounces, draft, verdicts, bounce, notes=notes, faults=faults)
            answer = disposition(verdicts, bounce_lost=lost)
        return Decision(
            message_id=draft.message_id,
            source=draft.source,
            disposition=answer,
            verdicts=verdicts,
            checks=checks,
            domains=tuple(sorted(d for d in draft.domains if d)),
            notes=tuple(notes),
            faults=tuple(faults),
            dns_queries=queries,
            elapsed_ms=(self.clock() - draft.started) * 1000,
            mail_from=draft.mail_from,
            arrival=draft.arrival,
            bounce=bounce,
            dkim_signed=draft.dkim_signed,
            front_door=draft.front_door,
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
    if _ipv6(source):
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


def tenants_at_hand(directory: TenantDirectory | None, addresses: Sequence[str]) -> bool:
    """Whether ``directory`` answers for these recipients' domains without asking a remote store."""
    domains = set()
    for address in addresses:
        with contextlib.suppress(DomainError):  # such a recipient is ignored (``recipients_of``)
            domains.add(recipient_domain(address))
    return directory is None or answers_at_hand(directory, domains)


def _carry_out(
    queue: BounceQueue | None,
    draft: Draft,
    verdicts: list[RecipientVerdict],
    bounce: BounceDecision | None,
    *,
    notes: list[str],
    faults: list[str],
) -> tuple[BounceDecision | None, bool]:
    """Queue the bounce the policy asked for; the bounce as done, and whether a due one was lost.

    A bounce that cannot be queued would leave the sender with no word of a stopped message:
    the message is then let through (``disposition(..., bounce_lost=True)``) and the notes say why.
    """
    if bounce is None or not bounce.action.queues or not isinstance(draft.source, Source):
        return bounce, False
    if queue is None:  # bounces are off: say so instead of the policy's "send", which nothing did
        why = f"no bounce queue configured: nothing queued (policy: {bounce.action.value})"
        return BounceDecision(BounceAction.NONE, why), False
    request = bounce_request(
        draft.message_id,
        draft.source,
        verdicts,
        bounce,
        mail_from=draft.mail_from,
        arrival=draft.arrival or datetime.now(UTC).isoformat(),
        dkim_signed=draft.dkim_signed,
    )
    assert request is not None  # the action queues
    try:
        queue.enqueue(request)
    except BounceQueueError as exc:
        notes.append(f"bounce could not be queued, message let through: {exc}")
        faults.append("bounce_queue")
        return bounce, True
    return bounce, False


def _notes_and_faults(draft: Draft, checks: Checks, verdicts: list[RecipientVerdict]) -> tuple[list[str], list[str]]:
    """The draft's notes and faults, and ``message_store`` when the raw message could not be read (no
    store, S3 failing) and a recipient was accepted: the DKIM temperror may have let the mail through
    unjudged, which must show as a fault, not only as a check's reason."""
    notes, faults = list(draft.notes), list(dict.fromkeys(draft.faults))
    dkim = checks.dkim
    unread = dkim.result is Result.TEMPERROR and dkim.reason.startswith(UNAVAILABLE)
    if unread and any(v.verdict is Verdict.ACCEPT for v in verdicts):
        faults.append("message_store")
        notes.append(f"accepted without its raw message (DKIM temperror): {dkim.reason}")
    return notes, faults


def _ipv6(source: Source | Unknown) -> bool:
    return isinstance(source, Source) and source.version == 6
