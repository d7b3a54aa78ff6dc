"""The same rule fed stage by stage, as an SMTP server meets it: connect, HELO, MAIL FROM, each RCPT, DATA.

Nothing here decides. Each stage asks ``decision.rule`` with the results that have arrived:
``settled`` at each RCPT (a 550 5.2.1 or 450 4.7.25 is given to that recipient at once), ``decide``
at the end of the message. Checks start as soon as their input is known: the PTR lookup at
connect, SPF at MAIL FROM, each DKIM key as soon as its DKIM-Signature header has arrived (in the
DNS session the DKIM check then verifies with), DKIM once the headers are in, hashing the body as
it streams.

At the end of the message one reply answers every recipient still open, so a transaction holds
either only recipients whose verdict still waits on SPF/DKIM under an enforcing tenant, or only
recipients that will be accepted whatever those say (IPv4, a partner prefix, monitor mode, a
tenant lookup that failed open). A recipient of the other kind gets ``452 4.5.3`` and is sent again
by the client in a later transaction (RFC 5321 §4.5.3.1.10), where it is judged on its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.decision.replies import Reply, separate_transaction, too_many_recipients
from ipv6gate.decision.rule import Checks, Recipient, RecipientVerdict, Verdict
from ipv6gate.decision.tenants import Mode
from ipv6gate.evaluation.early_keys import EarlyKeys
from ipv6gate.evaluation.evaluator import ALREADY_CERTAIN, Draft, Evaluator
from ipv6gate.evaluation.message_feed import MessageFeed
from ipv6gate.evaluation.record import Decision
from ipv6gate.evaluation.recorder import Recorder
from ipv6gate.evaluation.runner import Running
from ipv6gate.mail.source import Source, Unknown, smtp_client


@dataclass(frozen=True, slots=True)
class Limits:
    max_recipients: int = 100
    max_header_bytes: int = 1024 * 1024


class SmtpGate:
    """Long-lived (one per process): the evaluator, the recorder and the SMTP limits."""

    def __init__(self, evaluator: Evaluator, recorder: Recorder, *, limits: Limits | None = None) -> None:
        self.evaluator = evaluator
        self.recorder = recorder
        self.limits = limits or Limits()

    def connect(self, address: str | None, receiver: str = "") -> SmtpSession:
        """A session for a client at ``address`` (None: a local or unknown client, outside the rule)."""
        return SmtpSession(self, smtp_client(address, receiver))

    def record(self, decision: Decision) -> Decision:
        return self.recorder.record(decision)


@dataclass
class Transaction:
    """One MAIL FROM .. end of message: the draft decision, the checks it started, the message."""

    draft: Draft
    keys: EarlyKeys  # DKIM keys asked at their headers, in the session the DKIM check then uses
    running: dict[str, Running] = field(default_factory=dict)
    feed: MessageFeed | None = None  # the message, once DATA begins

    @property
    def accepted(self) -> int:
        return len(self.draft.pending) + sum(v.verdict is Verdict.ACCEPT for v in self.draft.settled)

    def admit(
        self, recipient: Recipient, verdict: RecipientVerdict | None, uncertain: Callable[[Recipient], bool]
    ) -> Reply | None:
        """Take a recipient with its verdict (None: decided at the end); the reply it gets now, if any.

        ``uncertain`` says whether a recipient's verdict still depends on results not in yet. A
        recipient that could still be refused at the end of DATA and one accepted whatever happens
        cannot share the one reply that ends the message: the later of the two gets 452 4.5.3.
        """
        d = self.draft
        if verdict is not None and verdict.verdict is Verdict.REJECT:
            d.settled.append(verdict)
            d.domains.add(recipient.domain or "")
            return verdict.reply
        at_risk = verdict is None and _enforcing(recipient)
        others_at_risk = any(_enforcing(p) and uncertain(p) for p in d.pending)
        others_safe = any(v.verdict is Verdict.ACCEPT for v in d.settled) or any(not _enforcing(p) for p in d.pending)
        if (at_risk and others_safe) or (not at_risk and others_at_risk):
            who = recipient.address[:80]
            d.notes.append(f"recipient {who!r} sent back (452 4.5.3): its verdict may differ from the others'")
            return separate_transaction()
        d.domains.add(recipient.domain or "")
        if verdict is None:
            d.pending.append(recipient)
        else:
            d.settled.append(verdict)
        return None

    def checks(self, results: dict[str, CheckResult], why: str) -> Checks:
        """Every check's result for the record; the ones that never ran (or were not needed) say why."""
        d = self.draft
        signed = self.feed is not None and self.feed.dkim_signed
        if self.feed is not None and self.feed.result is not None:
            results = results | {"dkim": self.feed.result}
        elif "dkim" not in results and d.pending and not signed and _ipv6(d.source):
            results = results | {"dkim": CheckResult("dkim", Result.NONE, "no DKIM-Signature header")}
        return Checks.of(results, why)


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
        self.evaluator = gate.evaluator
        self.source = source
        self._tx: Transaction | None = None
        self._ptr = _Ptr(
            self.evaluator, self.evaluator.start_iprev(source) if isinstance(source, Source) and _ipv6(source) else None
        )

    def helo(self, name: str) -> None:
        if isinstance(self.source, Source):
            self.source = replace(self.source, helo=name)

    def mail_from(self, address: str) -> Decision | None:
        """A new transaction (the decision of an unfinished one is returned); SPF starts now."""
        finished = self.reset()
        sender = address.strip().strip("<>")
        draft = Draft(self.source, sender, self.evaluator.clock(), front_door="milter")
        tx = self._tx = Transaction(draft, EarlyKeys(self.evaluator))
        if isinstance(self.source, Source) and _ipv6(self.source):
            tx.running["spf"] = self.evaluator.start_spf(self.source, sender)
        return finished

    def rcpt(self, address: str) -> Reply | None:
        """The reply to give this recipient now; None accepts it (its verdict may come at the end)."""
        tx, ev = self._transaction(), self.evaluator
        if tx.accepted >= self.gate.limits.max_recipients:
            return too_many_recipients(self.gate.limits.max_recipients)
        recipient = ev.recipients([address.strip().strip("<>")], self.source, tx.draft)[0]
        verdict = ev.settled(self.source, recipient, self._known(tx))
        if verdict is None and self._ptr.wait():  # the verdict may hang on the PTR: wait for it here
            verdict = ev.settled(self.source, recipient, self._known(tx))
        known = self._known(tx)
        return tx.admit(recipient, verdict, lambda r: not ev.certain(self.source, [r], known))

    def header(self, name: bytes, value: bytes) -> None:
        tx, feed = self._transaction(), self._feed()
        feed.header(name, value)
        tx.keys.ask(name, value, wanted=bool(tx.draft.pending) and feed.result is None)  # as DKIM starts below

    def end_of_headers(self) -> None:
        """DKIM starts here, when some recipient still needs it and the message is signed."""
        tx = self._transaction()
        check = self._feed().dkim_check(self.evaluator.settings.dkim_max_signatures) if tx.draft.pending else None
        if check is not None:
            tx.running["dkim"] = tx.keys.start_check(check)  # RunnerBusy when no reader is free

    def body(self, chunk: bytes) -> None:
        self._feed().body(chunk)

    def end_of_message(self, message_id: str) -> Outcome:
        """One reply for every recipient still open; the transaction's decision."""
        tx = self._transaction()
        self._feed().end()
        known = self._ptr.known()
        running = [r for r in [*tx.running.values(), self._ptr.running] if r is not None and r.name not in known]
        # The PTR lookup belongs to the connection: a later transaction may need it, so it is never cancelled here.
        results = self.evaluator.collect(running, tx.draft, known, keep=self._ptr.running)
        tx.keys.cancel()  # keys of signatures the verdict no longer needs are not asked
        decision = self._conclude(tx, tx.checks(results, ALREADY_CERTAIN), message_id)
        self._tx = None
        reply = next((v.reply for v in decision.verdicts[len(tx.draft.settled) :] if v.verdict is Verdict.REJECT), None)
        return Outcome(reply, decision)

    def reset(self) -> Decision | None:
        """The transaction ended without a message (RSET, abort, QUIT): its decision, if a recipient was seen."""
        tx, self._tx = self._tx, None
        if tx is None:
            return None
        if tx.feed is not None:
            tx.feed.abort()
        self.evaluator.runner.cancel(tx.running.values())
        tx.keys.cancel()
        if not tx.draft.settled:
            return None
        if tx.draft.pending:
            tx.draft.notes.append(
                f"{len(tx.draft.pending)} recipient(s) undecided: the client ended before the message"
            )
        done = {r.name: r.peek() for r in [*tx.running.values(), self._ptr.running] if r is not None}
        results = {name: result for name, result in done.items() if result is not None} | self._ptr.known()
        checks = tx.checks(results, "transaction ended")
        tx.draft.pending = []  # never decided: the client left before the message
        return self._conclude(tx, checks, "")

    def close(self) -> Decision | None:
        finished = self.reset()
        self._ptr.cancel()
        return finished

    # ------------------------------------------------------------------ helpers
    def _transaction(self) -> Transaction:
        if self._tx is None:  # the MTA enforces MAIL FROM first; be safe rather than crash
            self.mail_from("")
        assert self._tx is not None
        return self._tx

    def _conclude(self, tx: Transaction, checks: Checks, message_id: str) -> Decision:
        d = tx.draft
        d.source = self.source  # as the record shows it: with the HELO, whenever it came
        d.message_id = message_id or f"smtp-{uuid.uuid4().hex[:20]}"  # no queue id: the MTA never queued it
        d.dkim_signed = tx.feed is not None and tx.feed.dkim_signed
        sessions = [r.session for r in [*tx.running.values(), self._ptr.running] if r is not None]
        queries = sum(s.queries for s in sessions) + tx.keys.queries_beyond(sessions)
        return self.evaluator.conclude(d, checks, queries=queries)

    def _feed(self) -> MessageFeed:
        tx = self._transaction()
        if tx.feed is None:
            limit = self.evaluator.settings.message_max_bytes
            tx.feed = MessageFeed(max_header_bytes=self.gate.limits.max_header_bytes, max_message_bytes=limit)
        return tx.feed

    def _known(self, tx: Transaction) -> dict[str, CheckResult]:
        """The results that have arrived so far (no waiting)."""
        done = {r.name: r.peek() for r in tx.running.values()}
        return {name: result for name, result in done.items() if result is not None} | self._ptr.known()


class _Ptr:
    """The connection's PTR lookup: started at connect, waited for at most once, shared by its transactions."""

    def __init__(self, evaluator: Evaluator, running: Running | None) -> None:
        self._evaluator = evaluator
        self.running = running
        self._result: CheckResult | None = None

    def wait(self) -> bool:
        """Wait for the lookup; False when there is none to wait for (or it is in)."""
        if self.running is None or self._result is not None:
            return False
        self._result = self._evaluator.runner.collect([self.running], None)["iprev"]
        return True

    def known(self) -> dict[str, CheckResult]:
        return {"iprev": self._result} if self._result is not None else {}

    def cancel(self) -> None:
        if self.running is not None:
            self._evaluator.runner.cancel([self.running])


def _ipv6(source: Source | Unknown) -> bool:
    return isinstance(source, Source) and source.version == 6
