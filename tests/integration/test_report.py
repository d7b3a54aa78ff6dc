"""`ipv6gate report` against the template's tables in moto server: decisions made by the real Gate (and
one by the milter's SmtpGate) and written by the real trace adapter, then the report's numbers checked
against what was written, including a domain that is not a tenant and that nobody names."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devstack import world
from devstack.moto_stack import MotoStack
from ipv6gate.aws.trace import DAYS, DynamoTraceStore
from ipv6gate.decision.tenants import Mode, Tenant
from ipv6gate.dns import DnsResolver
from ipv6gate.evaluation.domain_report import build_report
from ipv6gate.evaluation.record import Decision
from ipv6gate.evaluation.summary import utc_day
from ipv6gate.mail.event import parse_event
from ipv6gate.ports.memory import InMemoryBounceQueue, InMemoryMessages, InMemoryTenants
from ipv6gate.settings import Settings
from ipv6gate.wiring import assemble_gate, assemble_smtp_gate

pytestmark = pytest.mark.integration
CLI = str(Path(sys.executable).with_name("ipv6gate"))
README = Path(__file__).resolve().parents[2] / "README.md"
NOW = datetime.now(UTC)
NEIGHBOUR_IP = "2001:db8:2::26"  # no PTR either, same /64 as world.NO_PTR_IP
TENANTS = [
    Tenant("tenant.test", ipv6_inbound=True),
    Tenant("optout.test", ipv6_inbound=False),
    Tenant("watch.test", ipv6_inbound=True, mode=Mode.MONITOR),
]
# (message id, client, MAIL FROM, recipients, hours ago)
MAIL = [
    ("w-noptr-1", world.NO_PTR_IP, "ann@noptr.test", ("a@watch.test",), 1),
    ("w-noptr-2", world.NO_PTR_IP, "ann@noptr.test", ("a@watch.test",), 2),
    ("w-noptr-3", world.NO_PTR_IP, "ann@noptr.test", ("a@watch.test",), 3),
    ("w-neighbour", NEIGHBOUR_IP, "zed@nospf.test", ("a@watch.test",), 4),
    ("w-unauth", world.OTHER_IP, "bob@nospf.test", ("a@watch.test", "b@watch.test"), 5),
    ("w-good", world.GOOD_IP, "alice@good.test", ("a@watch.test", "c@watch.test"), 6),
    ("w-temp", world.PTR_TIMEOUT_IP, "alice@good.test", ("a@watch.test",), 7),
    ("t-noptr", world.NO_PTR_IP, "ann@noptr.test", ("x@tenant.test",), 8),
    ("t-mixed", world.GOOD_IP, "alice@good.test", ("x@tenant.test", "y@optout.test"), 9),
    ("w-old", world.NO_PTR_IP, "ann@noptr.test", ("a@watch.test",), 24 * 10),  # outside 7 days
    ("s-stranger", world.OTHER_IP, "bob@nospf.test", ("x@wolf.test",), 11),  # not a tenant: 550 5.2.1
]
STRANGER = "wolf.test"  # no tenant item; never given to the report as --domain
MILTER_HOURS = 24 * 2 + 1  # the milter's decision for STRANGER: on a UTC day of its own
LEGACY_HOURS = 24 * 5  # the old-format item: a day with no domain-per-day entry for its domain


@pytest.fixture(scope="module")
def stack() -> Iterator[MotoStack]:
    with MotoStack() as running:
        yield running


@pytest.fixture(scope="module")
def written(stack: MotoStack, keys: world.Keys) -> dict[str, Decision]:
    """Every decision of MAIL through the Gate and the trace adapter, plus one item in the old summary format."""
    stack.put_items(
        stack.names["TenantsTable"],
        [{"domain": t.domain, "ipv6_inbound": t.ipv6_inbound, "mode": t.mode.value} for t in TENANTS],
    )
    backend = world.zone_backend(keys, timeouts=(world._ptr_owner(world.PTR_TIMEOUT_IP),))
    gate = assemble_gate(
        Settings.from_env({"AWS_REGION": "eu-west-1"}),
        DnsResolver(backend, query_timeout=1.0, query_limit=60),
        InMemoryTenants(TENANTS),
        InMemoryMessages(),
        bounces=InMemoryBounceQueue(),
        trace=DynamoTraceStore(stack.client("dynamodb"), stack.names["TraceTable"], ttl_days=30),
    )
    decisions = {}
    for message_id, ip, sender, rcpts, hours in MAIL:
        gate.recorder.now = lambda hours=hours: NOW - timedelta(hours=hours)  # type: ignore[misc]
        event = world.ses_event(ip=ip, mail_from=sender, recipients=rcpts, message_id=message_id)
        decisions[message_id] = gate.record(gate.evaluate(parse_event(event)))
        assert decisions[message_id].faults == (), decisions[message_id].notes
    decisions["milter"] = _milter_decision(stack, backend)
    _write_old_format_item(stack)
    return decisions


def _milter_decision(stack: MotoStack, backend: Any) -> Decision:
    """The milter refuses STRANGER's recipient at RCPT; its decision goes through its own trace adapter."""
    trace = DynamoTraceStore(stack.client("dynamodb"), stack.names["TraceTable"], ttl_days=30)
    smtp = assemble_smtp_gate(
        Settings.from_env({"AWS_REGION": "eu-west-1"}),
        DnsResolver(backend, query_timeout=1.0, query_limit=60),
        InMemoryTenants(TENANTS),
        trace=trace,
        now=lambda: NOW - timedelta(hours=MILTER_HOURS),
    )
    session = smtp.connect(world.NO_PTR_IP, "mx.test")
    session.helo("mail.noptr.test")
    session.mail_from("<ann@noptr.test>")
    reply = session.rcpt(f"<y@{STRANGER}>")
    assert reply is not None and reply.status == "5.2.1", reply
    refused = session.close()
    assert refused is not None
    decision = smtp.record(refused)
    assert decision.front_door == "milter" and decision.faults == (), decision.notes
    return decision


def _write_old_format_item(stack: MotoStack) -> None:
    """An index item as the trace wrote it before summaries carried recipients and checks."""
    at = (NOW - timedelta(hours=LEGACY_HOURS)).isoformat(timespec="milliseconds")
    summary: dict[str, Any] = {
        "message_id": "w-legacy",
        "decided_at": at,
        "client_ip": world.NO_PTR_IP,
        "sender": "ann@noptr.test",
    }
    summary |= {"disposition": "CONTINUE", "replies": ["accept"], "bounce": None}
    item = {"pk": "msg#w-legacy", "sk": "ix#domain#watch.test", "lookup": "domain#watch.test"}
    stack.put_items(stack.names["TraceTable"], [item | {"at": f"{at}#w-legacy", "summary": json.dumps(summary)}])


def env_of(stack: MotoStack, **extra: str) -> dict[str, str]:
    names = {"TRACE_TABLE": stack.names["TraceTable"], "TENANTS_TABLE": stack.names["TenantsTable"]}
    return {**os.environ, **stack.overrides(), **names, **extra}


def report(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "report", *args], check=False, env=env, capture_output=True, text=True, timeout=60)


def report_json(stack: MotoStack, *args: str) -> dict[str, Any]:
    out = report(env_of(stack), "--format", "json", *args)
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def test_every_tenant_with_the_numbers_written(stack: MotoStack, written: dict[str, Decision]) -> None:
    data = report_json(stack)
    by_domain = {d["domain"]: d for d in data["domains"]}
    assert list(by_domain) == ["optout.test", "tenant.test", "watch.test", STRANGER]
    assert data["limit_reached"] is False and data["items_read"] == 1 + 2 + 8 + 2

    watch = by_domain["watch.test"]
    assert (watch["tenant"], watch["mode"]) == (True, "monitor")
    assert watch["messages"] == 8 and watch["without_detail"] == 1  # 7 in the window + the old-format item
    assert watch["accepted"] == 3  # w-good's two recipients, w-temp's one (temperror accepted)
    assert watch["rejected"] == {"4.7.25": 0, "4.7.26": 0, "5.2.1": 0}
    assert watch["would_reject"] == {"4.7.25": 4, "4.7.26": 2, "5.2.1": 0}
    assert watch["temperror"] == {"iprev": 1, "spf": 0, "dkim": 0}
    assert watch["bounces"] == {"queued": 0, "suppressed": 0, "lost": 0}  # monitor mode sends none

    tenant, optout = by_domain["tenant.test"], by_domain["optout.test"]
    assert (tenant["mode"], tenant["messages"], tenant["accepted"]) == ("enforce", 2, 1)
    assert tenant["rejected"] == {"4.7.25": 1, "4.7.26": 0, "5.2.1": 0}
    # t-noptr's bounce is queued (authenticated or left to the bouncer), t-mixed's suppressed (it continues).
    assert written["t-noptr"].bounce is not None and written["t-noptr"].bounce.action.value in ("send", "defer")
    assert tenant["bounces"] == {"queued": 1, "suppressed": 1, "lost": 0}
    assert (optout["tenant"], optout["mode"], optout["accepted"], optout["rejected"]["5.2.1"]) == (True, "off", 0, 1)
    assert "recorded before per-recipient detail: 1" in data["notes"][0]
    # the old-format item's day has no domain-per-day entry: counted where it always was, and said so
    assert (watch["unindexed"], tenant["unindexed"]) == (1, 0)
    assert data["notes"][1].startswith("decisions on days the domain-per-day index does not list: 1")


def test_a_refused_domain_that_is_not_a_tenant_is_listed_and_flagged(
    stack: MotoStack, written: dict[str, Decision]
) -> None:
    data = report_json(stack)
    [stranger] = [d for d in data["domains"] if d["domain"] == STRANGER]
    assert (stranger["tenant"], stranger["mode"], stranger["messages"]) == (False, "not a tenant", 2)
    assert stranger["rejected"] == {"4.7.25": 0, "4.7.26": 0, "5.2.1": 2} and stranger["accepted"] == 0
    assert [(r["reply"], r["ip"], r["example"]) for r in stranger["top_sources"]] == [
        ("5.2.1", world.NO_PTR_IP, written["milter"].message_id),
        ("5.2.1", world.OTHER_IP, "s-stranger"),
    ]
    # one domain-per-day entry per (UTC day, domain) decided for in the window, written by either front door
    in_window = [(ip, rcpts, hours) for _, ip, _, rcpts, hours in MAIL if hours <= 24 * 7]
    pairs = {(_day(h), r.partition("@")[2]) for _, rcpts, h in in_window for r in rcpts}
    pairs.add((_day(MILTER_HOURS), STRANGER))
    assert data["domain_index"] == {"read": len(pairs), "complete": True}
    assert _day(MILTER_HOURS) not in {_day(h) for _, rcpts, h in in_window if f"x@{STRANGER}" in rcpts}

    client = stack.client("dynamodb")
    item = client.get_item(
        TableName=stack.names["TraceTable"],
        Key={"pk": {"S": DAYS}, "sk": {"S": f"{_day(MILTER_HOURS)}#{STRANGER}"}},
    )["Item"]  # written by the milter's adapter: no SES decision for STRANGER that day
    day_end = datetime.fromisoformat(_day(MILTER_HOURS)).replace(tzinfo=UTC) + timedelta(days=1)
    assert item["expires_at"] == {"N": str(int((day_end + timedelta(days=30)).timestamp()))}

    [alone] = report_json(stack, "--domain", STRANGER)["domains"]
    assert {k: v for k, v in alone.items() if k != "unindexed"} == {
        k: v for k, v in stranger.items() if k != "unindexed"
    }


def test_the_domain_list_is_queries_only(stack: MotoStack, written: dict[str, Decision]) -> None:
    client = stack.client("dynamodb")
    operations: list[str] = []

    class Recording:
        def __getattr__(self, name: str) -> Any:
            operations.append(name)
            return getattr(client, name)

    store = DynamoTraceStore(Recording(), stack.names["TraceTable"], ttl_days=30)
    modes = {"optout.test": "off", "tenant.test": "enforce", "watch.test": "monitor"}
    report = build_report(store, modes, NOW - timedelta(days=7), NOW, limit=1000, every_decided=True)
    assert [d.domain for d in report.domains][-1] == STRANGER
    assert set(operations) == {"query"} and len(operations) == 1 + 4  # the day partition, then each domain


def test_what_enforcing_would_stop(stack: MotoStack, written: dict[str, Decision]) -> None:
    [watch] = report_json(stack, "--domain", "Watch.Test.")["domains"]
    assert watch["top_sources"] == [
        {"reply": "4.7.25", "ip": world.NO_PTR_IP, "messages": 3, "example": "w-noptr-1"},
        {"reply": "4.7.25", "ip": NEIGHBOUR_IP, "messages": 1, "example": "w-neighbour"},
        {"reply": "4.7.26", "ip": world.OTHER_IP, "messages": 1, "example": "w-unauth"},
    ]
    assert watch["top_prefixes"][0] == {
        "reply": "4.7.25",
        "prefix": "2001:db8:2::/64",
        "messages": 4,
        "example": "w-noptr-1",
    }
    assert [(r["reply"], r["sender_domain"], r["messages"]) for r in watch["top_sender_domains"]] == [
        ("4.7.25", "noptr.test", 3),
        ("4.7.25", "nospf.test", 1),
        ("4.7.26", "nospf.test", 1),
    ]


def test_days_widen_the_window(stack: MotoStack, written: dict[str, Decision]) -> None:
    [watch] = report_json(stack, "--domain", "watch.test", "--days", "30")["domains"]
    assert watch["would_reject"]["4.7.25"] == 5 and watch["messages"] == 9


def test_limit_on_items_read_is_stated(stack: MotoStack, written: dict[str, Decision]) -> None:
    data = report_json(stack, "--limit", "5")
    assert data["limit_reached"] is True and data["items_read"] == 5
    watch = data["domains"][2]
    assert (watch["items_read"], watch["complete"], watch["oldest_read"][:13]) == (2, False, _hour(2))
    assert data["notes"][0].startswith("limit of 5 items reached; read newest first, watch.test back to")
    text = report(env_of(stack), "--limit", "2").stdout
    assert "note: limit of 2 items reached" in text and "not read: watch.test" in text


def test_pages_of_two_give_the_same_report(stack: MotoStack, written: dict[str, Decision]) -> None:
    client = stack.client("dynamodb")
    calls: list[dict[str, Any]] = []

    class Counting:
        def query(self, **kwargs: Any) -> Any:
            calls.append(kwargs)
            return client.query(**kwargs)

    store = DynamoTraceStore(Counting(), stack.names["TraceTable"], ttl_days=30)

    class PagesOfTwo:
        def domain_window(self, domain: str, since: datetime, until: datetime, limit: int) -> Any:
            return store.domain_window(domain, since, until, limit, page_size=2)

        def domains_decided(self, since: datetime, until: datetime, limit: int) -> Any:
            return store.domains_decided(since, until, limit, page_size=2)

    modes = {"optout.test": "off", "tenant.test": "enforce", "watch.test": "monitor"}
    window = (NOW - timedelta(days=7), NOW)
    paged = build_report(PagesOfTwo(), modes, *window, limit=1000, every_decided=True).to_dict()
    assert all(c["Limit"] <= 2 for c in calls)
    days = [c for c in calls if ":pk" in c["ExpressionAttributeValues"]]
    assert len(days) >= 3 and sum("ExclusiveStartKey" in c for c in days) == len(days) - 1
    watch = [c for c in calls if c["ExpressionAttributeValues"].get(":l", {}).get("S") == "domain#watch.test"]
    # 8 items in pages of 2 (one more, empty page where the fourth ends exactly at the last item)
    assert len(watch) in (4, 5) and sum("ExclusiveStartKey" in c for c in watch) == len(watch) - 1
    whole = report_json(stack)
    assert paged["domains"] == whole["domains"]


def test_text_and_csv(stack: MotoStack, written: dict[str, Decision]) -> None:
    text = report(env_of(stack)).stdout
    print(text)  # the README's sample comes from this run (pytest -s)
    assert "DOMAIN" in text and "4.7.25/4.7.26/5.2.1" in text
    assert "watch.test (monitor): what enforcing would stop, messages by reply and sender" in text
    assert "tenant.test (enforce): what was stopped" in text
    assert f"{STRANGER} (not a tenant): what was stopped" in text
    assert [STRANGER, "no", "-", "2", "0", "0/0/2"] in [line.split()[:6] for line in text.splitlines()]
    rows = list(csv.DictReader(io.StringIO(report(env_of(stack), "--format", "csv").stdout)))
    want = {("watch.test", "would_reject", "4.7.25"): "4", ("tenant.test", "rejected", "4.7.25"): "1"}
    got = {
        (r["domain"], r["measure"], r["reply"]): r["count"]
        for r in rows
        if r["measure"] in ("rejected", "would_reject")
    }
    assert want.items() <= got.items()
    [source] = [r for r in rows if r["measure"] == "top_sources" and r["key"] == NEIGHBOUR_IP]
    assert (source["reply"], source["count"], source["example"]) == ("4.7.25", "1", "w-neighbour")
    assert {(r["tenant"], r["mode"]) for r in rows if r["domain"] == STRANGER} == {("no", "not a tenant")}
    assert {(r["tenant"], r["mode"]) for r in rows if r["domain"] == "optout.test"} == {("yes", "off")}
    [refused] = [r for r in rows if (r["domain"], r["measure"], r["reply"]) == (STRANGER, "rejected", "5.2.1")]
    assert refused["count"] == "2"


def test_the_readme_commands(stack: MotoStack, written: dict[str, Decision]) -> None:
    """README "From monitor to enforce", step 2's block as written (example.com: the domain nobody named)."""
    section = README.read_text(encoding="utf-8").split("## From monitor to enforce", 1)[1]
    [block] = [b for b in re.findall(r"```sh\n(.*?)```", section, re.S) if "ipv6gate report" in b]
    export, *commands = [line.strip() for line in block.splitlines() if line.strip()]
    assert export.startswith("export ") and re.findall(r"(\w+)=<", export) == ["TRACE_TABLE", "TENANTS_TABLE"]
    lines = [shlex.split(line, comments=True) for line in commands]
    [every, one] = [[STRANGER if a == "example.com" else a for a in line[2:]] for line in lines if line[1] == "report"]
    table = report(env_of(stack), *every)
    assert table.returncode == 0 and [STRANGER, "no", "-", "2"] in [r.split()[:4] for r in table.stdout.splitlines()]
    out = report(env_of(stack), *one)
    assert out.returncode == 0, out.stderr
    [domain] = json.loads(out.stdout)["domains"]
    assert (domain["domain"], domain["tenant"], domain["rejected"]["5.2.1"]) == (STRANGER, False, 2)
    [trace_line] = [line for line in lines if line[1] == "trace"]
    assert trace_line[2:] == ["<example", "message", "id>"]
    example = domain["top_sources"][0]["example"]
    why = subprocess.run(
        [CLI, "trace", example], check=False, env=env_of(stack), capture_output=True, text=True, timeout=60
    )
    assert why.returncode == 0 and json.loads(why.stdout)["recipients"][0]["reply"].startswith("550 5.2.1")


@pytest.mark.parametrize(
    ("args", "extra", "code", "message"),
    [
        (("--days", "0"), {}, 1, "ipv6gate report: argument --days: 0 is outside 1..3650"),
        (("--days", "week"), {}, 1, "argument --days: 'week' is not a whole number"),
        (("--format", "xml"), {}, 1, "argument --format: invalid choice: 'xml'"),
        (("--limit", "-1"), {}, 1, "argument --limit: -1 is outside"),
        (("--domain", "exa mple.test"), {}, 1, "not a host-style domain"),
        ((), {"TRACE_TABLE": ""}, 2, "TRACE_TABLE: not set"),
        ((), {"TENANTS_TABLE": ""}, 2, "TENANTS_TABLE: not set"),
        ((), {"TRACE_TABLE": "nope"}, 3, "ResourceNotFoundException"),
    ],
)
def test_bad_input_is_one_line(
    stack: MotoStack, args: tuple[str, ...], extra: dict[str, str], code: int, message: str
) -> None:
    out = report(env_of(stack, **extra), *args)
    assert (out.returncode, out.stdout) == (code, "")
    assert message in out.stderr and len(out.stderr.splitlines()) == 1, out.stderr


def _day(hours_ago: int) -> str:
    return utc_day(NOW - timedelta(hours=hours_ago))


def _hour(hours_ago: int) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat()[:13]
