import ipaddress
from pathlib import Path

import dns.name
import dns.zone
import pytest

from devstack import world
from ipv6gate.dns import Deadline, DnsNameError, DnsResolver, DnsSession, DnsTempError, Status
from ipv6gate.dns.zones import ZoneBackend


def zone(text: str, origin: str = "z.test.") -> dns.zone.Zone:
    soa = "@ 300 IN SOA ns hostmaster 1 3600 600 86400 300\n@ 300 IN NS ns\n"
    return dns.zone.from_text(soa + text, origin=origin, relativize=False)


def session_for(*zones: dns.zone.Zone, limit: int = 60, budget: float = 5.0) -> DnsSession:
    return DnsResolver(ZoneBackend(zones), query_timeout=1.0, query_limit=limit).session(Deadline(budget))


def test_status_ok_nodata_nxdomain() -> None:
    s = session_for(zone("www 300 IN A 192.0.2.1\n"))
    assert s.query("www.z.test", "A").status is Status.OK
    assert s.query("www.z.test", "AAAA").status is Status.NODATA
    assert s.query("nope.z.test", "A").status is Status.NXDOMAIN
    assert s.query("elsewhere.example", "A").status is Status.NXDOMAIN


def test_cname_is_followed_and_loops_are_temporary() -> None:
    s = session_for(zone("alias 300 IN CNAME www\nwww 300 IN A 192.0.2.1\nl1 300 IN CNAME l2\nl2 300 IN CNAME l1\n"))
    [rd] = s.query("alias.z.test", "A").records
    assert rd.address == "192.0.2.1"
    with pytest.raises(DnsTempError, match="CNAME chain"):
        s.query("l1.z.test", "A")


def test_wildcards_apply_only_where_no_closer_name_exists() -> None:
    s = session_for(zone('* 300 IN TXT "wild"\nreal 300 IN A 192.0.2.1\n'))
    assert s.txt("anything.z.test") == [b"wild"]
    assert s.query("real.z.test", "TXT").status is Status.NODATA


def test_txt_strings_are_joined_per_record() -> None:
    s = session_for(zone('t 300 IN TXT "v=spf1 " "-all"\n'))
    assert s.txt("t.z.test") == [b"v=spf1 -all"]


def test_query_limit_and_budget_are_temperrors() -> None:
    s = session_for(zone("www 300 IN A 192.0.2.1\n"), limit=5)
    for _ in range(5):
        s.query("www.z.test", "A")
    with pytest.raises(DnsTempError, match="query limit of 5"):
        s.query("www.z.test", "A")
    assert s.queries == 5 and s.temp_errors == 1

    clock = iter([0.0, 10.0]).__next__
    spent = DnsResolver(ZoneBackend([zone("")]), query_timeout=1.0, query_limit=60).session(Deadline(5.0, clock))
    with pytest.raises(DnsTempError, match="budget of 5s spent"):
        spent.query("www.z.test", "A")
    assert spent.queries == 0 and spent.temp_errors == 1  # nothing was asked


@pytest.mark.parametrize("bad", ["", ".", "a..b", "x" * 64 + ".test", ("a." * 130) + "test"])
def test_bad_names_raise_name_errors(bad: str) -> None:
    s = session_for(zone(""))
    with pytest.raises(DnsNameError):
        s.query(bad, "A")


def test_timeout_names_behave_like_an_unresponsive_server() -> None:
    backend = ZoneBackend([zone("www 300 IN A 192.0.2.1\n")], timeouts=[dns.name.from_text("www.z.test")])
    s = DnsResolver(backend, query_timeout=1.0, query_limit=60).session(Deadline(5.0))
    with pytest.raises(DnsTempError):
        s.query("www.z.test", "A")


def test_zone_directory_loads_the_world(tmp_path: Path, keys: world.Keys) -> None:
    backend = ZoneBackend.from_directory(world.write_zone_dir(tmp_path, keys))
    s = DnsResolver(backend, query_timeout=1.0, query_limit=60).session(Deadline(5.0))
    [ptr] = s.ptr(ipaddress.ip_address(world.GOOD_IP)).records
    assert ptr.target == dns.name.from_text("mail.good.test")


@pytest.mark.parametrize("content", [None, "this is not a zone"])
def test_zone_directory_errors_are_clear(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / "bad.test.zone").write_text(content)
    with pytest.raises(ValueError, match="DNS_ZONE_DIR"):
        ZoneBackend.from_directory(tmp_path)
