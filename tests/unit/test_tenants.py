"""Strict tenant items: one validation for the tenants file, the table reader and the tenants CLI."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

from devstack import world
from ipv6gate.aws.cached import CachedTenantDirectory
from ipv6gate.decision.tenants import Mode, Tenant, tenant_domain, tenant_from_plain
from ipv6gate.evaluation.evaluator import recipients_of
from ipv6gate.files.tenants import FileTenants
from ipv6gate.mail.domains import DomainError
from ipv6gate.mail.event import parse_event
from ipv6gate.mail.source import find_source
from ipv6gate.ports import TenantLookupError


def test_a_complete_item() -> None:
    tenant = tenant_from_plain(
        {
            "domain": "example.com",
            "ipv6_inbound": True,
            "mode": "monitor",
            "partner_prefixes": ["2001:db8:10::/48"],
            "updated_at": "2026-11-27T12:00:00+00:00",
            "updated_by": "ops",
        }
    )
    assert tenant == Tenant("example.com", True, Mode.MONITOR, (ipaddress.IPv6Network("2001:db8:10::/48"),))
    assert tenant_from_plain({"domain": "example.com"}) == Tenant("example.com", ipv6_inbound=False)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"domain": "example.com", "ipv6_inbound": "yes"}, "ipv6_inbound must be true or false, not 'yes'"),
        ({"domain": "example.com", "ipv6_inbound": 1}, "ipv6_inbound must be true or false, not 1"),
        ({"domain": "example.com", "ipv6_inbound": None}, "ipv6_inbound must be true or false, not None"),
        ({"domain": "example.com."}, "write the domain as 'example.com'"),
        ({"domain": "Example.COM"}, "write the domain as 'example.com'"),
        ({"domain": "bücher.example"}, "write the domain as 'xn--bcher-kva.example'"),
        ({"domain": "1.2.3.4"}, "is an IP address, not a domain"),
        ({"domain": ""}, "empty domain"),
        ({"ipv6_inbound": True}, "no 'domain' string"),
        (
            {"domain": "example.com", "partner_prefixes": "2001:db8::/32"},
            "partner_prefixes must be a list of IPv6 prefixes, not '2001:db8::/32'",
        ),
        ({"domain": "example.com", "partner_prefixes": ["10.0.0.0/8"]}, "partner_prefixes: '10.0.0.0/8' is an IPv4"),
        ({"domain": "example.com", "mode": "Monitor"}, "mode 'Monitor' is not enforce|monitor"),
        ({"domain": "example.com", "mode": ["monitor"]}, "mode ['monitor'] is not enforce|monitor"),
        ({"domain": "example.com", "ipv6_inbond": True}, "unknown field 'ipv6_inbond'"),
    ],
)
def test_a_bad_item_is_refused_naming_the_field(item: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        tenant_from_plain(item)


@pytest.mark.parametrize(
    ("text", "domain"), [("Example.COM.", "example.com"), ("Bücher.example", "xn--bcher-kva.example")]
)
def test_tenant_domains_are_canonical_like_recipient_domains(text: str, domain: str) -> None:
    assert tenant_domain(text) == domain


@pytest.mark.parametrize("text", ["1.2.3.4", "192.0.2.25.", "", "single", "[2001:db8::1]"])
def test_what_is_not_a_domain_is_refused(text: str) -> None:
    with pytest.raises(DomainError):
        tenant_domain(text)


def test_tenants_file_uses_the_same_validation(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"domain": "a.example", "ipv6_inbound": True}, {"domain": "b.example."}]))
    with pytest.raises(ValueError, match=r"tenant 'b.example.': write the domain as 'b.example'"):
        FileTenants.from_json_file(path)
    path.write_text(json.dumps([{"domain": "a.example"}, {"domain": "a.example", "ipv6_inbound": True}]))
    with pytest.raises(ValueError, match=r"entry 1: tenant a\.example is listed twice"):
        FileTenants.from_json_file(path)


class _PartlyMalformed:
    """A directory whose item for bad.test cannot be used (as the DynamoDB reader reports it)."""

    def __init__(self) -> None:
        self.good = {"tenant.test": Tenant("tenant.test", ipv6_inbound=True)}

    def get_many(self, domains: Iterable[str]) -> dict[str, Tenant]:
        wanted = set(domains)
        found = {d: t for d, t in self.good.items() if d in wanted}
        if "bad.test" in wanted:
            raise TenantLookupError("malformed tenant item: bad", domains=("bad.test",), found=found)
        return found


def test_a_malformed_item_fails_open_for_its_domain_only() -> None:
    event = world.ses_event(ip=world.NO_PTR_IP, recipients=("a@tenant.test", "b@bad.test"))
    mail = parse_event(event)
    source = find_source(mail.headers, ("inbound-smtp.*.amazonaws.com",), mail.message_id)
    notes: list[str] = []
    faults: list[str] = []
    recipients = recipients_of(mail.recipients, source, _PartlyMalformed(), notes, faults)
    assert [(r.domain, r.tenant is not None, r.tenant_error is not None) for r in recipients] == [
        ("tenant.test", True, False),
        ("bad.test", False, True),
    ]
    assert faults == ["tenant_lookup"] and notes == [
        "tenant lookup failed, recipients at bad.test accepted: malformed tenant item: bad"
    ]


def test_the_cache_keeps_what_it_already_knew_when_one_item_is_malformed() -> None:
    inner = _PartlyMalformed()
    cache = CachedTenantDirectory(inner, ttl=60)
    assert set(cache.get_many(["tenant.test"])) == {"tenant.test"}
    del inner.good["tenant.test"]  # only the cache knows it now
    with pytest.raises(TenantLookupError) as caught:
        cache.get_many(["tenant.test", "bad.test"])
    assert caught.value.domains == ("bad.test",) and set(caught.value.found) == {"tenant.test"}


@pytest.mark.parametrize(("text", "ok"), [("2001::/16", True), ("2001:db8:10::/48", True), ("2000::/15", False)])
def test_partner_prefix_width_boundary(text: str, ok: bool) -> None:
    from ipv6gate.decision.tenants import check_partner_width, parse_prefix

    network = parse_prefix(text)
    if ok:
        assert check_partner_width(network) == network
    else:
        with pytest.raises(ValueError, match="wider than /16"):
            check_partner_width(network)
