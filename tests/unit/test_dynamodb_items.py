"""DynamoDB's wire format read and written by boto3's own (de)serializer, with plain values out."""

from __future__ import annotations

from typing import Any

import pytest

from ipv6gate.aws.items import plain, wire


def test_wire_items_read_as_plain_values() -> None:
    item: dict[str, Any] = {
        "domain": {"S": "example.com"},
        "ipv6_inbound": {"BOOL": True},
        "partner_prefixes": {"SS": ["2001:db8:b::/48", "2001:db8:a::/48"]},
        "expires_at": {"N": "1767225600"},
        "ratio": {"N": "0.25"},
        "gone": {"NULL": True},
        "listed": {"L": [{"S": "a"}, {"N": "2"}]},
        "nested": {"M": {"n": {"N": "3"}, "ns": {"NS": ["2", "1"]}}},
        "blob": {"B": b"\x00\x01"},
    }
    assert plain(item) == {
        "domain": "example.com",
        "ipv6_inbound": True,
        "partner_prefixes": ["2001:db8:a::/48", "2001:db8:b::/48"],  # a set, sorted: stable output
        "expires_at": 1767225600,  # an int, not Decimal('1767225600') nor the string
        "ratio": 0.25,
        "gone": None,  # {"NULL": true} is no value, never a true one
        "listed": ["a", 2],
        "nested": {"n": 3, "ns": [1, 2]},
        "blob": b"\x00\x01",
    }
    assert type(plain(item)["expires_at"]) is int


def test_plain_values_written_as_wire_items() -> None:
    assert wire({"pk": "msg#1", "expires_at": 17, "on": False, "p": {"2001:db8::/32"}}) == {
        "pk": {"S": "msg#1"},
        "expires_at": {"N": "17"},
        "on": {"BOOL": False},
        "p": {"SS": ["2001:db8::/32"]},
    }
    with pytest.raises(TypeError):
        wire({"ratio": 0.5})  # floats are refused by boto3 (Decimal only): a caller must choose


def test_round_trip() -> None:
    values: dict[str, Any] = {"domain": "example.org", "mode": "monitor", "partner_prefixes": ["2001:db8::/32"], "n": 5}
    assert plain(wire({**values, "partner_prefixes": set(values["partner_prefixes"])})) == values
