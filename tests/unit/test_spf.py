import ipaddress

import dns.zone
import pytest

from devstack import world
from ipv6gate.checks.results import Result
from ipv6gate.checks.spf import check_spf
from ipv6gate.dns import Deadline, DnsResolver, DnsSession
from ipv6gate.dns.zones import ZoneBackend

GOOD = ipaddress.ip_address(world.GOOD_IP)


@pytest.mark.parametrize(
    ("sender", "ip", "result"),
    [
        ("alice@good.test", world.GOOD_IP, Result.PASS),
        ("alice@good.test", world.OTHER_IP, Result.FAIL),
        ("alice@softfail.test", world.GOOD_IP, Result.SOFTFAIL),
        ("alice@nospf.test", world.GOOD_IP, Result.NONE),
        ("alice@" + "x" * 63 + "." + "y" * 63 + "." + "z" * 63 + "." + "w" * 63 + ".test", world.GOOD_IP, Result.NONE),
    ],
)
def test_spf_results(session: DnsSession, sender: str, ip: str, result: Result) -> None:
    r = check_spf(session, ipaddress.ip_address(ip), sender, "mail.good.test", void_limit=2)
    assert r.result is result, r.reason
    assert r.properties == {"smtp.mailfrom": sender}


def test_null_sender_is_checked_through_helo(session: DnsSession) -> None:
    r = check_spf(session, GOOD, "", "good.test", void_limit=2)
    assert r.result is Result.PASS and r.properties == {"smtp.helo": "good.test"}
    r = check_spf(session, GOOD, "", "softfail.test", void_limit=2)
    assert r.result is Result.SOFTFAIL


def test_ipv6_void_lookup_trap_is_not_a_permerror(session: DnsSession) -> None:
    # Three a: hosts with only A records: their empty AAAA answers are not void lookups.
    r = check_spf(session, GOOD, "bob@v4only.test", "mail.good.test", void_limit=2)
    assert r.result is Result.PASS, r.reason


def test_names_that_do_not_exist_are_still_void(session: DnsSession) -> None:
    zone = dns.zone.from_text(
        "@ 300 IN SOA ns h 1 1 1 1 1\n@ 300 IN NS ns\n"
        '@ 300 IN TXT "v=spf1 a:x1.gone.test a:x2.gone.test a:x3.gone.test ip6:2001:db8:1::/48 -all"\n',
        origin="gone.test.",
        relativize=False,
    )
    s = DnsResolver(ZoneBackend([zone]), query_timeout=1, query_limit=60).session(Deadline(5))
    r = check_spf(s, GOOD, "bob@gone.test", "h", void_limit=2)
    assert r.result is Result.PERMERROR and "Void lookup limit of 2" in r.reason
    s2 = DnsResolver(ZoneBackend([zone]), query_timeout=1, query_limit=60).session(Deadline(5))
    assert check_spf(s2, GOOD, "bob@gone.test", "h", void_limit=3).result is Result.PASS


def test_dns_timeout_is_temperror_not_fail(keys: world.Keys) -> None:
    backend = world.zone_backend(keys, timeouts=("good.test.",))
    s = DnsResolver(backend, query_timeout=1, query_limit=60).session(Deadline(5))
    r = check_spf(s, GOOD, "alice@good.test", "h", void_limit=2)
    assert r.result is Result.TEMPERROR and "timeout" in r.reason


def test_spent_budget_is_temperror(resolver: DnsResolver) -> None:
    clock = iter([0.0] + [100.0] * 10).__next__
    s = resolver.session(Deadline(5.0, clock))
    assert check_spf(s, GOOD, "alice@good.test", "h", void_limit=2).result is Result.TEMPERROR


def test_all_spf_queries_go_through_the_session(session: DnsSession) -> None:
    check_spf(session, GOOD, "alice@good.test", "h", void_limit=2)
    assert session.queries == 1  # the TXT of good.test; ip6: needs no more
