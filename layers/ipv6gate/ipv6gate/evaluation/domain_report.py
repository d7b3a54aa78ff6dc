"""``ipv6gate report``: per recipient domain, what the gate decided over a window of the trace, and
what enforcing would stop (who sends the mail that gets, or in monitor mode would get, each reply).

Counts come from the domain index items' summaries (``evaluation/summary.py``), read through the
``TraceWindow`` port with a cap on items read; nothing here touches AWS. The domains are the tenants
and every other domain the trace's domain-per-day index lists in the window: mail refused with 5.2.1
because its domain is not a tenant shows up without anyone naming the domain.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ipv6gate.decision.replies import STATUSES
from ipv6gate.decision.rule import CHECK_NAMES
from ipv6gate.evaluation.summary import ACCEPT, REJECT, WOULD_REJECT, utc_day
from ipv6gate.ports import TraceWindow

TOP = 10  # rows per reply in each "who" list
NOT_A_TENANT = "not a tenant"  # the mode of a domain with no item in the tenants table


@dataclass
class Tally:
    """Messages per (reply, key), with the first message id seen: an example for ``ipv6gate trace``."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, status: str, key: str, message_id: str) -> None:
        self.counts[status, key] += 1
        self.examples.setdefault((status, key), message_id)

    def top(self, label: str, n: int = TOP) -> list[dict[str, Any]]:
        rows = sorted(self.counts.items(), key=lambda kv: (STATUSES.index(kv[0][0]), -kv[1], kv[0][1]))
        out: list[dict[str, Any]] = []
        per_reply: Counter[str] = Counter()
        for (status, key), count in rows:
            per_reply[status] += 1
            if per_reply[status] <= n:
                out.append({"reply": status, label: key, "messages": count, "example": self.examples[status, key]})
        return out


@dataclass
class DomainReport:
    domain: str
    mode: str | None = None  # the tenant's setting now: enforce, monitor, off, NOT_A_TENANT (None: not looked up)
    messages: int = 0  # IPv6 messages decided
    unknown_client: int = 0  # decided without a client address (the receipt header was missing)
    without_detail: int = 0  # index items written before summaries carried recipients and checks
    unindexed: int = 0  # decisions on days the domain-per-day index does not list for this domain
    accepted: int = 0  # recipients
    rejected: Counter[str] = field(default_factory=Counter)  # recipients by enhanced code
    would_reject: Counter[str] = field(default_factory=Counter)  # monitor mode: recipients by enhanced code
    temperror: Counter[str] = field(default_factory=Counter)  # messages by check
    bounces: Counter[str] = field(default_factory=Counter)  # messages: queued, suppressed, lost
    sources: Tally = field(default_factory=Tally)
    prefixes: Tally = field(default_factory=Tally)
    sender_domains: Tally = field(default_factory=Tally)
    items_read: int = 0
    complete: bool = True  # False: the item limit stopped the read before the window's start
    oldest_read: str | None = None

    @property
    def tenant(self) -> bool | None:
        """Whether the tenants table has an item for the domain (enabled or not); None: not looked up."""
        return None if self.mode is None else self.mode != NOT_A_TENANT

    def add(self, summary: Mapping[str, Any]) -> None:
        client = summary.get("client_ip")
        if isinstance(client, str) and ":" in client:
            self.messages += 1
        else:
            self.unknown_client += 1
        bounce, faults = summary.get("bounce"), summary.get("faults") or ()
        if bounce == "suppress":
            self.bounces["suppressed"] += 1
        elif bounce in ("send", "defer"):
            self.bounces["lost" if "bounce_queue" in faults else "queued"] += 1
        recipients, checks = summary.get("recipients"), summary.get("checks")
        if not isinstance(recipients, list) or not isinstance(checks, Mapping):
            self.without_detail += 1
            return
        self.temperror.update(name for name, result in checks.items() if result == "temperror")
        stopped = set()
        for recipient in recipients:
            kind, status = recipient.get("outcome"), recipient.get("status")
            if kind == ACCEPT:
                self.accepted += 1
            elif kind in (REJECT, WOULD_REJECT) and status in STATUSES:
                (self.rejected if kind == REJECT else self.would_reject)[status] += 1
                stopped.add(status)
        for status in stopped:
            self._who(summary, status)

    def _who(self, summary: Mapping[str, Any], status: str) -> None:
        message_id = str(summary.get("message_id", ""))
        client = summary.get("client_ip")
        if isinstance(client, str) and client:
            self.sources.add(status, client, message_id)
            if ":" in client:
                self.prefixes.add(status, str(ipaddress.ip_network(f"{client}/64", strict=False)), message_id)
        sender = str(summary.get("sender") or "")
        self.sender_domains.add(status, sender.rpartition("@")[2].lower() or "<>", message_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "tenant": self.tenant,
            "mode": self.mode,
            "messages": self.messages,
            "unknown_client": self.unknown_client,
            "accepted": self.accepted,
            "rejected": {s: self.rejected[s] for s in STATUSES},
            "would_reject": {s: self.would_reject[s] for s in STATUSES},
            "temperror": {c: self.temperror[c] for c in CHECK_NAMES},
            "bounces": {k: self.bounces[k] for k in ("queued", "suppressed", "lost")},
            "top_sources": self.sources.top("ip"),
            "top_prefixes": self.prefixes.top("prefix"),
            "top_sender_domains": self.sender_domains.top("sender_domain"),
            "without_detail": self.without_detail,
            "unindexed": self.unindexed,
            "items_read": self.items_read,
            "complete": self.complete,
            "oldest_read": self.oldest_read,
        }


@dataclass
class Report:
    since: datetime
    until: datetime
    limit: int
    domains: list[DomainReport] = field(default_factory=list)
    index_read: int | None = None  # domain-per-day entries read (None: not read, one --domain)
    index_complete: bool = True

    @property
    def items_read(self) -> int:
        return sum(d.items_read for d in self.domains)

    @property
    def limit_reached(self) -> bool:
        """The limit cut a domain's read or the domain list."""
        return not self.index_complete or not all(d.complete for d in self.domains)

    def notes(self) -> list[str]:
        out = []
        if not all(d.complete for d in self.domains):
            cut = [f"{d.domain} back to {d.oldest_read}" for d in self.domains if not d.complete and d.items_read]
            unread = [d.domain for d in self.domains if not d.complete and not d.items_read]
            parts = [
                f"read newest first, {', '.join(cut)}" if cut else "",
                f"not read: {', '.join(unread)}" if unread else "",
            ]
            out.append(f"limit of {self.limit} items reached; " + "; ".join(p for p in parts if p))
        if not self.index_complete:
            out.append(
                f"limit of {self.limit} entries reached listing the domains decided for: "
                "domains that are not tenants may be missing"
            )
        old = sum(d.without_detail for d in self.domains)
        if old:
            out.append(f"decisions recorded before per-recipient detail: {old} (counted as messages and bounces only)")
        unindexed = sum(d.unindexed for d in self.domains)
        if unindexed:
            out.append(
                f"decisions on days the domain-per-day index does not list: {unindexed} (recorded before it "
                "existed); a domain that is not a tenant has no row for those days: name it with --domain"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(timespec="seconds"),
            "until": self.until.isoformat(timespec="seconds"),
            "limit": self.limit,
            "items_read": self.items_read,
            "limit_reached": self.limit_reached,
            "domain_index": None
            if self.index_read is None
            else {"read": self.index_read, "complete": self.index_complete},
            "notes": self.notes(),
            "domains": [d.to_dict() for d in self.domains],
        }


def build_report(
    trace: TraceWindow,
    domains: Mapping[str, str | None],
    since: datetime,
    until: datetime,
    limit: int,
    *,
    every_decided: bool = False,
) -> Report:
    """``domains``: each domain with its tenant mode (``NOT_A_TENANT`` for one without an item).

    ``every_decided`` adds every other domain the domain-per-day index lists in the window, as not a
    tenant (dropped again if the window itself holds none of its decisions: the index is per day).
    Domains are read in name order until ``limit`` items are read; the index read has a limit of its own.
    """
    report = Report(since, until, limit)
    listed: dict[str, set[str]] | None = None
    modes = dict(domains)
    if every_decided:
        listed, report.index_complete = trace.domains_decided(since, until, limit)
        report.index_read = sum(len(days) for days in listed.values())
        modes |= {d: NOT_A_TENANT for d in listed if d not in modes}
    for domain, mode in sorted(modes.items()):
        entry = DomainReport(domain, mode)
        remaining = limit - report.items_read
        if remaining <= 0:
            entry.complete = False
            report.domains.append(entry)
            continue
        summaries, entry.complete = trace.domain_window(domain, since, until, remaining)
        if domain not in domains and entry.complete and not summaries:
            continue  # listed for a day of the window, decided outside it
        report.domains.append(entry)
        entry.items_read = len(summaries)
        for summary in summaries:
            entry.add(summary)
        if summaries:
            entry.oldest_read = str(summaries[-1].get("decided_at"))
        if listed is not None:
            days = listed.get(domain, set())
            entry.unindexed = sum(1 for s in summaries if (day := _day(s)) is not None and day not in days)
    return report


def _day(summary: Mapping[str, Any]) -> str | None:
    try:
        return utc_day(str(summary.get("decided_at")))
    except ValueError:
        return None
