"""The report's counting (evaluation/domain_report.py) and the index summary it reads (evaluation/summary.py)."""

from __future__ import annotations

import csv
import io
import ipaddress
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.decision import replies
from ipv6gate.decision.rule import Checks, Disposition, RecipientVerdict, Verdict
from ipv6gate.entrypoints.report_render import csv_text, text
from ipv6gate.evaluation.domain_report import NOT_A_TENANT, DomainReport, Tally, build_report
from ipv6gate.evaluation.record import Decision
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
    """Summaries per domain, newest first; ``days``: the domain-per-day index (domain -> days)."""

    def __init__(self, items: dict[str, list[dict[str, Any]]], days: dict[str, set[str]] | None = None) -> None:
        self.items = items
        self.days = days or {}

    def domain_window(self, domain: str, since: datetime, until: datetime, limit: int) -> Any:
        found = self.items.get(domain, [])
        return found[:limit], len(found) <= limit

    def domains_decided(self, since: datetime, until: datetime, limit: int) -> Any:
        entries = sorted((day, domain) for domain, days in self.days.items() for day in days)[:limit]
        listed: dict[str, set[str]] = {}
        for day, domain in entries:
            listed.setdefault(domain, set()).add(day)
        return listed, len(entries) == sum(len(days) for days in self.days.values())


def test_the_limit_spans_domains_and_is_noted() -> None:
    one = {"client_ip": "2001:db8::1", "decided_at": "T1", "checks": {}, "recipients": [{"outcome": "accept"}]}
    trace = Window({"a.test": [one, one], "b.test": [one, one], "c.test": [one]})
    report = build_report(trace, {"a.test": "enforce", "b.test": None, "c.test": None}, T, T, limit=3)
    assert [(d.items_read, d.complete) for d in report.domains] == [(2, True), (1, False), (0, False)]
    assert report.limit_reached and report.items_read == 3
    assert report.notes() == ["limit of 3 items reached; read newest first, b.test back to T1; not read: c.test"]


DAY = "2026-01-05"


def summary_of(d: Decision, domain: str, at: str = f"{DAY}T10:00:00.000+00:00") -> dict[str, Any]:
    """The summary the trace writes on ``domain``'s index item for ``d``."""
    return base_summary(d, at) | {"recipients": outcomes_by_domain(d).get(domain, [])}


def refused_for_no_tenant(message_id: str, ip: str) -> Decision:
    """A message to a domain with no tenant item: 550 5.2.1, as Exchange Online answers."""
    source = Source(ipaddress.IPv6Address(ip), "mail.example", "inbound-smtp.eu-west-1.amazonaws.com")
    verdicts = [RecipientVerdict("x@New.Test", Verdict.REJECT, replies.ipv6_not_accepted("new.test"), "no tenant")]
    return replace(decision(), message_id=message_id, source=source, verdicts=verdicts, domains=("new.test",))


def world() -> Window:
    items = {
        "tenant.test": [summary_of(decision(), "tenant.test")],
        "watch.test": [summary_of(decision(), "watch.test")],
        "new.test": [
            summary_of(refused_for_no_tenant("n2", "2001:db8:9::2"), "new.test"),
            summary_of(refused_for_no_tenant("n1", "2001:db8:9::1"), "new.test"),
        ],
    }
    # the day index lists every domain decided for, tenant or not
    return Window(items, {"tenant.test": {DAY}, "watch.test": {DAY}, "new.test": {DAY}, "gone.test": {DAY}})


TENANTS = {"tenant.test": "enforce", "watch.test": "monitor"}


def test_a_domain_that_is_not_a_tenant_is_reported_and_flagged() -> None:
    report = build_report(world(), TENANTS, T, T, limit=100, every_decided=True)
    data = report.to_dict()
    by_domain = {d["domain"]: d for d in data["domains"]}
    assert list(by_domain) == ["new.test", "tenant.test", "watch.test"]  # gone.test: no decision in the window
    new = by_domain["new.test"]
    assert (new["tenant"], new["mode"], new["messages"]) == (False, NOT_A_TENANT, 2)
    assert new["rejected"] == {"4.7.25": 0, "4.7.26": 0, "5.2.1": 2}
    assert [(r["reply"], r["prefix"], r["messages"], r["example"]) for r in new["top_prefixes"]] == [
        ("5.2.1", "2001:db8:9::/64", 2, "n2")
    ]
    assert data["domain_index"] == {"read": 4, "complete": True} and data["notes"] == []

    # the tenants' rows are what they were without the index
    alone = build_report(world(), TENANTS, T, T, limit=100).to_dict()
    assert alone["domain_index"] is None and [d["domain"] for d in alone["domains"]] == ["tenant.test", "watch.test"]
    assert [by_domain[d["domain"]] for d in alone["domains"]] == alone["domains"]
    assert by_domain["tenant.test"]["tenant"] is True and by_domain["tenant.test"]["rejected"]["4.7.25"] == 1


def test_a_disabled_tenant_is_a_tenant_and_an_unknown_one_is_unknown() -> None:
    report = build_report(world(), {"tenant.test": "off", "new.test": None}, T, T, limit=100)
    assert [(d.domain, d.tenant, d.mode) for d in report.domains] == [
        ("new.test", None, None),
        ("tenant.test", True, "off"),
    ]


def test_decisions_from_before_the_day_index_are_counted_and_noted() -> None:
    trace = world()
    trace.items["tenant.test"].append(summary_of(decision(), "tenant.test", "2026-01-01T23:59:59.000+00:00"))
    report = build_report(trace, TENANTS, T, T, limit=100, every_decided=True)
    tenant = report.domains[1].to_dict()
    assert (tenant["domain"], tenant["messages"], tenant["unindexed"]) == ("tenant.test", 2, 1)
    assert report.notes() == [
        "decisions on days the domain-per-day index does not list: 1 (recorded before it existed); "
        "a domain that is not a tenant has no row for those days: name it with --domain"
    ]


def test_a_cut_domain_list_is_noted() -> None:
    report = build_report(world(), TENANTS, T, T, limit=2, every_decided=True)
    assert report.to_dict()["domain_index"] == {"read": 2, "complete": False} and report.limit_reached
    assert report.notes()[-1] == (
        "limit of 2 entries reached listing the domains decided for: domains that are not tenants may be missing"
    )


def test_every_format_says_tenant_or_not() -> None:
    report = build_report(world(), TENANTS | {"off.test": "off"}, T, T, limit=100, every_decided=True)
    table = text(report).splitlines()
    assert table[0].endswith("4 items read, 4 domain-day entries")
    assert table[2].split()[:3] == ["DOMAIN", "TENANT", "MODE"]
    rows = {line.split()[0]: line.split()[1:4] for line in table[4:8]}
    assert rows == {
        "new.test": ["no", "-", "2"],
        "off.test": ["yes", "off", "0"],
        "tenant.test": ["yes", "enforce", "1"],
        "watch.test": ["yes", "monitor", "1"],
    }
    assert "new.test (not a tenant): what was stopped, messages by reply and sender" in table
    assert ["5.2.1", "2", "/64", "2001:db8:9::/64", "n2"] in [line.split() for line in table]

    rows_csv = list(csv.DictReader(io.StringIO(csv_text(report))))
    flags = {(r["domain"], r["tenant"], r["mode"]) for r in rows_csv if r["domain"]}
    assert flags == {
        ("new.test", "no", NOT_A_TENANT),
        ("off.test", "yes", "off"),
        ("tenant.test", "yes", "enforce"),
        ("watch.test", "yes", "monitor"),
    }
    refused = [r for r in rows_csv if (r["domain"], r["measure"], r["reply"]) == ("new.test", "rejected", "5.2.1")]
    assert [r["count"] for r in refused] == ["2"]
    index = {r["measure"]: r["count"] for r in rows_csv if r["measure"].startswith("domain_index")}
    assert index == {"domain_index_read": "4", "domain_index_complete": "1"}
