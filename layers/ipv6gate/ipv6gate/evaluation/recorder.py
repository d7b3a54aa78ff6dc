"""After the decision: write it to the trace. What could not be written is reported as data.

The decision is final when it gets here (``Evaluator.conclude`` queued its bounce): recording adds
a note and a ``trace_write`` fault when the write fails, and changes nothing else. IPv4 mail is
outside the rule (always accepted): recording it would cost a write per message and explain
nothing, so the trace holds IPv6 and unknown-client decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from ipv6gate.evaluation.record import Decision
from ipv6gate.mail.source import Source
from ipv6gate.ports import TraceError, TraceStore


class Recorder:
    def __init__(self, trace: TraceStore | None, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.trace = trace
        self.now = now

    def record(self, decision: Decision) -> Decision:
        """The decision, with a note and a fault added when the trace write failed. Never raises."""
        ipv4 = isinstance(decision.source, Source) and decision.source.version == 4
        if self.trace is None or ipv4:
            return decision
        try:
            self.trace.record(decision, self.now())
        except TraceError as exc:
            return replace(
                decision,
                notes=(*decision.notes, f"decision not recorded in the trace: {exc}"),
                faults=(*decision.faults, "trace_write"),
            )
        return decision
