"""In-memory ports, for tests and for ``ipv6gate evaluate --tenants FILE``."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ipv6gate.bounce.request import BounceRequest
from ipv6gate.decision.tenants import Tenant, tenant_from_plain
from ipv6gate.ports import BounceQueueError, MessageStoreError, TraceError

if TYPE_CHECKING:
    from ipv6gate.evaluation.record import Decision


class InMemoryTenants:
    def __init__(self, tenants: Iterable[Tenant] = ()) -> None:
        self.tenants = {t.domain: t for t in tenants}
        self.lookups = 0

    def get_many(self, domains: Iterable[str]) -> dict[str, Tenant]:
        self.lookups += 1
        return {d: self.tenants[d] for d in domains if d in self.tenants}

    @classmethod
    def from_json_file(cls, path: str | Path) -> InMemoryTenants:
        """A JSON list of items shaped like the DynamoDB table's (``domain``, ``ipv6_inbound``, ...)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, list) or not all(isinstance(item, Mapping) for item in data):
            raise ValueError("tenants file must be a JSON list of objects")
        tenants: dict[str, Tenant] = {}
        for i, item in enumerate(data):
            tenant = tenant_from_plain(item)  # the same validation as a table item's
            if tenant.domain in tenants:
                raise ValueError(f"entry {i}: tenant {tenant.domain} is listed twice")
            tenants[tenant.domain] = tenant
        return cls(tenants.values())


class InMemoryMessages:
    def __init__(self, messages: Mapping[str, bytes] | None = None) -> None:
        self.messages = dict(messages or {})
        self.fetches = 0

    def fetch(self, message_id: str, max_bytes: int) -> bytes:
        self.fetches += 1
        raw = self.messages.get(message_id)
        if raw is None:
            raise MessageStoreError(f"no stored message {message_id!r}", missing=True)
        if len(raw) > max_bytes:
            raise MessageStoreError(f"message is {len(raw)} bytes, over the {max_bytes} limit", too_large=True)
        return raw

    def open(self, message_id: str, max_bytes: int) -> io.BytesIO:
        """The stored message as a stream; counted in ``fetches`` like ``fetch``."""
        return io.BytesIO(self.fetch(message_id, max_bytes))


class InMemoryBounceQueue:
    def __init__(self, *, fail_with: str | None = None) -> None:
        self.requests: list[BounceRequest] = []
        self.fail_with = fail_with

    def enqueue(self, request: BounceRequest) -> None:
        if self.fail_with:
            raise BounceQueueError(self.fail_with)
        self.requests.append(request)


class InMemoryTrace:
    def __init__(self, *, fail_with: str | None = None) -> None:
        self.records: list[tuple[Decision, datetime]] = []
        self.fail_with = fail_with

    def record(self, decision: Decision, decided_at: datetime) -> None:
        if self.fail_with:
            raise TraceError(self.fail_with)
        self.records.append((decision, decided_at))
