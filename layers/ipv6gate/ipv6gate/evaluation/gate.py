"""The SES door into the evaluation: a whole message at once (the receipt event, and for the CLI its raw copy).

The Lambda handler and ``ipv6gate evaluate`` both call ``Gate.evaluate``, so what the CLI prints is
what the function decides. Every check starts at once (the PTR lookup in the calling thread, which
would only wait for it; with tenants still to be fetched, PTR and SPF before that); the ``Evaluator``
waits until the policy says the verdicts are certain, then builds the final decision (its bounce queued). ``record``
writes it to the trace. Faults in DNS or AWS never reject silently: they become ``temperror``
results or notes, and the decision says what happened.
"""

from __future__ import annotations

import io

from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.decision.rule import Checks, needs_checks
from ipv6gate.dns import DnsResolver, DnsSession
from ipv6gate.evaluation.evaluator import ALREADY_CERTAIN, Draft, Evaluator, tenants_at_hand
from ipv6gate.evaluation.record import Decision
from ipv6gate.evaluation.recorder import Recorder
from ipv6gate.evaluation.runner import Running, run_here, until_cancelled
from ipv6gate.evaluation.stored_message import check_stored_dkim
from ipv6gate.mail.event import Mail
from ipv6gate.mail.source import Source, find_source
from ipv6gate.ports import MessageStore
from ipv6gate.settings import Settings


class Gate:
    """Long-lived (one per cold start): the evaluator, the message store (for DKIM), the recorder.

    ``complete_checks``: False stops waiting as soon as the verdict is certain (the Lambda); True
    runs every check to the end, e.g. to see every result in ``ipv6gate evaluate --all-checks``.
    """

    def __init__(
        self,
        evaluator: Evaluator,
        messages: MessageStore | None,
        recorder: Recorder,
        *,
        complete_checks: bool = False,
    ) -> None:
        self.evaluator = evaluator
        self.messages = messages
        self.recorder = recorder
        self.complete_checks = complete_checks

    @property
    def settings(self) -> Settings:
        return self.evaluator.settings

    @property
    def dns(self) -> DnsResolver:
        return self.evaluator.runner.dns

    def evaluate(self, mail: Mail, raw_message: bytes | None = None) -> Decision:
        """The final decision for ``mail`` (bounce queued when one is due)."""
        ev = self.evaluator
        started_at = ev.clock()
        source = find_source(mail.headers, ev.settings.trusted_receivers, mail.message_id)
        draft = Draft(
            source,
            mail.mail_from,
            started_at,
            message_id=mail.message_id,
            arrival=mail.timestamp,
            headers=mail.headers,
            dkim_signed=mail.may_be_dkim_signed,
        )
        deadline = ev.deadline()
        early = isinstance(source, Source) and source.version == 6 and not tenants_at_hand(ev.tenants, mail.recipients)
        started: list[Running] = []
        if early:
            # The tenants must be fetched: PTR and SPF need only SES's client and envelope sender, so their
            # round trips overlap the store's. Unneeded after all (nobody opted in, or the lookup failed):
            # cancelled, and the decision is the one made without them.
            assert isinstance(source, Source)
            started = [ev.start_iprev(source, deadline), ev.start_spf(source, mail.mail_from, deadline)]
        draft.pending = ev.recipients(mail.recipients, source, draft)
        draft.domains = {r.domain for r in draft.pending if r.domain}
        if not needs_checks(source, draft.pending):
            ev.runner.cancel(started)
            checks = Checks.of({}, "IPv4, unknown client, or no opted-in recipient")
            return ev.conclude(draft, checks, queries=_sent(started))
        assert isinstance(source, Source)  # needs_checks: an IPv6 client
        if not early:
            started.append(ev.start_spf(source, mail.mail_from, deadline))

        def dkim(session: DnsSession) -> CheckResult:
            return self._dkim(mail, session, raw_message)

        # Unsigned (as far as SES's headers show): DKIM's "none" needs neither the message nor DNS, so it is
        # not worth a pool thread waking up next to the PTR lookup.
        unsigned = raw_message is None and not mail.may_be_dkim_signed
        started.append(run_here(ev.runner.dns, "dkim", dkim, deadline) if unsigned else ev.start_dkim(dkim, deadline))
        if not early:
            # No verdict can do without the PTR, so this thread asks it itself while the pool runs SPF and
            # DKIM: its query goes out and its answer is read without a hand-off between threads.
            started.append(ev.start_iprev(source, deadline, here=True))
        results = ev.collect(started, draft, complete=self.complete_checks)
        return ev.conclude(draft, Checks.of(results, ALREADY_CERTAIN), queries=_sent(started))

    def record(self, decision: Decision) -> Decision:
        """Write the decision to the trace (``Recorder.record``); never raises."""
        return self.recorder.record(decision)

    def _dkim(self, mail: Mail, session: DnsSession, raw: bytes | None) -> CheckResult:
        limit = self.evaluator.settings.dkim_max_signatures
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
            max_bytes=self.evaluator.settings.message_max_bytes,
            max_signatures=limit,
            wrap=lambda stream: until_cancelled(stream, session),
        )


def _sent(started: list[Running]) -> int:
    """The DNS queries the decision's checks sent (speculative ones included)."""
    return sum(r.session.queries for r in started)
