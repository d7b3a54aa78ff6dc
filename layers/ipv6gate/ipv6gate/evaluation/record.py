"""A decision: what the gate concluded about one message, and the bounce request it implies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ipv6gate.bounce.backscatter import BounceAction, BounceDecision
from ipv6gate.bounce.request import BouncedRecipient, BounceRequest
from ipv6gate.decision.rule import Checks, Disposition, RecipientVerdict, Verdict
from ipv6gate.mail.source import Source, Unknown


@dataclass(frozen=True, slots=True)
class Decision:
    message_id: str
    source: Source | Unknown
    disposition: Disposition | None  # SES's answer; None at SMTP time, where the reply is the answer
    verdicts: list[RecipientVerdict]
    checks: Checks
    domains: tuple[str, ...] = ()  # the recipients' canonical domains, for the trace's index
    notes: tuple[str, ...] = ()
    # What went wrong, machine-readable (the notes say it for people): "tenant_lookup",
    # "bounce_queue", "trace_write". Each is a metric of its own.
    faults: tuple[str, ...] = ()
    dns_queries: int = 0
    elapsed_ms: float = 0.0
    mail_from: str = ""
    arrival: str = ""  # SES's receipt timestamp
    bounce: BounceDecision | None = None  # set when some recipient was rejected
    dkim_signed: bool = False  # SES's header list shows a DKIM-Signature (or was truncated)
    front_door: str = "ses"  # who decided: "ses" (the receipt rule's Lambda) or "milter" (SMTP time)

    @property
    def client_ip(self) -> str | None:
        return str(self.source.ip) if isinstance(self.source, Source) else None

    def bounce_request(self) -> BounceRequest | None:
        """What the bouncer needs to send the DSN, when the bounce policy said send (or defer)."""
        if self.bounce is None or not isinstance(self.source, Source):
            return None
        arrival = self.arrival or datetime.now(UTC).isoformat()
        return bounce_request(
            self.message_id,
            self.source,
            self.verdicts,
            self.bounce,
            mail_from=self.mail_from,
            arrival=arrival,
            dkim_signed=self.dkim_signed,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "message_id": self.message_id,
            "front_door": self.front_door,
            "client_ip": self.client_ip,
            "ip_version": self.source.version if isinstance(self.source, Source) else None,
            "helo": self.source.helo if isinstance(self.source, Source) else None,
            **({"disposition": self.disposition.value} if self.disposition is not None else {}),
            "recipients": [v.to_dict() for v in self.verdicts],
            "checks": {c.method: c.to_dict() for c in self.checks},
            "bounce": self.bounce.to_dict() if self.bounce else None,
            "notes": list(self.notes),
            "faults": list(self.faults),
            "dns_queries": self.dns_queries,
            "elapsed_ms": round(self.elapsed_ms, 1),
        }


def bounce_request(
    message_id: str,
    source: Source,
    verdicts: list[RecipientVerdict],
    bounce: BounceDecision,
    *,
    mail_from: str,
    arrival: str,
    dkim_signed: bool,
) -> BounceRequest | None:
    """The request the bouncer acts on, when ``bounce`` queues one: the rejected recipients and their replies."""
    if not bounce.action.queues:
        return None
    rejected = tuple(
        BouncedRecipient(v.recipient, v.reply.status, str(v.reply))
        for v in verdicts
        if v.verdict is Verdict.REJECT and v.reply is not None
    )
    return BounceRequest(
        message_id=message_id,
        mail_from=mail_from,
        client_ip=str(source.ip),
        arrival=arrival,
        reporting_mta=f"dns; {source.receiver or 'inbound-smtp.amazonaws.com'}",
        recipients=rejected,
        authenticate=bounce.action is BounceAction.DEFER,
        dkim_signed=dkim_signed,
        helo=source.helo,
    )
