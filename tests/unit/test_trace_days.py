"""The trace adapter's domain-per-day items: what a decision writes, and how often (a fake DynamoDB client)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ipv6gate.aws.trace import DAYS, DynamoTraceStore
from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.decision import replies
from ipv6gate.decision.rule import Checks, Disposition, RecipientVerdict, Verdict
from ipv6gate.evaluation.record import Decision
from ipv6gate.mail.source import Source
from ipv6gate.ports import TraceError

IP = ipaddress.IPv6Address("2001:db8::25")
T = datetime(2026, 1, 5, 23, 59, tzinfo=UTC)


class Client:
    """Records each BatchWriteItem; ``fail`` makes the next calls raise, ``throttle`` leaves items unprocessed."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.fail = False
        self.throttle = False

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        if self.fail:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "down"}}, "BatchWriteItem")
        [(_, requests)] = RequestItems.items()
        self.batches.append([r["PutRequest"]["Item"] for r in requests])
        return {"UnprocessedItems": RequestItems} if self.throttle else {}

    def day_items(self) -> list[dict[str, Any]]:
        return [item for batch in self.batches for item in batch if item["pk"]["S"] == DAYS]


def decision(message_id: str, *domains: str) -> Decision:
    checks = Checks(*(CheckResult(m, Result.FAIL, "") for m in ("iprev", "spf", "dkim")))
    verdicts = [
        RecipientVerdict(f"a@{d}", Verdict.REJECT, replies.ipv6_not_accepted(d), "not a tenant") for d in domains
    ]
    source = Source(IP, "mail.example", "inbound-smtp.eu-west-1.amazonaws.com")
    return Decision(message_id, source, Disposition.STOP_RULE_SET, verdicts, checks, domains=domains)


def test_a_domain_is_indexed_once_per_day_in_the_decisions_own_batch() -> None:
    client = Client()
    store = DynamoTraceStore(client, "trace", ttl_days=30)
    store.record(decision("m1", "new.test", "tenant.test"), T)
    [first] = client.batches
    assert [i["sk"]["S"] for i in first] == [
        "decision",
        "ix#ip",
        "ix#sender",
        "ix#domain#new.test",
        "ix#domain#tenant.test",
        "2026-01-05#new.test",
        "2026-01-05#tenant.test",
    ]
    day_end = datetime(2026, 1, 6, tzinfo=UTC)
    [item, _] = client.day_items()
    assert item == {
        "pk": {"S": DAYS},
        "sk": {"S": "2026-01-05#new.test"},
        "expires_at": {"N": str(int((day_end + timedelta(days=30)).timestamp()))},
    }
    assert "lookup" not in item  # not in the GSI: no index write for it

    store.record(decision("m2", "new.test", "other.test"), T)  # same day: only other.test is new
    store.record(decision("m3", "new.test"), T + timedelta(minutes=1))  # the next UTC day
    assert [i["sk"]["S"] for i in client.day_items()] == [
        "2026-01-05#new.test",
        "2026-01-05#tenant.test",
        "2026-01-05#other.test",
        "2026-01-06#new.test",
    ]
    assert len(client.batches) == 3  # one BatchWriteItem per decision


def test_the_day_is_the_utc_day() -> None:
    client = Client()
    store = DynamoTraceStore(client, "trace", ttl_days=1)
    store.record(decision("m1", "a.test"), datetime(2026, 1, 5, 23, 0, tzinfo=UTC))
    store.record(decision("m2", "b.test"), datetime.fromisoformat("2026-01-06T01:30:00+05:00"))  # 20:30 UTC
    assert [i["sk"]["S"] for i in client.day_items()] == ["2026-01-05#a.test", "2026-01-05#b.test"]


def test_many_domains_take_more_batches_and_lose_no_item() -> None:
    client = Client()
    domains = tuple(f"d{n:02}.test" for n in range(30))
    DynamoTraceStore(client, "trace", ttl_days=30).record(decision("m1", *domains), T)
    assert [len(b) for b in client.batches] == [25, 25, 13]  # decision, ip, sender, 30 domains, 30 days
    keys = [i["sk"]["S"] for b in client.batches for i in b]
    assert len(set(keys)) == len(keys) == 63
    assert {k.partition("#")[2] for k in keys if k.startswith("2026")} == set(domains)


@pytest.mark.parametrize("fault", ["fail", "throttle"])
def test_a_failed_write_is_retried_with_the_next_decision(fault: str) -> None:
    client = Client()
    store = DynamoTraceStore(client, "trace", ttl_days=30)
    setattr(client, fault, True)
    with pytest.raises(TraceError):
        store.record(decision("m1", "new.test"), T)
    setattr(client, fault, False)
    client.batches.clear()
    store.record(decision("m2", "new.test"), T)
    assert [i["sk"]["S"] for i in client.day_items()] == ["2026-01-05#new.test"]


def test_what_the_process_remembers_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from ipv6gate.aws import trace

    monkeypatch.setattr(trace, "_REMEMBERED", 2)
    client = Client()
    store = DynamoTraceStore(client, "trace", ttl_days=30)
    for message_id, domain in [("m1", "a.test"), ("m2", "b.test"), ("m3", "a.test"), ("m4", "c.test")]:
        store.record(decision(message_id, domain), T)
    store.record(decision("m5", "a.test"), T)  # forgotten when c.test made three: written again
    assert [i["sk"]["S"].partition("#")[2] for i in client.day_items()] == ["a.test", "b.test", "c.test", "a.test"]
