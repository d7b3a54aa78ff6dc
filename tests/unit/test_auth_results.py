"""The Authentication-Results header the milter adds, and which received ones it removes."""

from __future__ import annotations

import authres
import pytest

from ipv6gate.checks.auth_results import claims_to_be, header_value
from ipv6gate.checks.results import CheckResult, Result, skipped


def test_header_states_each_evaluated_result_and_parses_back() -> None:
    value = header_value(
        "MX.Example.NET",
        [
            CheckResult(
                "iprev", Result.PASS, "PTR mail.good.test", {"policy.iprev": "2001:db8::25", "policy.iprev.name": "x"}
            ),
            CheckResult("spf", Result.FAIL, 'not "listed"; sorry', {"smtp.mailfrom": "a@good.test"}),
            skipped("dkim", "not needed"),
        ],
    )
    parsed = authres.AuthenticationResultsHeader.parse_value(value)
    assert parsed.authserv_id == "mx.example.net"
    assert [(r.method, r.result) for r in parsed.results] == [("iprev", "pass"), ("spf", "fail")]
    assert 'reason="not \\"listed\\"; sorry"' in value  # a quoted-string: its ";" ends no clause
    props = {(p.type, p.name): p.value for r in parsed.results for p in r.properties}
    assert props == {("policy", "iprev"): "2001:db8::25", ("smtp", "mailfrom"): "a@good.test"}  # unregistered dropped


def test_nothing_evaluated_says_none() -> None:
    assert header_value("mx.test", [skipped("iprev", "x")]) == "mx.test; none"


@pytest.mark.parametrize(
    ("value", "ours"),
    [
        ("mx.ipv6gate.test; spf=pass smtp.mailfrom=a@b.test", True),
        ("  MX.IPv6Gate.Test 1 ; none", True),
        ("(forged (nested)) mx.ipv6gate.test; dkim=pass", True),
        ("mx.ipv6gate.test", True),  # malformed, still ours: removed
        ('"mx.ipv6gate.test"; dkim=pass header.d=bank.test', True),  # RFC 8601 allows a quoted-string
        ("mx.ipv6gate.test.evil; spf=pass", False),
        ("other.example; spf=pass (mx.ipv6gate.test)", False),
        ("", False),
    ],
)
def test_claims_to_be(value: str, ours: bool) -> None:
    assert claims_to_be(value, "mx.ipv6gate.test") is ours
