import pytest

from ipv6gate.checks.dkim import check_dkim
from ipv6gate.dns import Deadline, DnsResolver, DnsSession
from ipv6gate.results import Result
from tests.support import world


@pytest.mark.parametrize("algorithm,selector", [("rsa", "rsa"), ("ed25519", "ed")])
def test_valid_signatures_pass(session: DnsSession, keys: world.Keys, algorithm: str, selector: str) -> None:
    raw = world.sign(world.message(), keys, selector=selector, algorithm=algorithm)
    r = check_dkim(session, raw, max_signatures=5)
    assert r.result is Result.PASS, r.reason
    assert r.properties == {"header.d": "good.test", "header.s": selector}


def test_tampered_body_fails(session: DnsSession, keys: world.Keys) -> None:
    raw = world.sign(world.message(body="Pay 10 EUR.\n"), keys).replace(b"10 EUR", b"99 EUR")
    r = check_dkim(session, raw, max_signatures=5)
    assert r.result is Result.FAIL and "body hash" in r.reason


def test_tampered_header_fails(session: DnsSession, keys: world.Keys) -> None:
    raw = world.sign(world.message(subject="hello"), keys).replace(b"Subject: hello", b"Subject: HELLO")
    assert check_dkim(session, raw, max_signatures=5).result is Result.FAIL


def test_rsa_sha1_does_not_count(session: DnsSession, keys: world.Keys) -> None:
    raw = world.sign(world.message(), keys, algorithm="rsa-sha1")
    r = check_dkim(session, raw, max_signatures=5)
    assert r.result is Result.PERMERROR and "RFC 8301" in r.reason
    assert session.queries == 0  # refused before any key lookup


def test_small_rsa_keys_do_not_count(session: DnsSession, keys: world.Keys) -> None:
    raw = world.sign(world.message(), keys, selector="small")
    r = check_dkim(session, raw, max_signatures=5)
    assert r.result is Result.PERMERROR and "too small" in r.reason


def test_every_signature_is_tried_until_one_passes(session: DnsSession, keys: world.Keys) -> None:
    good = world.sign(world.message(), keys)
    broken = world.sign(good, keys, selector="missing")  # a key that does not exist, on top
    sha1 = world.sign(broken, keys, algorithm="rsa-sha1")
    r = check_dkim(session, sha1, max_signatures=5)
    assert r.result is Result.PASS and r.properties["header.s"] == "rsa"


def test_signature_cap(session: DnsSession, keys: world.Keys) -> None:
    raw = world.sign(world.message(), keys)
    for _ in range(3):
        raw = world.sign(raw, keys, selector="missing")
    r = check_dkim(session, raw, max_signatures=2)
    assert r.result is Result.FAIL and "2 more signature(s) not tried" in r.reason
    assert session.queries == 2


def test_key_lookup_timeout_is_temperror(session: DnsSession, keys: world.Keys) -> None:
    raw = world.sign(world.message(), keys, selector="slow")
    r = check_dkim(session, raw, max_signatures=5)
    assert r.result is Result.TEMPERROR and "key lookup failed" in r.reason


def test_temperror_outranks_fail_when_nothing_passes(session: DnsSession, keys: world.Keys) -> None:
    raw = world.sign(world.sign(world.message(), keys, selector="missing"), keys, selector="slow")
    assert check_dkim(session, raw, max_signatures=5).result is Result.TEMPERROR


@pytest.mark.parametrize("raw", [world.message(), b"", b"\x00\xff garbage without headers", b"Subject: x\r\n\r\n"])
def test_unsigned_or_garbage_is_none_or_permerror(session: DnsSession, raw: bytes) -> None:
    assert check_dkim(session, raw, max_signatures=5).result in (Result.NONE, Result.PERMERROR)


def test_malformed_signature_header_is_permerror(session: DnsSession) -> None:
    raw = b"DKIM-Signature: this is not tag=value;;==\r\n" + world.message()
    assert check_dkim(session, raw, max_signatures=5).result is Result.PERMERROR


def test_overlong_d_is_not_a_crash(resolver: DnsResolver, keys: world.Keys) -> None:
    raw = world.sign(
        world.message(), keys, domain="d" * 63 + "." + "e" * 63 + "." + "f" * 63 + "." + "g" * 63 + ".test"
    )
    r = check_dkim(resolver.session(Deadline(5)), raw, max_signatures=5)
    assert r.result in (Result.FAIL, Result.PERMERROR)
