"""The same rule fed stage by stage, as an SMTP server meets it: connect, HELO, MAIL FROM, each RCPT, DATA.

Nothing here decides. Each stage asks ``decision.policy`` with the results that have arrived:
``settled`` at each RCPT (a 550 5.2.1 or 450 4.7.25 is given to that recipient at once), ``decide``
at the end of the message. Checks start as soon as their input is known: the PTR lookup at
connect, SPF at MAIL FROM, DKIM once the headers are in, hashing the body as it streams.

At the end of the message one reply answers every recipient still open, so a transaction holds
either only recipients whose verdict still waits on SPF/DKIM under an enforcing tenant, or only
recipients that will be accepted whatever those say (IPv4, a partner prefix, monitor mode, a
tenant lookup that failed open). A recipient of the other kind gets ``452 4.5.3`` and is sent again
by the client in a later transaction (RFC 5321 §4.5.3.1.10), where it is judged on its own.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from ipv6gate.checks.iprev import check_iprev
from ipv6gate.checks.results import CheckResult, Result, skipped
from ipv6gate.decision.policy import (
    Checks,
    Recipient,
    RecipientVerdict,
    Verdict,
    certain,
    decide,
    disposition,
    settled,
)
from ipv6gate.decision.replies import Reply, separate_transaction, too_many_recipients
from ipv6gate.decision.tenants import Mode
from ipv6gate.dns import Deadline
from ipv6gate.evaluation.actor import Actor
from ipv6gate.evaluation.gate import recipients_of
from ipv6gate.evaluation.message_feed import MessageFeed
from ipv6gate.evaluation.record import Decision
from ipv6gate.evaluation.runner import CheckRunner, Running
from ipv6gate.mail.source import Source, Unknown
from ipv6gate.ports import TenantDirectory
from ipv6gate.settings import Settings


@dataclass(frozen=True, slots=True)
class Limits:
    max_recipients: int = 100
    max_header_bytes: int = 1024 * 1024


class SmtpGate:
    """Long-lived (one per process): the settings, the tenant directory, the check runner and the actor."""

    def __init__(
        self,
        settings: Settings,
        runner: CheckRunner,
        tenants: TenantDirectory,
        actor: Actor,
        *,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.tenants = tenants
        self.actor = actor
        self.limits = limits or Limits()
        self.clock = clock

    def connect(self, address: str | None, receiver: str = "") -> SmtpSession:
        """A session for a client at ``address`` (None: a local or unknown client, outside the rule)."""
        try:
            source: Source | Unknown = Source(ipaddress.ip_address(address or ""), "", receiver)
        except ValueError:
            source = Unknown(f"MTA gave no IP client address ({(address or 'none')[:60]!r})")
        if isinstance(source, Source) and isinstance(source.ip, ipaddress.IPv6Address) and source.ip.ipv4_mapped:
            source = replace(source, ip=source.ip.ipv4_mapped)
        return SmtpSession(self, source)

    def act(self, decision: Decision) -> Decision:
        return self.actor.act(decision)

    def deadline(self) -> Deadline:
        return Deadline(self.settings.decision_budget_seconds, self.clock)


@dataclass
class Transaction:
    mail_from: str
    started: float
    running: dict[str, Running] = field(default_factory=dict)
    verdicts: list[RecipientVerdict] = field(default_factory=list)  # settled at RCPT
    pending: list[Recipient] = field(default_factory=list)  # decided at the end of the message
    domains: set[str] = field(default_factory=set)  # canonical, for the trace's index
    notes: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    feed: MessageFeed | None = None  # the message, once DATA begins

    @property
    def accepted(self) -> int:
        return len(self.pending) + sum(v.verdict is Verdict.ACCEPT for v in self.verdicts)

    def admit(
        self, recipient: Recipient, verdict: RecipientVerdict | None, uncertain: Callable[[Recipient], bool]
    ) -> Reply | None:
        """Take a recipient with its verdict (None: decided at the end); the reply it gets now, if any.

        ``uncertain`` says whether a recipient's verdict still depends on results not in yet. A
        recipient that could still be refused at the end of DATA and one accepted whatever happens
        cannot share the one reply that ends the message: the later of the two gets 452 4.5.3.
        """
        if verdict is not None and verdict.verdict is Verdict.REJECT:
            self.verdicts.append(verdict)
            self.domains.add(recipient.domain or "")
            return verdict.reply
        at_risk = verdict is None and _enforcing(recipient)
        others_at_risk = any(_enforcing(p) and uncertain(p) for p in self.pending)
        others_safe = any(v.verdict is Verdict.ACCEPT for v in self.verdicts) or any(
            not _enforcing(p) for p in self.pending
        )
        if (at_risk and others_safe) or (not at_risk and others_at_risk):
            who = recipient.address[:80]
            self.notes.append(f"recipient {who!r} sent back (452 4.5.3): its verdict may differ from the others'")
            return separate_transaction()
        self.domains.add(recipient.domain or "")
        if verdict is None:
            self.pending.append(recipient)
        else:
            self.verdicts.append(verdict)
        return None


def _enforcing(recipient: Recipient) -> bool:
    return recipient.tenant is not None and recipient.tenant.mode is Mode.ENFORCE


@dataclass(frozen=True, slots=True)
class Outcome:
    reply: Reply | None  # None: accept
    decision: Decision


class SmtpSession:
    """One SMTP connection; the MTA's callbacks call these in protocol order."""

    def __init__(self, gate: SmtpGate, source: Source | Unknown) -> None:
        self.gate = gate
        self.source = source
        self._tx: Transaction | None = None
        self._ptr: CheckResult | None = None
        self._iprev: Running | None = None
        if _ipv6(source):
            ip, mode = source.ip, gate.settings.ptr_mode  # type: ignore[union-attr]
            self._iprev = gate.runner.start("iprev", lambda s: check_iprev(s, ip, mode), gate.deadline())

    def helo(self, name: str) -> None:
        if isinstance(self.source, Source):
            self.source = replace(self.source, helo=name)

    def mail_from(self, address: str) -> Decision | None:
        """A new transaction (the decision of an unfinished one is returned); SPF starts now."""
        finished = self.reset()
        tx = self._tx = Transaction(address.strip().strip("<>"), self.gate.clock())
        if _ipv6(self.source):
            from ipv6gate.checks.spf import check_spf

            s, src = self.gate.settings, self.source
            assert isinstance(src, Source)
            tx.running["spf"] = self.gate.runner.start(
                "spf",
                lambda session: check_spf(session, src.ip, tx.mail_from, src.helo, void_limit=s.spf_void_lookup_limit),
                self.gate.deadline(),
            )
        return finished

    def rcpt(self, address: str) -> Reply | None:
        """The reply to give this recipient now; None accepts it (its verdict may come at the end)."""
        tx = self._transaction()
        address = address.strip().strip("<>")
        if tx.accepted >= self.gate.limits.max_recipients:
            return too_many_recipients(self.gate.limits.max_recipients)
        recipient = recipients_of([address], self.source, self.gate.tenants, tx.notes, tx.faults)[0]
        verdict = self._settled(recipient, tx)
        if verdict is None and self._wait_for_ptr():  # the verdict may hang on the PTR: wait for it here
            verdict = self._settled(recipient, tx)
        known = self._known(tx)
        action = self.gate.settings.temperror_action
        return tx.admit(recipient, verdict, lambda r: not certain(self.source, [r], known, action))

    def header(self, name: bytes, value: bytes) -> None:
        self._feed().header(name, value)

    def end_of_headers(self) -> None:
        """DKIM starts here, when some recipient still needs it and the message is signed."""
        tx = self._transaction()
        check = self._feed().dkim_check(self.gate.settings.dkim_max_signatures) if tx.pending else None
        if check is not None:
            tx.running["dkim"] = self.gate.runner.start("dkim", check, self.gate.deadline(), own_thread=True)

    def body(self, chunk: bytes) -> None:
        self._feed().body(chunk)

    def end_of_message(self, message_id: str) -> Outcome:
        """One reply for every recipient still open; the transaction's decision."""
        tx = self._transaction()
        self._feed().end()
        s = self.gate.settings
        known = {"iprev": self._ptr} if self._ptr is not None else {}
        running = [r for r in [*tx.running.values(), self._iprev] if r is not None and r.name not in known]

        def is_certain(results: Mapping[str, CheckResult]) -> bool:
            return certain(self.source, tx.pending, dict(results), s.temperror_action)

        # The PTR lookup belongs to the connection: a later transaction may need it, so it is never cancelled here.
        results = known | self.gate.runner.collect(running, is_certain, known=known, keep=self._iprev)
        checks = _checks(self.source, tx, results, "no recipient needed it")
        verdicts = decide(self.source, tx.pending, checks, s.temperror_action)
        reply = next((v.reply for v in verdicts if v.verdict is Verdict.REJECT), None)
        decision = self._decision(tx, [*tx.verdicts, *verdicts], checks, message_id)
        self._tx = None
        return Outcome(reply, decision)

    def reset(self) -> Decision | None:
        """The transaction ended without a message (RSET, abort, QUIT): its decision, if a recipient was seen."""
        tx, self._tx = self._tx, None
        if tx is None:
            return None
        if tx.feed is not None:
            tx.feed.abort()
        self.gate.runner.cancel(tx.running.values())
        if not tx.verdicts:
            return None
        if tx.pending:
            tx.notes.append(f"{len(tx.pending)} recipient(s) undecided: the client ended before the message")
        done = {r.name: r.peek() for r in [*tx.running.values(), self._iprev] if r is not None}
        results = {name: result for name, result in done.items() if result is not None}
        checks = _checks(self.source, tx, results | ({"iprev": self._ptr} if self._ptr else {}), "transaction ended")
        return self._decision(tx, tx.verdicts, checks, "")

    def close(self) -> Decision | None:
        finished = self.reset()
        if self._iprev is not None:
            self.gate.runner.cancel([self._iprev])
        return finished

    # ------------------------------------------------------------------ helpers
    def _transaction(self) -> Transaction:
        if self._tx is None:  # the MTA enforces MAIL FROM first; be safe rather than crash
            self.mail_from("")
        assert self._tx is not None
        return self._tx

    def _decision(self, tx: Transaction, verdicts: list[RecipientVerdict], checks: Checks, message_id: str) -> Decision:
        queries = sum(r.session.queries for r in [*tx.running.values(), self._iprev] if r is not None)
        elapsed = (self.gate.clock() - tx.started) * 1000
        return _decision(self.source, tx, verdicts, checks, message_id=message_id, queries=queries, elapsed_ms=elapsed)

    def _feed(self) -> MessageFeed:
        tx = self._transaction()
        if tx.feed is None:
            limits, settings = self.gate.limits, self.gate.settings
            tx.feed = MessageFeed(
                max_header_bytes=limits.max_header_bytes, max_message_bytes=settings.message_max_bytes
            )
        return tx.feed

    def _wait_for_ptr(self) -> bool:
        """Wait for the connection's PTR lookup; False when there is none to wait for (or it is in)."""
        if self._iprev is None or self._ptr is not None:
            return False
        self._ptr = self.gate.runner.collect([self._iprev], None)["iprev"]
        return True

    def _settled(self, recipient: Recipient, tx: Transaction) -> RecipientVerdict | None:
        verdicts = settled(self.source, [recipient], self._known(tx), self.gate.settings.temperror_action)
        return verdicts[0] if verdicts else None

    def _known(self, tx: Transaction) -> dict[str, CheckResult]:
        """The results that have arrived so far (no waiting)."""
        done = {r.name: r.peek() for r in tx.running.values()}
        results = {name: result for name, result in done.items() if result is not None}
        if self._ptr is not None:
            results["iprev"] = self._ptr
        return results


def _checks(source: Source | Unknown, tx: Transaction, results: dict[str, CheckResult], why: str) -> Checks:
    """Every check's result for the record; the ones that never ran (or were not needed) say why."""
    signed = tx.feed is not None and tx.feed.dkim_signed
    if tx.feed is not None and tx.feed.result is not None:
        results = results | {"dkim": tx.feed.result}
    elif "dkim" not in results and tx.pending and not signed and _ipv6(source):
        results = results | {"dkim": CheckResult("dkim", Result.NONE, "no DKIM-Signature header")}
    full = {name: results.get(name) or skipped(name, f"not needed: {why}") for name in ("iprev", "spf", "dkim")}
    return Checks(full["iprev"], full["spf"], full["dkim"])


def _decision(
    source: Source | Unknown,
    tx: Transaction,
    verdicts: list[RecipientVerdict],
    checks: Checks,
    *,
    message_id: str,
    queries: int,
    elapsed_ms: float,
) -> Decision:
    return Decision(
        message_id=message_id or f"smtp-{uuid.uuid4().hex[:20]}",  # no queue id: the MTA never queued it
        source=source,
        disposition=disposition(verdicts),
        verdicts=verdicts,
        checks=checks,
        domains=tuple(sorted(d for d in tx.domains if d)),
        notes=tuple(tx.notes),
        faults=tuple(dict.fromkeys(tx.faults)),
        dns_queries=queries,
        elapsed_ms=elapsed_ms,
        mail_from=tx.mail_from,
        dkim_signed=tx.feed is not None and tx.feed.dkim_signed,
        front_door="milter",
    )


def _ipv6(source: Source | Unknown) -> bool:
    return isinstance(source, Source) and source.version == 6
