"""DKIM keys asked as their DKIM-Signature headers arrive (the SMTP door), in the session DKIM then verifies with.

Postfix hands a milter the headers only once the whole message is in, so a key asked at its header
instead of after the body is hashed saves the body's time, not a round trip; with the key in hand
when the body ends, only the signature check is left. Keys are asked only for the signatures DKIM
will verify (the first ``DKIM_MAX_SIGNATURES``); the check takes an early answer only for a name it
asks itself (``DnsSession.txt``), so a signature it then finds unusable or forged changes nothing.
"""

from __future__ import annotations

from ipv6gate.dns import DnsSession
from ipv6gate.evaluation.evaluator import Evaluator
from ipv6gate.evaluation.runner import Check, Running


class EarlyKeys:
    """One transaction's: the DNS session opened at the first key asked, shared with its DKIM check."""

    def __init__(self, evaluator: Evaluator) -> None:
        self._evaluator = evaluator
        self.session: DnsSession | None = None
        self._asked = 0

    def ask(self, field: bytes, signature: bytes, *, wanted: bool) -> None:
        """For a DKIM-Signature header DKIM will verify (``wanted``): start the lookup of the key it names."""
        from ipv6gate.checks.dkim_records import key_name

        if field.strip().lower() != b"dkim-signature" or not wanted:
            return
        if self._asked >= self._evaluator.settings.dkim_max_signatures:
            return
        self._asked += 1
        name = key_name(signature.decode("latin-1"))
        if name is None:
            return
        if self.session is None:
            self.session = self._evaluator.runner.dns.session(self._evaluator.deadline())
        self._evaluator.runner.ask_txt_early(self.session, name)

    def start_check(self, check: Check) -> Running:
        """DKIM on a reader (``RunnerBusy`` when none is free), in this session when a key was asked."""
        if self.session is None:
            return self._evaluator.start_dkim(check, reader=True)
        return self._evaluator.runner.start("dkim", check, self.session.deadline, reader=True, session=self.session)

    def cancel(self) -> None:
        """Nobody will ask for these keys any more (verdict in, transaction ended): none not yet sent is sent."""
        if self.session is not None:
            self.session.cancel()

    def queries_beyond(self, counted: list[DnsSession]) -> int:
        """This session's queries when it is not among ``counted`` (keys asked for a check that never ran)."""
        if self.session is None or any(s is self.session for s in counted):
            return 0
        return self.session.queries
