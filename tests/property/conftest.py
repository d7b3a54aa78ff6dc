"""Hypothesis profiles and the shared, session-long world of the property tests.

``ci`` (the default) is derandomized: every run tries the same examples, so CI never flakes on a
new random draw; ``HYPOTHESIS_PROFILE=dev`` draws fresh examples, ten times as many.
Fixtures here are session-scoped because Hypothesis reruns a test body many times per fixture.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aws_lambda_powertools import Logger, Metrics
from hypothesis import HealthCheck, settings

from devstack import hostile_zones as zones
from devstack import world
from ipv6gate.decision.tenants import Mode, Tenant
from ipv6gate.dns import DnsResolver
from ipv6gate.evaluation.gate import Gate
from ipv6gate.ports.memory import InMemoryMessages, InMemoryTenants
from ipv6gate.settings import Settings
from ipv6gate.wiring import assemble_gate

settings.register_profile(
    "ci",
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=1000,  # ms; tests that do DNS or build messages say deadline=None themselves
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=1000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


class Discard(io.StringIO):
    """A Logger stream that keeps nothing (a hundred decisions per test would pile up)."""

    def write(self, text: str) -> int:
        return len(text)


@dataclass
class PropWorld:
    keys: world.Keys
    resolver: DnsResolver
    tenants: InMemoryTenants
    messages: InMemoryMessages
    signed: list[bytes]
    logger: Logger
    metrics: Metrics
    _gates: dict[tuple[tuple[str, str], ...], Gate] = field(default_factory=dict)

    def gate(self, **env: object) -> Gate:
        """One gate per distinct setting (each owns a thread pool, so they are reused)."""
        key = tuple(sorted((k.upper(), str(v)) for k, v in env.items()))
        if key not in self._gates:
            s = Settings.from_env({"AWS_REGION": "eu-west-1", **dict(key)})
            resolver = DnsResolver(
                self.resolver.backend, query_timeout=s.dns_query_timeout_seconds, query_limit=s.dns_query_limit
            )
            self._gates[key] = assemble_gate(s, resolver, self.tenants, self.messages)
        return self._gates[key]


@pytest.fixture(scope="session")
def prop_world(keys: world.Keys) -> Iterator[PropWorld]:
    base = world.message()
    signed = [
        world.sign(base, keys),
        world.sign(base, keys, selector="ed", algorithm="ed25519"),
        world.sign(base, keys, algorithm="rsa-sha1"),
        world.sign(base, keys, selector="missing"),
        world.sign(base, keys, domain="dk.test", selector="alias"),
        world.sign(base, keys, domain="dk.test", selector="loop"),
        world.sign(base, keys).replace(b"Hi.", b"Ho."),
    ]
    tenants = InMemoryTenants(
        [
            Tenant("tenant.test", ipv6_inbound=True),
            Tenant("optout.test", ipv6_inbound=False),
            Tenant("watch.test", ipv6_inbound=True, mode=Mode.MONITOR),
            Tenant("xn--bcher-kva.test", ipv6_inbound=True),
        ]
    )
    metrics = Metrics(namespace="IPv6GateProperties")
    logger = Logger(service=f"ipv6gate-props-{uuid.uuid4().hex}", stream=Discard())
    pw = PropWorld(keys, zones.resolver(keys), tenants, InMemoryMessages(), signed, logger, metrics)
    yield pw
    metrics.clear_metrics()
    for gate in pw._gates.values():
        pool = getattr(gate, "_pool", None)  # the gate's check threads
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
