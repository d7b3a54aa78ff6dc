"""The decision: a pure function of (source, tenants, check results) -> per-recipient verdicts.

Order per recipient (Exchange Online's documented rule): not opted in -> 550 5.2.1; no usable PTR -> 450 4.7.25;
neither SPF nor DKIM pass -> 450 4.7.26; otherwise accept. A temporary DNS failure rejects only
when the outcome does not depend on it, unless the operator chose TEMPERROR_ACTION=reject.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum

from ipv6gate.checks.results import CheckResult, Result, skipped
from ipv6gate.decision import replies
from ipv6gate.decision.replies import Reply
from ipv6gate.decision.tenants import Mode, Tenant
from ipv6gate.mail.source import Source, Unknown


class TempErrorAction(StrEnum):
    ACCEPT = "accept"  # a temporary DNS failure that decides the outcome lets the mail through
    REJECT = "reject"  # ... or answers the 450 that the failing check would carry


class Verdict(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"


class Disposition(StrEnum):
    CONTINUE = "CONTINUE"
    STOP_RULE_SET = "STOP_RULE_SET"


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    domain: str | None  # canonical form; None when the address has no usable domain
    tenant: Tenant | None
    tenant_error: str | None = None  # the tenant store could not be read for this domain


CHECK_NAMES = ("iprev", "spf", "dkim")


@dataclass(frozen=True, slots=True)
class Checks:
    """The three results the rule reads, one per method: iterable in ``CHECK_NAMES`` order, indexable by name."""

    iprev: CheckResult
    spf: CheckResult
    dkim: CheckResult

    @classmethod
    def of(cls, results: Mapping[str, CheckResult], why: str = "") -> Checks:
        """From a name -> result mapping; each method missing from it is ``skipped``, saying ``why`` it was not needed.

        The one place a check that never ran (or whose verdict no longer mattered) gets its record.
        """
        full = {name: results.get(name) or skipped(name, f"not needed: {why}") for name in CHECK_NAMES}
        return cls(full["iprev"], full["spf"], full["dkim"])

    def __iter__(self) -> Iterator[CheckResult]:
        return iter((self.iprev, self.spf, self.dkim))

    def __getitem__(self, name: str) -> CheckResult:
        if name not in CHECK_NAMES:
            raise KeyError(name)
        result: CheckResult = getattr(self, name)
        return result

    def ran(self) -> bool:
        """Whether any check ran (a record of only ``skipped`` results says nothing about the client)."""
        return any(c.result is not Result.SKIPPED for c in self)


@dataclass(frozen=True, slots=True)
class RecipientVerdict:
    recipient: str
    verdict: Verdict
    reply: Reply | None  # the reply a rejection carries (also set for a monitor-mode would-reject)
    reason: str
    monitor: bool = False  # True: the tenant is in monitor mode and ``reply`` was not enforced

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "recipient": self.recipient,
            "verdict": self.verdict.value,
            "reply": str(self.reply) if self.reply and not self.monitor else None,
            "reason": self.reason,
        }
        if self.monitor:
            out["monitor"] = True
            out["would_reply"] = str(self.reply) if self.reply else None
        return out


class _Gate(Enum):
    OK = "ok"
    FAILED = "failed"
    UNKNOWN = "unknown"  # temperror: the answer may be different later


def needs_checks(source: Source | Unknown, recipients: list[Recipient]) -> bool:
    """Whether any recipient's verdict depends on the PTR/SPF/DKIM results."""
    if not isinstance(source, Source) or source.version != 6:
        return False
    return any(_opted_in(r) and not r.tenant.is_partner(source.ip) for r in recipients if r.tenant)


def decide(
    source: Source | Unknown,
    recipients: list[Recipient],
    checks: Checks,
    temperror_action: TempErrorAction = TempErrorAction.ACCEPT,
) -> list[RecipientVerdict]:
    return [_decide_one(source, r, checks, temperror_action) for r in recipients]


def disposition(verdicts: list[RecipientVerdict], *, bounce_lost: bool = False) -> Disposition:
    """Stop the rule set only when no recipient is left to deliver to.

    ``bounce_lost``: a bounce was due but could not be queued. Stopping the message then would leave
    its sender with no word at all, so it is let through instead (fail open; the decision says why).
    """
    if verdicts and all(v.verdict is Verdict.REJECT for v in verdicts) and not bounce_lost:
        return Disposition.STOP_RULE_SET
    return Disposition.CONTINUE


# One result of each class the rule tells apart: pass, temporary, anything else (fail, none, ...).
_REPRESENTATIVES = (Result.PASS, Result.TEMPERROR, Result.FAIL)


def certain(
    source: Source | Unknown,
    recipients: list[Recipient],
    known: Mapping[str, CheckResult],
    temperror_action: TempErrorAction = TempErrorAction.ACCEPT,
) -> bool:
    """Whether ``decide`` already gives the same verdicts and replies, whatever the checks not in ``known`` say.

    The check runner asks this after each result, so the rule is written once (in ``decide``): every
    completion of the missing results is tried, one result per class the rule distinguishes
    (``tests/property/test_certainty.py`` proves that these classes stand for every RFC 8601 value).
    """
    missing = [name for name in CHECK_NAMES if name not in known]
    outcomes: set[tuple[tuple[Verdict, str | None, bool], ...]] = set()
    for combination in itertools.product(_REPRESENTATIVES, repeat=len(missing)):
        results = dict(known) | {name: CheckResult(name, r, "") for name, r in zip(missing, combination, strict=True)}
        verdicts = decide(source, recipients, Checks.of(results), temperror_action)
        outcomes.add(tuple((v.verdict, str(v.reply) if v.reply else None, v.monitor) for v in verdicts))
        if len(outcomes) > 1:
            return False
    return True


def settled(
    source: Source | Unknown,
    recipients: list[Recipient],
    known: Mapping[str, CheckResult],
    temperror_action: TempErrorAction = TempErrorAction.ACCEPT,
) -> list[RecipientVerdict] | None:
    """The verdicts when ``certain`` says the missing results cannot change them, else None.

    The SMTP-time front door asks this at each RCPT with the results it has so far (the PTR, and
    SPF when it has finished): a 550 5.2.1 or 450 4.7.25 is then given to that recipient at once.
    """
    if not certain(source, recipients, known, temperror_action):
        return None
    return decide(source, recipients, Checks.of(known, "the verdict was already certain"), temperror_action)


def _decide_one(
    source: Source | Unknown, rcpt: Recipient, checks: Checks, temperror_action: TempErrorAction
) -> RecipientVerdict:
    if isinstance(source, Unknown):
        return RecipientVerdict(rcpt.address, Verdict.ACCEPT, None, f"client address unknown: {source.reason}")
    if source.version == 4:
        return RecipientVerdict(rcpt.address, Verdict.ACCEPT, None, "IPv4 client: outside the IPv6 rule")
    assert isinstance(source.ip, ipaddress.IPv6Address)
    ip = source.ip
    tenant = rcpt.tenant
    monitor = tenant is not None and tenant.mode is Mode.MONITOR

    def reject(reply: Reply, reason: str) -> RecipientVerdict:
        if monitor:
            return RecipientVerdict(rcpt.address, Verdict.ACCEPT, reply, f"monitor mode, would reject: {reason}", True)
        return RecipientVerdict(rcpt.address, Verdict.REJECT, reply, reason)

    if rcpt.domain is None:
        return RecipientVerdict(rcpt.address, Verdict.ACCEPT, None, "recipient has no usable domain")
    if rcpt.tenant_error is not None:
        return RecipientVerdict(rcpt.address, Verdict.ACCEPT, None, f"accepted (fail open): {rcpt.tenant_error}")
    if tenant is None or not tenant.ipv6_inbound:
        why = "domain is not a tenant" if tenant is None else "tenant has not opted in to IPv6"
        return reject(replies.ipv6_not_accepted(rcpt.domain), why)
    if tenant.is_partner(ip):
        return RecipientVerdict(rcpt.address, Verdict.ACCEPT, None, "partner connector prefix: not anonymous")

    ptr = _ptr_gate(checks.iprev)
    auth = _auth_gate(checks.spf, checks.dkim)
    if ptr is _Gate.FAILED:
        return reject(replies.no_reverse_dns(ip), f"iprev {checks.iprev.result}: {checks.iprev.reason}")
    if auth is _Gate.FAILED:
        return reject(replies.not_authenticated(ip), f"spf {checks.spf.result}, dkim {checks.dkim.result}")
    if ptr is _Gate.OK and auth is _Gate.OK:
        passed = " and ".join(c.method for c in (checks.spf, checks.dkim) if c.passed)
        return RecipientVerdict(rcpt.address, Verdict.ACCEPT, None, f"PTR published, {passed} pass")

    # What is left is undecided because a lookup failed temporarily.
    pending = checks.iprev if ptr is _Gate.UNKNOWN else (checks.spf if checks.spf.temporary else checks.dkim)
    reason = f"{pending.method} temperror decides: {pending.reason}"
    if temperror_action is TempErrorAction.REJECT:
        reply = replies.no_reverse_dns(ip) if ptr is _Gate.UNKNOWN else replies.not_authenticated(ip)
        return reject(reply, reason)
    return RecipientVerdict(rcpt.address, Verdict.ACCEPT, None, f"accepted, {reason}")


def _opted_in(rcpt: Recipient) -> bool:
    return rcpt.tenant is not None and rcpt.tenant.ipv6_inbound


def _ptr_gate(iprev: CheckResult) -> _Gate:
    if iprev.result is Result.PASS:
        return _Gate.OK
    return _Gate.UNKNOWN if iprev.result is Result.TEMPERROR else _Gate.FAILED


def _auth_gate(spf: CheckResult, dkim: CheckResult) -> _Gate:
    if spf.passed or dkim.passed:
        return _Gate.OK
    if spf.temporary or dkim.temporary:
        return _Gate.UNKNOWN
    return _Gate.FAILED
