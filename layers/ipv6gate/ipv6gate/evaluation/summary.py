"""What a trace index item says about a decision: one line of ``ipv6gate trace --ip/--sender/--domain``,
and on a domain's item what ``ipv6gate report`` counts (that domain's recipients, each check's result).

Kept small (it is copied into every index item of the message): the full decision is its own item.
Items written before ``checks`` and ``recipients`` existed lack them; the report counts those apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ipv6gate.decision.rule import RecipientVerdict, Verdict
from ipv6gate.evaluation.record import Decision
from ipv6gate.mail.domains import DomainError, recipient_domain

ACCEPT = "accept"
REJECT = "reject"
WOULD_REJECT = "would_reject"  # a monitor-mode tenant: the reply was logged, not given


def base_summary(decision: Decision, decided_at: str) -> dict[str, Any]:
    checks = decision.checks
    out: dict[str, Any] = {
        "message_id": decision.message_id,
        "decided_at": decided_at,
        "client_ip": decision.client_ip,
        "sender": decision.mail_from,
        **({"disposition": decision.disposition.value} if decision.disposition is not None else {}),
        "replies": [str(v.reply) if v.reply and not v.monitor else "accept" for v in decision.verdicts],
        "bounce": decision.bounce.action.value if decision.bounce else None,
        "checks": {c.method: c.result.value for c in checks},
    }
    if decision.faults:
        out["faults"] = list(decision.faults)
    out["front_door"] = decision.front_door  # "ses" or "milter": the report may split by it
    return out


def utc_day(moment: datetime | str) -> str:
    """The UTC day (``YYYY-MM-DD``) of a decision time, or of its ISO text as summaries carry it."""
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return when.astimezone(UTC).date().isoformat()


def outcomes_by_domain(decision: Decision) -> dict[str, list[dict[str, str]]]:
    """Each recipient domain's outcomes, e.g. ``{"example.com": [{"outcome": "reject", "status": "4.7.25"}]}``."""
    out: dict[str, list[dict[str, str]]] = {}
    for verdict in decision.verdicts:
        try:
            domain = recipient_domain(verdict.recipient)
        except DomainError:
            continue  # no index item for an unusable domain either
        out.setdefault(domain, []).append(outcome(verdict))
    return out


def outcome(verdict: RecipientVerdict) -> dict[str, str]:
    if verdict.reply is not None and verdict.monitor:
        return {"outcome": WOULD_REJECT, "status": verdict.reply.status}
    if verdict.reply is not None and verdict.verdict is Verdict.REJECT:
        return {"outcome": REJECT, "status": verdict.reply.status}
    return {"outcome": ACCEPT}
