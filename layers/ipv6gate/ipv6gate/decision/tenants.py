"""A tenant: one recipient domain's IPv6 settings, like Exchange Online's per-domain switch."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ipv6gate.mail.domains import DomainError, normalize_domain, recipient_domain
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


# The widest prefix an operator may add as a partner connector: a partner skips the checks, so
# ``::/0`` (or ``2000::/3``, all global unicast) would switch the rule off for the tenant. RIRs give an
# organisation /48 to /19; a /16 is wider than any of them.
WIDEST_PARTNER_PREFIX = 16


def check_partner_width(network: ipaddress.IPv6Network) -> ipaddress.IPv6Network:
    """``network`` when it is no wider than ``WIDEST_PARTNER_PREFIX``; ``ValueError`` saying why otherwise."""
    if network.prefixlen < WIDEST_PARTNER_PREFIX:
        raise ValueError(
            f"{network} is wider than /{WIDEST_PARTNER_PREFIX}: a partner prefix exempts its senders from the rule, "
            "so this one would exempt far more than one organisation's network"
        )
    return network


# What a stored tenant item may hold: the table's attributes (README "Tenant administration").
FIELDS = ("domain", "ipv6_inbound", "mode", "partner_prefixes", "updated_at", "updated_by")


def tenant_domain(text: str) -> str:
    """A tenant's domain in the canonical form recipients are matched in (``normalize_domain``).

    ``DomainError`` also for a name whose last label is all digits: that is an IPv4 address
    (``1.2.3.4``), never a domain mail is addressed to.
    """
    domain = normalize_domain(text)
    if domain.rpartition(".")[2].isdigit():
        raise DomainError(f"{text.strip()[:80]!r} is an IP address, not a domain")
    return domain


def tenant_from_plain(item: Mapping[str, Any]) -> Tenant:
    """A tenant from a stored item (a tenants table item or a tenants file entry); ``ValueError`` names the field.

    Strict, because leniency fails silently here: ``"ipv6_inbound": "yes"`` read as off, a misspelt
    field ignored, or ``example.com.`` stored where no recipient domain ever matches it. The table's
    key is the canonical domain the gate looks up, so a stored domain must already be canonical: it
    is refused (naming the form to write) rather than normalised into a tenant the gate never finds.
    """
    domain = item.get("domain")
    if not isinstance(domain, str):
        raise ValueError("tenant item has no 'domain' string")
    try:
        canonical = tenant_domain(domain)
    except DomainError as exc:
        raise ValueError(f"tenant {domain[:80]!r}: {exc}") from None
    if canonical != domain:
        raise ValueError(f"tenant {domain[:80]!r}: write the domain as {canonical!r} (canonical form)")
    unknown = sorted(str(k) for k in item if k not in FIELDS)
    if unknown:
        raise ValueError(f"tenant {domain}: unknown field {unknown[0][:40]!r} (known: {', '.join(FIELDS)})")
    enabled = item.get("ipv6_inbound", False)
    if not isinstance(enabled, bool):
        raise ValueError(f"tenant {domain}: ipv6_inbound must be true or false, not {_shown(enabled)}")
    mode = item.get("mode", Mode.ENFORCE.value)
    if not isinstance(mode, str) or mode not in {m.value for m in Mode}:
        raise ValueError(f"tenant {domain}: mode {_shown(mode)} is not enforce|monitor")
    prefixes = item.get("partner_prefixes", [])
    if not isinstance(prefixes, list | tuple) or not all(isinstance(p, str) for p in prefixes):
        raise ValueError(f"tenant {domain}: partner_prefixes must be a list of IPv6 prefixes, not {_shown(prefixes)}")
    try:
        partners = tuple(parse_prefix(p) for p in prefixes)
    except ValueError as exc:
        raise ValueError(f"tenant {domain}: partner_prefixes: {exc}") from None
    return Tenant(domain=domain, ipv6_inbound=enabled, mode=Mode(mode), partner_prefixes=partners)


def _shown(value: object) -> str:
    return repr(value) if len(repr(value)) <= 60 else f"{repr(value)[:57]}..."


@dataclass(frozen=True, slots=True)
class RuleCoverage:
    """Which recipient domains a receipt rule's ``Recipients`` list covers, as tenants see them.

    SES matches an entry as an address (``ann@example.com``), a domain (``example.com``) or, with a
    leading dot, every subdomain (``.example.com``). Tenants match exact domains, so an address
    stands for its domain and a ``.domain`` entry covers names nobody can list.
    """

    domains: tuple[str, ...]  # exact domains, canonical, in the order first named
    subdomain_entries: tuple[str, ...]  # ``.example.com`` entries as given
    all_domains: bool  # an empty list: the rule matches every recipient the account receives for


def rule_coverage(entries: Iterable[str]) -> RuleCoverage:
    """``RuleCoverage`` of a rule's recipient entries; ``ValueError`` naming the first bad entry."""
    domains: dict[str, None] = {}
    subdomains: list[str] = []
    given = [e.strip() for e in entries if e.strip()]
    for entry in given:
        try:
            if entry.startswith("."):
                tenant_domain(entry[1:])
                subdomains.append(entry)
            elif "@" in entry:
                domains[tenant_domain(recipient_domain(entry))] = None
            else:
                domains[tenant_domain(entry)] = None
        except DomainError as exc:
            raise ValueError(f"Recipients entry {entry[:80]!r}: {exc}") from None
    return RuleCoverage(domains=tuple(domains), subdomain_entries=tuple(subdomains), all_domains=not given)
