"""Shared fixtures: generated keys, the zone-file DNS of the test world, a gate wired with fakes, Powertools."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from aws_lambda_powertools import Logger, Metrics

from devstack import world
from ipv6gate.decision.tenants import Mode, Tenant
from ipv6gate.dns import Deadline, DnsResolver, DnsSession
from ipv6gate.evaluation.gate import Gate
from ipv6gate.ports.memory import InMemoryMessages, InMemoryTenants
from ipv6gate.settings import Settings
from ipv6gate.wiring import assemble_gate
from tests.support.powertools import fresh_logger


@pytest.fixture(scope="session")
def keys() -> world.Keys:
    return world.make_keys()


@pytest.fixture
def resolver(keys: world.Keys) -> DnsResolver:
    backend = world.zone_backend(keys, timeouts=(world._ptr_owner(world.PTR_TIMEOUT_IP), "slow._domainkey.good.test."))
    return DnsResolver(backend, query_timeout=1.0, query_limit=60)


@pytest.fixture
def session(resolver: DnsResolver) -> DnsSession:
    return resolver.session(Deadline(5.0))


@pytest.fixture
def tenants() -> InMemoryTenants:
    return InMemoryTenants(
        [
            Tenant("tenant.test", ipv6_inbound=True),
            Tenant("optout.test", ipv6_inbound=False),
            Tenant("watch.test", ipv6_inbound=True, mode=Mode.MONITOR),
        ]
    )


@pytest.fixture
def messages() -> InMemoryMessages:
    return InMemoryMessages()


@pytest.fixture
def make_gate(resolver: DnsResolver, tenants: InMemoryTenants, messages: InMemoryMessages) -> Callable[..., Gate]:
    def build(**overrides: object) -> Gate:
        env = {"AWS_REGION": "eu-west-1", **{k.upper(): str(v) for k, v in overrides.items()}}
        return assemble_gate(Settings.from_env(env), resolver, tenants, messages)

    return build


@pytest.fixture
def stream() -> io.StringIO:
    """Where the ``powertools`` logger writes."""
    return io.StringIO()


@pytest.fixture
def powertools(monkeypatch: pytest.MonkeyPatch, stream: io.StringIO) -> tuple[Logger, Metrics]:
    """Real Powertools: a fresh Logger writing to ``stream``, and Metrics with nothing recorded yet."""
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "IPv6GateTest")
    metrics = Metrics()
    metrics.clear_metrics()
    return fresh_logger(stream), metrics
