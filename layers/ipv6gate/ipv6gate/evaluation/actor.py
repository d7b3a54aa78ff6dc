"""The gate's side effects: queue the bounce, record the decision. What failed is returned as data.

A bounce that should go out but cannot be queued would leave the sender with no word of a stopped
message: the policy (``disposition(..., bounce_lost=True)``) then lets the message through, and the
decision says why. Without a queue configured at all, bounces are off and the decision's bounce
says ``none``. IPv4 mail is outside the rule (always accepted): recording it would cost a write per
message and explain nothing, so the trace holds IPv6 and unknown-client decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from ipv6gate.bounce.policy import BounceAction, BounceDecision
from ipv6gate.decision.policy import disposition
from ipv6gate.evaluation.record import Decision
from ipv6gate.mail.source import Source
from ipv6gate.ports import BounceQueue, BounceQueueError, TraceError, TraceStore


class Actor:
    def __init__(
        self,
        bounces: BounceQueue | None,
        trace: TraceStore | None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.bounces = bounces
        self.trace = trace
        self.now = now

    def act(self, decision: Decision) -> Decision:
        """The decision with what could not be done folded in (notes, faults, disposition). Never raises."""
        request = decision.bounce_request()
        if request is not None and self.bounces is None and decision.bounce is not None:
            # Bounces are off: say so instead of the policy's "send", which nothing carried out.
            policy = decision.bounce
            decision = replace(
                decision,
                bounce=BounceDecision(
                    BounceAction.NONE, f"no bounce queue configured: nothing queued (policy: {policy.action.value})"
                ),
            )
        elif request is not None and self.bounces is not None:
            try:
                self.bounces.enqueue(request)
            except BounceQueueError as exc:
                decision = replace(
                    decision,
                    disposition=disposition(decision.verdicts, bounce_lost=True),
                    notes=(*decision.notes, f"bounce could not be queued, message let through: {exc}"),
                    faults=(*decision.faults, "bounce_queue"),
                )
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
