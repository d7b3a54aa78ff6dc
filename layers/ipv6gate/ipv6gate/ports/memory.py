"""In-memory ports, for tests and local runs (``ipv6gate.files`` holds the production file adapters)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from ipv6gate.bounce.request import BounceRequest
from ipv6gate.decision.tenants import Tenant
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


class InMemoryMessages:
    def __init__(self, messages: Mapping[str, bytes] | None = None) -> None:
        self.messages = dict(messages or {})
        self.fetches = 0

    def open(self, message_id: str, max_bytes: int) -> io.BytesIO:
        """The stored message as a stream; each open is counted in ``fetches``."""
        self.fetches += 1
        raw = self.messages.get(message_id)
        if raw is None:
            raise MessageStoreError(f"no stored message {message_id!r}", missing=True)
        if len(raw) > max_bytes:
            raise MessageStoreError(f"message is {len(raw)} bytes, over the {max_bytes} limit", too_large=True)
        return io.BytesIO(raw)


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
