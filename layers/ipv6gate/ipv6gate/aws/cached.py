"""A short-lived tenant cache in front of the tenant store, shared by a warm function's invocations.

Tenants change rarely and are read for every IPv6 message, so each domain's answer (including "no
such tenant") is kept ``ttl`` seconds: a toggle takes effect within that time in every warm
container. Bounded: the oldest entries go first when ``max_entries`` is reached.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from ipv6gate.decision.tenants import Tenant
from ipv6gate.ports import TenantDirectory, TenantLookupError, answers_at_hand


class CachedTenantDirectory:
    def __init__(
        self,
        inner: TenantDirectory,
        ttl: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Tenant | None]] = OrderedDict()
        self._lock = threading.Lock()  # the milter's sessions share one cache across threads

    def at_hand(self, domains: Iterable[str]) -> bool:
        """Every domain has a fresh entry here, or the store behind answers at once (``ports.answers_at_hand``)."""
        now = self._clock()
        with self._lock:
            missing = [d for d in domains if (entry := self._entries.get(d)) is None or entry[0] <= now]
        return not missing or answers_at_hand(self._inner, missing)

    def get_many(self, domains: Iterable[str]) -> dict[str, Tenant]:
        now = self._clock()
        wanted = list(dict.fromkeys(domains))
        found: dict[str, Tenant] = {}
        missing: list[str] = []
        with self._lock:
            for domain in wanted:
                entry = self._entries.get(domain)
                if entry is not None and entry[0] > now:
                    if entry[1] is not None:
                        found[domain] = entry[1]
                else:
                    missing.append(domain)
        if missing:
            try:
                fresh = self._inner.get_many(missing)
            except TenantLookupError as exc:  # cache nothing: the next message asks again
                if exc.domains is None:
                    raise
                raise TenantLookupError(str(exc), domains=exc.domains, found={**found, **exc.found}) from None
            with self._lock:
                for domain in missing:
                    self._remember(domain, fresh.get(domain), now + self._ttl)
            found.update(fresh)
        return found

    def _remember(self, domain: str, tenant: Tenant | None, expires: float) -> None:
        self._entries[domain] = (expires, tenant)
        self._entries.move_to_end(domain)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
