"""Smoke tests for the integration harness: real knotd + moto server.

These must fail loudly (never skip) when knotd is missing, so a CI image
without Knot DNS cannot silently pass the integration suite.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import dns.flags
import dns.message
import dns.nameserver
import dns.query
import dns.rdatatype
import dns.resolver
import dns.reversename
import pytest

from devstack.knot import KnotServer, find_knotd
from devstack.moto_server import MotoServer, aws_env
from devstack.moto_stack import MotoStack

ZONE = "example.test."
REV_ZONE = "8.b.d.0.1.0.0.2.ip6.arpa."
WWW_V4 = "192.0.2.10"
WWW_V6 = "2001:db8::10"
PTR_ADDR = "2001:db8::1"
PTR_TARGET = "host1.example.test."
# ~1.5 kB TXT as six 255-byte strings: far over the 512-byte classic UDP limit.
BIG_TXT_STRINGS = [chr(ord("a") + i) * 255 for i in range(6)]

FORWARD_ZONE_TEXT = f"""\
$TTL 300
@       IN SOA  ns1 hostmaster 2024010101 3600 600 86400 300
@       IN NS   ns1
ns1     IN A    127.0.0.1
www     IN A    {WWW_V4}
www     IN AAAA {WWW_V6}
big     IN TXT  {" ".join(f'"{s}"' for s in BIG_TXT_STRINGS)}
"""

REVERSE_ZONE_TEXT = f"""\
$TTL 300
@       IN SOA  ns1.example.test. hostmaster.example.test. 1 3600 600 86400 300
@       IN NS   ns1.example.test.
{dns.reversename.from_address(PTR_ADDR)} IN PTR {PTR_TARGET}
"""


@pytest.fixture(scope="module")
def knot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    assert find_knotd() is not None, "knotd not found: install Knot DNS (apt-get install knot)"
    zone_dir = tmp_path_factory.mktemp("zones")
    (zone_dir / f"{ZONE.rstrip('.')}.zone").write_text(FORWARD_ZONE_TEXT)
    (zone_dir / f"{REV_ZONE.rstrip('.')}.zone").write_text(REVERSE_ZONE_TEXT)
    with KnotServer(zone_dir) as server:
        yield server


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    for key, value in aws_env(moto.endpoint_url).items():
        monkeypatch.setenv(key, value)
    return boto3.Session()  # fresh session: picks up the patched env


def _udp(knot: KnotServer, host: str, qname: str, rdtype: dns.rdatatype.RdataType) -> list[str]:
    query = dns.message.make_query(qname, rdtype)
    resp = dns.query.udp(query, host, port=knot.port, timeout=2)
    assert resp.flags & dns.flags.AA
    return [rd.to_text() for rrset in resp.answer for rd in rrset]


def test_servers_env(knot: KnotServer) -> None:
    assert knot.host == "127.0.0.1"
    assert knot.servers_env == f"127.0.0.1:{knot.port}"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_a_aaaa_ptr_over_udp(knot: KnotServer, host: str) -> None:
    assert _udp(knot, host, f"www.{ZONE}", dns.rdatatype.A) == [WWW_V4]
    assert _udp(knot, host, f"www.{ZONE}", dns.rdatatype.AAAA) == [WWW_V6]
    ptr_name = dns.reversename.from_address(PTR_ADDR).to_text()
    assert ptr_name.endswith(REV_ZONE)
    assert _udp(knot, host, ptr_name, dns.rdatatype.PTR) == [PTR_TARGET]


def test_big_txt_truncated_over_plain_udp(knot: KnotServer) -> None:
    query = dns.message.make_query(f"big.{ZONE}", dns.rdatatype.TXT)  # no EDNS
    assert query.edns < 0
    resp = dns.query.udp(query, knot.host, port=knot.port, timeout=2)
    assert resp.flags & dns.flags.TC


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_big_txt_via_resolver_tcp_fallback(knot: KnotServer, host: str) -> None:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(host, knot.port)]
    answer = resolver.resolve(f"big.{ZONE}", "TXT", lifetime=5)
    strings = [s.decode() for rd in answer for s in rd.strings]
    assert strings == BIG_TXT_STRINGS
    assert sum(map(len, strings)) > 1400


def test_dynamodb_round_trip(aws: boto3.Session, moto: MotoServer) -> None:
    ddb = aws.client("dynamodb")
    assert ddb.meta.endpoint_url == moto.endpoint_url  # AWS_ENDPOINT_URL honoured
    ddb.create_table(
        TableName="harness",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="harness", Item={"pk": {"S": "k1"}, "v": {"S": "hello"}})
    item = ddb.get_item(TableName="harness", Key={"pk": {"S": "k1"}})["Item"]
    assert item == {"pk": {"S": "k1"}, "v": {"S": "hello"}}


def test_s3_round_trip(aws: boto3.Session, moto: MotoServer) -> None:
    s3 = aws.client("s3")
    assert s3.meta.endpoint_url == moto.endpoint_url
    s3.create_bucket(
        Bucket="harness-bucket",
        CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
    )
    s3.put_object(Bucket="harness-bucket", Key="a/b.txt", Body=b"payload")
    body = s3.get_object(Bucket="harness-bucket", Key="a/b.txt")["Body"].read()
    assert body == b"payload"


def test_a_moto_stack_bound_elsewhere_serves_there(tmp_path_factory: pytest.TempPathFactory) -> None:
    """``make local``'s containers reach this host at the docker bridge: moto and Knot must answer there
    (127.0.0.2 stands in for it: another address of this host), the tables and tenants with them."""
    zone_dir = tmp_path_factory.mktemp("bound-zones")
    (zone_dir / f"{ZONE.rstrip('.')}.zone").write_text(FORWARD_ZONE_TEXT)
    with MotoStack(zone_dir, bind="127.0.0.2") as stack:
        assert stack.moto.endpoint_url.startswith("http://127.0.0.2:")
        host, _, port = stack.dns_servers.rpartition(":")
        assert host == "127.0.0.2" and int(port) == stack.knot.port
        assert _udp(stack.knot, "127.0.0.2", f"www.{ZONE}", dns.rdatatype.A) == [WWW_V4]
        stack.put_items(stack.names["TenantsTable"], [{"domain": "a.test", "partner_prefixes": ["2001:db8::/32"]}])
        item = stack.client("dynamodb").get_item(TableName=stack.names["TenantsTable"], Key={"domain": {"S": "a.test"}})
        assert item["Item"]["partner_prefixes"] == {"SS": ["2001:db8::/32"]}  # a list of strings is a string set
