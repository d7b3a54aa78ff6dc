"""DKIM vectors, run through both checks: check_dkim on the whole message and check_dkim_stream.

Streaming-only behaviour (small reads, what is not read, equivalence on odd messages) is in
test_dkim_body.py; each RFC 6376 tag and key-record rule in test_dkim_records.py.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable

import dns.zone
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack import world
from ipv6gate.checks.dkim import check_dkim, check_dkim_stream
from ipv6gate.checks.dkim_body import CHUNK_SIZE
from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.dns import Deadline, DnsResolver, DnsSession
from ipv6gate.dns.zones import ZoneBackend

Check = Callable[..., CheckResult]


@pytest.fixture(params=["whole", "stream"])
def check(request: pytest.FixtureRequest) -> Check:
    """``check(session, raw, max_signatures=5, chunk_size=CHUNK_SIZE)`` with either implementation.

    ``chunk_size`` is how much the streamed check reads at a time; the whole-message check has no use for it.
    """

    def run(session: DnsSession, raw: bytes, *, max_signatures: int = 5, chunk_size: int = CHUNK_SIZE) -> CheckResult:
        if request.param == "whole":
            return check_dkim(session, raw, max_signatures=max_signatures)
        return check_dkim_stream(session, io.BytesIO(raw), max_signatures=max_signatures, chunk_size=chunk_size)

    return run


@pytest.mark.parametrize("algorithm,selector", [("rsa", "rsa"), ("ed25519", "ed")])
def test_valid_signatures_pass(
    check: Check, session: DnsSession, keys: world.Keys, algorithm: str, selector: str
) -> None:
    raw = world.sign(world.message(), keys, selector=selector, algorithm=algorithm)
    r = check(session, raw)
    assert r.result is Result.PASS, r.reason
    assert r.properties == {"header.d": "good.test", "header.s": selector}


def test_tampered_body_fails(check: Check, session: DnsSession, keys: world.Keys) -> None:
    raw = world.sign(world.message(body="Pay 10 EUR.\n"), keys).replace(b"10 EUR", b"99 EUR")
    r = check(session, raw)
    assert r.result is Result.FAIL and "body hash" in r.reason


def test_tampered_header_fails(check: Check, session: DnsSession, keys: world.Keys) -> None:
    raw = world.sign(world.message(subject="hello"), keys).replace(b"Subject: hello", b"Subject: HELLO")
    assert check(session, raw).result is Result.FAIL


def test_rsa_sha1_does_not_count(check: Check, session: DnsSession, keys: world.Keys) -> None:
    raw = world.sign(world.message(), keys, algorithm="rsa-sha1")
    r = check(session, raw)
    assert r.result is Result.PERMERROR and "RFC 8301" in r.reason
    assert session.queries == 0  # refused before any key lookup


def test_small_rsa_keys_do_not_count(check: Check, session: DnsSession, keys: world.Keys) -> None:
    raw = world.sign(world.message(), keys, selector="small")
    r = check(session, raw)
    assert r.result is Result.PERMERROR and "too small" in r.reason


def test_every_signature_is_tried_until_one_passes(check: Check, session: DnsSession, keys: world.Keys) -> None:
    good = world.sign(world.message(), keys)
    broken = world.sign(good, keys, selector="missing")  # a key that does not exist, on top
    sha1 = world.sign(broken, keys, algorithm="rsa-sha1")
    r = check(session, sha1, chunk_size=3)
    assert r.result is Result.PASS and r.properties["header.s"] == "rsa"


def test_signature_cap(check: Check, session: DnsSession, keys: world.Keys) -> None:
    raw = world.sign(world.message(), keys)
    for _ in range(3):
        raw = world.sign(raw, keys, selector="missing")
    r = check(session, raw, max_signatures=2)
    assert r.result is Result.PERMERROR and "no key for signature" in r.reason
    assert "2 more signature(s) not tried" in r.reason
    assert session.queries == 2


def test_key_lookup_timeout_is_temperror(check: Check, session: DnsSession, keys: world.Keys) -> None:
    raw = world.sign(world.message(), keys, selector="slow")
    r = check(session, raw)
    assert r.result is Result.TEMPERROR and "key lookup failed" in r.reason


def test_temperror_outranks_fail_when_nothing_passes(check: Check, session: DnsSession, keys: world.Keys) -> None:
    raw = world.sign(world.sign(world.message(), keys, selector="missing"), keys, selector="slow")
    assert check(session, raw).result is Result.TEMPERROR


@pytest.mark.parametrize("raw", [world.message(), b"", b"\x00\xff garbage without headers", b"Subject: x\r\n\r\n"])
def test_unsigned_or_garbage_is_none_or_permerror(check: Check, session: DnsSession, raw: bytes) -> None:
    assert check(session, raw).result in (Result.NONE, Result.PERMERROR)


def test_malformed_signature_header_is_neutral_and_asks_no_dns(check: Check, session: DnsSession) -> None:
    raw = b"DKIM-Signature: this is not tag=value;;==\r\n" + world.message()
    r = check(session, raw)
    assert r.result is Result.NEUTRAL and "signature syntax" in r.reason
    assert session.queries == 0


def test_overlong_d_is_not_a_crash(check: Check, resolver: DnsResolver, keys: world.Keys) -> None:
    raw = world.sign(
        world.message(), keys, domain="d" * 63 + "." + "e" * 63 + "." + "f" * 63 + "." + "g" * 63 + ".test"
    )
    r = check(resolver.session(Deadline(5)), raw)
    assert r.result is Result.NEUTRAL and "is not a domain name" in r.reason


@pytest.mark.parametrize("change", ["plus modulus", "leading zero octet"])
def test_rsa_signature_must_be_k_octets_below_the_modulus(
    check: Check, session: DnsSession, keys: world.Keys, change: str
) -> None:
    """RFC 8017 §8.2.2: s + n, or s with a leading zero, is the same integer mod n but not a valid signature."""
    raw = world.sign(world.message(), keys)
    assert check(session, raw).result is Result.PASS
    field_end = re.search(rb"\r\n(?![ \t])", raw)
    assert field_end is not None
    found = re.search(rb"[;\s]b=([A-Za-z0-9+/=\s]+)$", raw[: field_end.start()])  # dkimpy writes b= last
    assert found is not None
    signature = base64.b64decode(re.sub(rb"\s+", b"", found.group(1)))
    modulus = serialization.load_der_public_key(base64.b64decode(keys.rsa_public_b64)).public_numbers().n  # type: ignore[union-attr]
    if change == "plus modulus":
        value = int.from_bytes(signature) + modulus
        forged = value.to_bytes((value.bit_length() + 7) // 8)
    else:
        forged = b"\0" + signature
    tampered = raw.replace(found.group(1), base64.b64encode(forged), 1)
    r = check(session, tampered)
    assert r.result is Result.FAIL and "signature did not verify" in r.reason


def test_rsa_key_with_a_huge_exponent_is_refused(check: Check, keys: world.Keys) -> None:
    """A sender's key must not buy CPU time beyond the decision budget (pure-Python RSA)."""
    n = serialization.load_der_public_key(base64.b64decode(keys.rsa_public_b64)).public_numbers().n  # type: ignore[union-attr]
    huge = rsa.RSAPublicNumbers((1 << 100) + 1, n).public_key()
    der = huge.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    texts = dict(world.zone_texts(keys))
    texts["good.test"] += f"huge._domainkey TXT {world._txt('v=DKIM1; p=' + base64.b64encode(der).decode())}\n"
    zones = [dns.zone.from_text(text, origin=origin + ".") for origin, text in texts.items()]
    session = DnsResolver(ZoneBackend(zones), query_timeout=1.0, query_limit=60).session(Deadline(5))
    r = check(session, world.sign(world.message(), keys, selector="huge"))
    assert r.result is Result.PERMERROR and "RSA key too large" in r.reason
