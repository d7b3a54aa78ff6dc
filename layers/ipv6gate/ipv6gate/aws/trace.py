"""The message trace in DynamoDB: why was this mail rejected?

Key design (one table, one overloaded GSI); all items of a message share its partition:

| item           | pk             | sk                 | lookup (GSI pk)    | at (GSI sk)               |
|----------------|----------------|--------------------|--------------------|---------------------------|
| the decision   | msg#<id>       | decision           | -                  | -                         |
| by client IP   | msg#<id>       | ix#ip              | ip#<compressed ip> | <decided_at>#<message id> |
| by sender      | msg#<id>       | ix#sender          | sender#<mail from> | same                      |
| by domain      | msg#<id>       | ix#domain#<domain> | domain#<domain>    | same                      |
| domain per day | domains-by-day | <day>#<domain>     | -                  | -                         |

Index items carry a summary (``evaluation/summary.py``: disposition, replies, check results; a domain's
item also that domain's recipient outcomes) so a listing or a report needs only Queries; ``expires_at``
(epoch seconds) is the table's TTL attribute.

The domain-per-day items (``day`` the UTC date of the decision) say which recipient domains the gate
decided for on a day, tenant or not: ``ipv6gate report`` lists a window's domains with one Query of that
partition instead of a Scan. Each is a plain PutRequest whose content follows from its key (expiring
``TRACE_TTL_DAYS`` after the day ends, so after every decision it lists), so writing it again changes
nothing; this process writes each one once (``_indexed``) in the decision's BatchWriteItem, so a
decision normally adds no write at all. They stay out of the GSI (no ``lookup``): no index write either.

A decision is written with one BatchWriteItem (another per 25 items for a message with many domains).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from ipv6gate.aws.items import plain, wire
from ipv6gate.evaluation.record import Decision
from ipv6gate.evaluation.summary import base_summary, outcomes_by_domain, utc_day
from ipv6gate.mail.source import client_address
from ipv6gate.ports import TraceError

_BATCH = 25  # BatchWriteItem's limit on items per call
INDEX = "lookup"
DAYS = "domains-by-day"  # the partition of the domain-per-day items
_REMEMBERED = 10_000  # (day, domain) pairs known written, kept per process before starting afresh


class DynamoTraceStore:
    def __init__(self, client: Any, table: str, ttl_days: int) -> None:
        self._client = client
        self._table = table
        self._ttl = timedelta(days=ttl_days)
        self._indexed: set[tuple[str, str]] = set()  # domain-per-day items this process has written

    def record(self, decision: Decision, decided_at: datetime) -> None:
        day = utc_day(decided_at)
        new_days = sorted({d for d in decision.domains if (day, d) not in self._indexed})
        items = [*decision_items(decision, decided_at, self._ttl), *day_items(day, new_days, self._ttl)]
        for start in range(0, len(items), _BATCH):
            self._write([{"PutRequest": {"Item": item}} for item in items[start : start + _BATCH]])
        if len(self._indexed) + len(new_days) > _REMEMBERED:
            self._indexed.clear()  # bounded memory; the cost is one rewrite per domain
        self._indexed.update((day, d) for d in new_days)

    def _write(self, requests: list[dict[str, Any]]) -> None:
        response = self._call("batch_write_item", RequestItems={self._table: requests})
        if response.get("UnprocessedItems"):  # throttled: one more try, then report
            response = self._call("batch_write_item", RequestItems=response["UnprocessedItems"])
            if response.get("UnprocessedItems"):
                raise TraceError(f"DynamoDB {self._table}: trace items left unprocessed (throttled)")

    def probe(self) -> None:
        """Raise ``TraceError`` unless the table takes a write: the deletion of an item that cannot exist.

        It changes nothing and needs only what recording needs (BatchWriteItem).
        """
        delete = {"DeleteRequest": {"Key": wire({"pk": "probe#ipv6gate-start", "sk": "probe"})}}
        self._call("batch_write_item", RequestItems={self._table: [delete]})

    def get(self, message_id: str) -> dict[str, Any] | None:
        item = self._call(
            "get_item", TableName=self._table, Key=wire({"pk": f"msg#{message_id}", "sk": "decision"})
        ).get("Item")
        return json.loads(plain(item)["record"]) if item else None

    def recent(self, kind: str, value: str, limit: int = 20) -> list[dict[str, Any]]:
        """Newest first: ``kind`` is ip, sender or domain; ``value`` in the canonical form."""
        response = self._call(
            "query",
            TableName=self._table,
            IndexName=INDEX,
            Limit=limit,
            ScanIndexForward=False,
            KeyConditionExpression="#l = :l",
            ExpressionAttributeNames={"#l": "lookup"},
            ExpressionAttributeValues=wire({":l": f"{kind}#{value}"}),
        )
        return [json.loads(plain(item)["summary"]) for item in response.get("Items", [])]

    def domain_window(
        self, domain: str, since: datetime, until: datetime, limit: int, page_size: int = 1000
    ) -> tuple[list[dict[str, Any]], bool]:
        """A domain's summaries in [since, until], newest first; Query pages until the window or ``limit`` ends."""
        # ``at`` is "<decided_at>#<message id>": '$' sorts after '#', so every item decided at ``until`` is in.
        bounds = {":from": _at(since), ":to": _at(until) + "$"}
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": INDEX,
            "ScanIndexForward": False,
            "KeyConditionExpression": "#l = :l AND #at BETWEEN :from AND :to",
            "ExpressionAttributeNames": {"#l": "lookup", "#at": "at"},
            "ExpressionAttributeValues": wire({":l": f"domain#{domain}", **bounds}),
        }
        summaries: list[dict[str, Any]] = []
        while len(summaries) < limit:
            page = self._call("query", Limit=min(page_size, limit - len(summaries)), **query)
            summaries.extend(json.loads(plain(item)["summary"]) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return summaries, True
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return summaries, False

    def domains_decided(
        self, since: datetime, until: datetime, limit: int, page_size: int = 1000
    ) -> tuple[dict[str, set[str]], bool]:
        """Each domain the gate decided for on the UTC days of [since, until], with those days; one Query of
        the domain-per-day partition, paged, at most ``limit`` items; the flag is False when that cut it."""
        bounds = {":from": f"{utc_day(since)}#", ":to": f"{utc_day(until)}$"}  # '$' after '#'
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :from AND :to",
            "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk"},  # names, never reserved words
            "ExpressionAttributeValues": wire({":pk": DAYS, **bounds}),
            "ProjectionExpression": "#sk",
        }
        found: dict[str, set[str]] = {}
        read = 0
        while read < limit:
            page = self._call("query", Limit=min(page_size, limit - read), **query)
            for item in page.get("Items", []):
                day, _, domain = str(plain(item)["sk"]).partition("#")
                found.setdefault(domain, set()).add(day)
                read += 1
            if "LastEvaluatedKey" not in page:
                return found, True
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found, False

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            result: dict[str, Any] = getattr(self._client, operation)(**kwargs)
            return result
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise TraceError(f"DynamoDB {self._table}: {error.get('Code')}: {error.get('Message', '')}") from None
        except BotoCoreError as exc:
            raise TraceError(f"DynamoDB {self._table}: {_said(exc)}") from None


def decision_items(decision: Decision, decided_at: datetime, ttl: timedelta) -> Iterator[dict[str, Any]]:
    """The decision's own item and its index items (by client IP, sender, each recipient domain)."""
    at = _at(decided_at)
    expires = int((decided_at + ttl).timestamp())
    pk = f"msg#{decision.message_id}"
    record = decision.to_dict() | {"decided_at": at}
    yield wire({"pk": pk, "sk": "decision", "record": json.dumps(record), "expires_at": expires})
    summary = base_summary(decision, at)
    by_domain = outcomes_by_domain(decision)
    keys: list[tuple[str, str, dict[str, Any]]] = []
    if decision.client_ip:
        keys.append(("ix#ip", f"ip#{decision.client_ip}", summary))
    keys.append(("ix#sender", f"sender#{sender_key(decision.mail_from)}", summary))
    # A domain's item carries that domain's recipients: what ``ipv6gate report`` counts.
    keys.extend(
        (f"ix#domain#{d}", f"domain#{d}", summary | {"recipients": by_domain.get(d, [])}) for d in decision.domains
    )
    for sk, lookup, content in keys:
        yield wire(
            {
                "pk": pk,
                "sk": sk,
                "lookup": lookup,
                "at": f"{at}#{decision.message_id}",
                "summary": json.dumps(content),
                "expires_at": expires,
            }
        )


def day_items(day: str, domains: list[str], ttl: timedelta) -> Iterator[dict[str, Any]]:
    """The domain-per-day items ``ipv6gate report`` lists the day's domains from."""
    # Expires with the last decision it lists: the day's end plus the trace's TTL.
    day_end = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1)
    expires = int((day_end + ttl).timestamp())
    for domain in domains:
        yield wire({"pk": DAYS, "sk": f"{day}#{domain}", "expires_at": expires})


def _at(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def sender_key(mail_from: str) -> str:
    return mail_from.strip().lower() or "<>"


def ip_key(text: str) -> str:
    """The compressed form the trace is keyed by; ``ValueError`` for a non-address."""
    return str(client_address(text.strip().strip("[]")))


def _said(exc: Exception) -> str:
    """botocore's own sentence ("Could not connect to the endpoint URL: ..."), never its class name."""
    return " ".join(str(exc).split()) or "AWS SDK error"
