"""The tenant cache expires after TENANT_CACHE_SECONDS (the DNS cache: tests/integration/test_dns_cache.py)."""

from __future__ import annotations

import pytest

from ipv6gate.aws.cached import CachedTenantDirectory
from ipv6gate.decision.tenants import Tenant
from ipv6gate.ports import TenantLookupError
from ipv6gate.ports.memory import InMemoryTenants


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_tenant_toggle_applies_after_the_ttl() -> None:
    store = InMemoryTenants([Tenant("a.test", ipv6_inbound=False)])
    clock = Clock()
    cache = CachedTenantDirectory(store, ttl=30, clock=clock)
    assert not cache.get_many(["a.test", "new.test"])["a.test"].ipv6_inbound
    store.tenants["a.test"] = Tenant("a.test", ipv6_inbound=True)
    store.tenants["new.test"] = Tenant("new.test", ipv6_inbound=True)
    clock.now += 29
    cached = cache.get_many(["a.test", "new.test"])
    assert not cached["a.test"].ipv6_inbound and "new.test" not in cached  # absence is cached too
    assert store.lookups == 1
    clock.now += 2
    fresh = cache.get_many(["a.test", "new.test"])
    assert fresh["a.test"].ipv6_inbound and fresh["new.test"].ipv6_inbound and store.lookups == 2


def test_only_missing_domains_are_asked_and_the_cache_is_bounded() -> None:
    asked: list[list[str]] = []

    class Recording(InMemoryTenants):
        def get_many(self, domains):
            asked.append(list(domains))
            return super().get_many(asked[-1])

    cache = CachedTenantDirectory(
        Recording([Tenant(f"d{i}.test", True) for i in range(5)]), ttl=60, max_entries=3, clock=Clock()
    )
    cache.get_many(["d0.test", "d1.test"])
    cache.get_many(["d1.test", "d2.test"])
    assert asked == [["d0.test", "d1.test"], ["d2.test"]]
    cache.get_many(["d3.test", "d4.test"])  # d0 and d1 are evicted (oldest first)
    cache.get_many(["d0.test", "d4.test"])
    assert asked[-1] == ["d0.test"]


def test_a_failed_lookup_is_not_cached() -> None:
    class Flaky(InMemoryTenants):
        fail = True

        def get_many(self, domains):
            if self.fail:
                raise TenantLookupError("throttled")
            return super().get_many(domains)

    store = Flaky([Tenant("a.test", True)])
    cache = CachedTenantDirectory(store, ttl=60, clock=Clock())
    with pytest.raises(TenantLookupError):
        cache.get_many(["a.test"])
    store.fail = False
    assert cache.get_many(["a.test"])["a.test"].ipv6_inbound
