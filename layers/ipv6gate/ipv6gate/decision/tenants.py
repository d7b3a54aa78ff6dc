"""A tenant: one recipient domain's IPv6 settings, like Exchange Online's per-domain switch."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ipv6gate.mail.source import IPAddress


class Mode(StrEnum):
    ENFORCE = "enforce"  # rejections take effect
    MONITOR = "monitor"  # evaluated and logged, always accepted


@dataclass(frozen=True, slots=True)
class Tenant:
    domain: str
    ipv6_inbound: bool
    mode: Mode = Mode.ENFORCE
    # The tenant's inbound connectors: mail from these prefixes is not anonymous and skips the checks.
    partner_prefixes: tuple[ipaddress.IPv6Network, ...] = field(default=())

    def is_partner(self, ip: IPAddress) -> bool:
        return isinstance(ip, ipaddress.IPv6Address) and any(ip in net for net in self.partner_prefixes)


def parse_prefix(text: str) -> ipaddress.IPv6Network:
    """An IPv6 prefix such as ``2001:db8:10::/48``; ``ValueError`` naming the input otherwise."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"{text[:60]!r} is not an IPv6 prefix: {exc}") from None
    if not isinstance(network, ipaddress.IPv6Network):
        raise ValueError(f"{text[:60]!r} is an IPv4 prefix; partner prefixes are IPv6")
    return network


def tenant_from_plain(item: Mapping[str, Any]) -> Tenant:
    domain = item.get("domain")
    if not isinstance(domain, str) or not domain:
        raise ValueError("tenant item has no 'domain' string")
    enabled = item.get("ipv6_inbound", False)
    mode = str(item.get("mode") or Mode.ENFORCE.value).lower()
    if mode not in {m.value for m in Mode}:
        raise ValueError(f"tenant {domain}: mode {mode!r} is not enforce|monitor")
    prefixes = item.get("partner_prefixes") or []
    return Tenant(
        domain=domain.lower(),
        ipv6_inbound=enabled is True,
        mode=Mode(mode),
        partner_prefixes=tuple(parse_prefix(str(p)) for p in prefixes),
    )
