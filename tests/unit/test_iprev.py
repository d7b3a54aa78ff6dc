import ipaddress

import dns.name
import pytest

from devstack import world
from ipv6gate.checks.iprev import PtrMode, check_iprev, is_host_name
from ipv6gate.checks.results import Result
from ipv6gate.dns import DnsSession


@pytest.mark.parametrize(
    ("ip", "mode", "result"),
    [
        (world.GOOD_IP, PtrMode.EXISTS, Result.PASS),
        (world.GOOD_IP, PtrMode.FCRDNS, Result.PASS),
        (world.MISMATCH_IP, PtrMode.EXISTS, Result.PASS),
        (world.MISMATCH_IP, PtrMode.FCRDNS, Result.FAIL),
        (world.NO_PTR_IP, PtrMode.EXISTS, Result.PERMERROR),
        (world.NUMERIC_PTR_IP, PtrMode.EXISTS, Result.FAIL),
        (world.PTR_TIMEOUT_IP, PtrMode.EXISTS, Result.TEMPERROR),
    ],
)
def test_iprev(session: DnsSession, ip: str, mode: PtrMode, result: Result) -> None:
    r = check_iprev(session, ipaddress.ip_address(ip), mode)
    assert r.result is result, r.reason
    assert r.properties["policy.iprev"] == ip


def test_pass_names_the_host(session: DnsSession) -> None:
    r = check_iprev(session, ipaddress.ip_address(world.GOOD_IP), PtrMode.FCRDNS)
    assert r.properties["policy.iprev.name"] == "mail.good.test" and "resolves back" in r.reason


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("mail.good.test.", True),
        ("192.0.2.1.", False),
        ("localhost.", False),
        ("bad_host.test.", False),
        ("-x.test.", False),
        ("a.b.c.example.", True),
        ("host.123.", False),
    ],
)
def test_host_name_syntax(name: str, ok: bool) -> None:
    assert is_host_name(dns.name.from_text(name)) is ok
