"""The report's counting (evaluation/report.py) and the index summary it reads (evaluation/summary.py)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.decision import replies
from ipv6gate.decision.policy import Checks, Disposition, RecipientVerdict, Verdict
from ipv6gate.evaluation.record import Decision
from ipv6gate.evaluation.report import DomainReport, Tally, build_report
from ipv6gate.evaluation.summary import base_summary, outcomes_by_domain
from ipv6gate.mail.source import Source

IP = ipaddress.IPv6Address("2001:db8::25")
T = datetime(2026, 1, 5, tzinfo=UTC)


def decision() -> Decision:
    checks = Checks(
        CheckResult("iprev", Result.FAIL, ""),
        CheckResult("spf", Result.TEMPERROR, ""),
        CheckResult("dkim", Result.NONE, ""),
    )
    verdicts = [
        RecipientVerdict("a@Watch.Test", Verdict.ACCEPT, replies.no_reverse_dns(IP), "monitor", monitor=True),
        RecipientVerdict("b@tenant.test", Verdict.REJECT, replies.no_reverse_dns(IP), "no PTR"),
        RecipientVerdict("c@tenant.test", Verdict.ACCEPT, None, "partner"),
        RecipientVerdict("no-domain", Verdict.ACCEPT, None, "recipient has no usable domain"),
    ]
    source = Source(IP, "mail.example", "inbound-smtp.eu-west-1.amazonaws.com")
    return Decision("m1", source, Disposition.CONTINUE, verdicts, checks, domains=("tenant.test", "watch.test"))


def test_outcomes_by_domain_and_base_summary() -> None:
    assert outcomes_by_domain(decision()) == {
        "watch.test": [{"outcome": "would_reject", "status": "4.7.25"}],
        "tenant.test": [{"outcome": "reject", "status": "4.7.25"}, {"outcome": "accept"}],
    }
    summary = base_summary(decision(), "2026-01-05T00:00:00.000+00:00")
    assert summary["checks"] == {"iprev": "fail", "spf": "temperror", "dkim": "none"}
    assert "faults" not in summary and summary["front_door"] == "ses"
    assert base_summary(replace(decision(), front_door="milter"), "")["front_door"] == "milter"
    assert base_summary(replace(decision(), faults=("trace_write",)), "")["faults"] == ["trace_write"]


def test_a_domain_counts_its_recipients_checks_and_who() -> None:
    entry = DomainReport("tenant.test")
    summary = base_summary(decision(), "t") | {"recipients": outcomes_by_domain(decision())["tenant.test"]}
    entry.add(summary | {"sender": "Ann@Example.ORG"})
    out = entry.to_dict()
    assert (out["messages"], out["accepted"], out["rejected"]["4.7.25"]) == (1, 1, 1)
    assert out["temperror"] == {"iprev": 0, "spf": 1, "dkim": 0}
    assert out["top_prefixes"] == [{"reply": "4.7.25", "prefix": "2001:db8::/64", "messages": 1, "example": "m1"}]
    assert out["top_sender_domains"][0]["sender_domain"] == "example.org"


def test_old_and_odd_summaries_do_not_break_the_count() -> None:
    entry = DomainReport("watch.test")
    entry.add({"message_id": "old", "client_ip": "2001:db8::1", "bounce": "send", "faults": ["bounce_queue"]})
    entry.add({"client_ip": None, "checks": {}, "recipients": [{"outcome": "reject", "status": "9.9.9"}, {}]})
    out = entry.to_dict()
    assert (out["messages"], out["unknown_client"], out["without_detail"]) == (1, 1, 1)
    assert out["bounces"] == {"queued": 0, "suppressed": 0, "lost": 1}
    assert out["rejected"] == {"4.7.25": 0, "4.7.26": 0, "5.2.1": 0} and out["top_sources"] == []


def test_top_keeps_n_rows_per_reply_busiest_first() -> None:
    tally = Tally()
    for i in range(5):
        for _ in range(i + 1):
            tally.add("4.7.26", f"ip{i}", f"m{i}")
    tally.add("4.7.25", "ip9", "m9")
    rows = tally.top("ip", n=2)
    assert [(r["reply"], r["ip"], r["messages"]) for r in rows] == [
        ("4.7.25", "ip9", 1),
        ("4.7.26", "ip4", 5),
        ("4.7.26", "ip3", 4),
    ]


class Window:
    def __init__(self, items: dict[str, list[dict[str, Any]]]) -> None:
        self.items = items

    def domain_window(self, domain: str, since: datetime, until: datetime, limit: int) -> Any:
        found = self.items.get(domain, [])
        return found[:limit], len(found) <= limit


def test_the_limit_spans_domains_and_is_noted() -> None:
    one = {"client_ip": "2001:db8::1", "decided_at": "T1", "checks": {}, "recipients": [{"outcome": "accept"}]}
    trace = Window({"a.test": [one, one], "b.test": [one, one], "c.test": [one]})
    report = build_report(trace, {"a.test": "enforce", "b.test": None, "c.test": None}, T, T, limit=3)
    assert [(d.items_read, d.complete) for d in report.domains] == [(2, True), (1, False), (0, False)]
    assert report.limit_reached and report.items_read == 3
    assert report.notes() == ["limit of 3 items reached; read newest first, b.test back to T1; not read: c.test"]
