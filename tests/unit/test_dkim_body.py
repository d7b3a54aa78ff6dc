"""Streaming DKIM: test_dkim.py's vectors in small reads, body hashes equal to dkimpy's, how the stream is read."""

from __future__ import annotations

import hashlib
import io
import random
import re
from collections.abc import Iterable

import dkim
import dns.name
import dns.zone
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from dkim.canonicalization import CanonicalizationPolicy

from devstack import world
from ipv6gate.aws.s3 import S3MessageStore
from ipv6gate.checks.dkim import check_dkim, check_dkim_stream
from ipv6gate.checks.dkim_body import CHUNK_SIZE, BodyKey, ByteStream, Reader, hash_body
from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.dns import Deadline, DnsResolver, DnsSession
from ipv6gate.dns.zones import ZoneBackend
from ipv6gate.ports import MessageStoreError
from ipv6gate.ports.memory import InMemoryMessages

TINY_CHUNKS = (1, 2, 3, 7)
CANONICALIZATIONS = [(h, b) for h in (b"simple", b"relaxed") for b in (b"simple", b"relaxed")]
BODY_CANONS = ("simple", "relaxed")


def body_digests(
    stream: ByteStream, wanted: Iterable[BodyKey], *, chunk_size: int = CHUNK_SIZE
) -> dict[BodyKey, bytes | None]:
    """The body hashes as the verifier computes them, for a stream at the body's start."""
    return hash_body(Reader(stream, chunk_size), b"", set(wanted))


class RecordingStream:
    """A readable stream that remembers every read: the size asked, the octets returned."""

    def __init__(self, data: bytes, *, fail_after: int | None = None) -> None:
        self._io = io.BytesIO(data)
        self.asked: list[int] = []
        self.total = 0
        self._fail_after = fail_after

    def read(self, size: int, /) -> bytes:
        self.asked.append(size)
        if self._fail_after is not None and self.total >= self._fail_after:
            raise OSError("connection reset by peer")
        chunk = self._io.read(size)
        self.total += len(chunk)
        return chunk


def stream_check(
    session: DnsSession, raw: bytes, *, chunk_size: int = CHUNK_SIZE, max_signatures: int = 5
) -> CheckResult:
    return check_dkim_stream(session, io.BytesIO(raw), max_signatures=max_signatures, chunk_size=chunk_size)


def header_length(raw: bytes) -> int:
    return raw.index(b"\r\n\r\n") + 4


# --- test_dkim.py's vectors run through both checks there; here, in small reads -------------------


@pytest.mark.parametrize("chunk_size", [1, 7])
@pytest.mark.parametrize("algorithm,selector", [("rsa", "rsa"), ("ed25519", "ed")])
def test_valid_signatures_pass(
    session: DnsSession, keys: world.Keys, algorithm: str, selector: str, chunk_size: int
) -> None:
    raw = world.sign(world.message(), keys, selector=selector, algorithm=algorithm)
    r = stream_check(session, raw, chunk_size=chunk_size)
    assert r.result is Result.PASS, r.reason
    assert r.properties == {"header.d": "good.test", "header.s": selector}


def test_tampered_body_fails(session: DnsSession, keys: world.Keys) -> None:
    raw = world.sign(world.message(body="Pay 10 EUR.\n"), keys).replace(b"10 EUR", b"99 EUR")
    r = stream_check(session, raw, chunk_size=1)
    assert r.result is Result.FAIL and "body hash" in r.reason


def test_rsa_sha1_does_not_count_and_the_body_is_not_read(session: DnsSession, keys: world.Keys) -> None:
    raw = world.sign(world.message(body="x" * 5000 + "\n"), keys, algorithm="rsa-sha1")
    stream = RecordingStream(raw)
    r = check_dkim_stream(session, stream, max_signatures=5, chunk_size=1)
    assert r.result is Result.PERMERROR and "RFC 8301" in r.reason
    assert session.queries == 0  # refused before any key lookup
    assert stream.total == header_length(raw)  # not one body octet


# --- same result, reason and properties as check_dkim --------------------------------------------


@pytest.fixture(scope="module")
def tls_resolver(keys: world.Keys) -> DnsResolver:
    """The test world plus stream.test, whose key is for TLS reports only (s=tlsrpt)."""
    texts = dict(world.zone_texts(keys))
    texts["stream.test"] = (
        "@ 3600 IN SOA ns.stream.test. hostmaster.stream.test. 1 3600 600 86400 300\n"
        "@ 3600 IN NS ns.stream.test.\n"
        'tls._domainkey TXT "v=DKIM1; k=ed25519; s=tlsrpt; p=' + keys.ed25519_public_b64 + '"\n'
    )
    zones = [
        dns.zone.from_text(f"$TTL 300\n{text}", origin=origin + ".", relativize=False) for origin, text in texts.items()
    ]
    backend = ZoneBackend(zones, timeouts=[dns.name.from_text("slow._domainkey.good.test.")])
    return DnsResolver(backend, query_timeout=1.0, query_limit=60)


def odd_messages(keys: world.Keys) -> dict[str, bytes]:
    signed = world.sign(world.message(body="Hello,\n\n  world \t\n\n\n"), keys)
    lf_only = world.message(body="Hello\nworld\n").replace(b"\r\n", b"\n")
    headers_only = b"From: Alice <alice@good.test>\r\nTo: bob@tenant.test\r\nSubject: hello\r\n"

    def ed(raw: bytes, **kw: object) -> bytes:
        return dkim.sign(raw, b"ed", b"good.test", keys.ed25519_seed_b64, signature_algorithm=b"ed25519-sha256",
                         include_headers=[b"from", b"subject"], **kw) + raw  # fmt: skip

    def tls(raw: bytes) -> bytes:
        return dkim.sign(raw, b"tls", b"stream.test", keys.ed25519_seed_b64, signature_algorithm=b"ed25519-sha256",
                         include_headers=[b"from"]) + raw  # fmt: skip

    with_length = ed(world.message(body="signed part\r\n"), length=True)
    return {
        "empty": b"",
        "crlf only": b"\r\n",
        "lf only": b"\n",
        "cr only": b"\r",
        "cr cr lf": b"\r\r\n",
        "garbage": b"\x00\xff garbage without headers",
        "continuation first": b" folded\r\nSubject: x\r\n\r\nbody\r\n",
        "unsigned": world.message(),
        "signed": signed,
        "signed, lf line ends": signed.replace(b"\r\n", b"\n"),
        "signed, body tampered": signed.replace(b"world", b"World"),
        "signed, whitespace added": signed.replace(b"world", b"world  "),
        "lf-only message signed": ed(lf_only),
        "mbox From line": b"From alice@good.test Fri Nov 27 12:00:00 2026\r\n" + ed(world.message()),
        "headers only, signed": ed(headers_only),
        "headers only, no final line break": ed(headers_only).rstrip(b"\r\n"),
        "empty body, signed": ed(headers_only + b"\r\n"),
        "body is a lone CR": ed(headers_only + b"\r\n\r"),
        "body of blank lines": ed(headers_only + b"\r\n\r\n\n\r\n"),
        "blank line made of LF CR LF": ed(headers_only.replace(b"\r\n", b"\n") + b"\r\nbody\n"),
        "l= honoured, text appended": with_length.replace(b"signed part\r\n", b"signed part\r\nappended\r\n"),
        "l= empty": with_length.replace(b"l=13", b"l="),
        "l= too long": with_length.replace(b"l=13", b"l=99999999999999999999"),
        "c= unknown": ed(world.message()).replace(b"c=relaxed/simple", b"c=bogus/simple"),
        "c= unknown, key missing": ed(world.message()).replace(b"c=relaxed/simple", b"c=x").replace(b"s=ed", b"s=no"),
        "bh= missing": ed(world.message()).replace(b"bh=", b"xh="),
        "bh= not base64": ed(world.message()).replace(b"bh=", b"bh=!!!!"),
        "bh= bad padding": re.sub(rb"bh=[^;]+", b"bh=ab!=", ed(world.message())),
        "tlsrpt key": tls(world.message()),
        "tlsrpt key, body tampered": tls(world.message()).replace(b"Hi.", b"Ho."),
        "two signatures, first broken": ed(world.sign(world.message(), keys, selector="missing")),
        "small key then tampered body": world.sign(world.message(), keys, selector="small").replace(b"Hi.", b"Ho."),
    }


@pytest.mark.parametrize("chunk_size", [*TINY_CHUNKS, 16, CHUNK_SIZE])
def test_same_outcome_as_check_dkim_on_odd_messages(
    tls_resolver: DnsResolver, keys: world.Keys, chunk_size: int
) -> None:
    for name, raw in odd_messages(keys).items():
        expected = check_dkim(tls_resolver.session(Deadline(5)), raw, max_signatures=5)
        got = stream_check(tls_resolver.session(Deadline(5)), raw, chunk_size=chunk_size)
        assert got == expected, name


def test_odd_messages_cover_every_result(tls_resolver: DnsResolver, keys: world.Keys) -> None:
    seen = {stream_check(tls_resolver.session(Deadline(5)), raw).result for raw in odd_messages(keys).values()}
    assert {Result.PASS, Result.FAIL, Result.PERMERROR, Result.NONE} <= seen


# --- body canonicalization against dkimpy, over generated bodies ----------------------------------

_ATOMS = [
    b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\n", b"\r\n\r\n", b" ", b"\t", b"  \t ", b" \r\n", b"\t\n", b"\t \r",
    b"x", b"hello", b"Gr\xfc\xdfe \xe9\xff\x80", b"\x00", b"a b", b"end.",
]  # fmt: skip


def random_body(rnd: random.Random) -> bytes:
    parts = [rnd.choice(_ATOMS) for _ in range(rnd.randint(0, 30))]
    if rnd.random() < 0.2:
        parts.insert(rnd.randint(0, len(parts)), bytes(rnd.choice(b"ab \t") for _ in range(rnd.randint(100, 3000))))
    if rnd.random() < 0.3:
        parts.append(rnd.choice([b"\r\n", b"\n", b" \r\n", b"\t\n\n"]) * rnd.randint(1, 6))  # empty lines at the end
    return b"".join(parts)


def dkimpy_digest(body: bytes, key: BodyKey) -> bytes | None:
    """dkimpy's body hash, and None where l= exceeds the canonical body (RFC 6376 §3.5; dkimpy hashes it anyway)."""
    _, parsed_body = dkim.rfc822_parse(b"X: y\r\n\r\n" + body)
    canonical = CanonicalizationPolicy.from_c_value(b"simple/" + key[0].encode()).canonicalize_body(parsed_body)
    if key[2] is not None and key[2] > len(canonical):
        return None
    return hashlib.new(key[1], canonical if key[2] is None else canonical[: key[2]]).digest()


def canonical_length(body: bytes, canonicalization: str) -> int:
    _, parsed_body = dkim.rfc822_parse(b"X: y\r\n\r\n" + body)
    return len(
        CanonicalizationPolicy.from_c_value(b"simple/" + canonicalization.encode()).canonicalize_body(parsed_body)
    )


def test_body_hashes_equal_dkimpys_over_generated_bodies() -> None:
    rnd = random.Random(6376)
    for case in range(600):
        body = random_body(rnd)
        keys: list[BodyKey] = []
        for canon in BODY_CANONS:
            size = canonical_length(body, canon)
            keys += [(canon, "sha256", limit) for limit in (None, 0, rnd.randint(0, size + 1), size, size + 5)]
        expected = {key: dkimpy_digest(body, key) for key in keys}
        chunk_size = TINY_CHUNKS[case % len(TINY_CHUNKS)] if case % 5 else rnd.randint(8, 4096)
        assert body_digests(io.BytesIO(body), keys, chunk_size=chunk_size) == expected, (body, chunk_size)


@pytest.mark.parametrize("chunk_size", TINY_CHUNKS)
def test_every_split_of_tricky_bodies(chunk_size: int) -> None:
    tricky = [b"", b" ", b"\r", b"\n", b"a \r\n", b"a\t\r\n\r\n", b"a  ", b"a\r\r\n\r\n", b"\r\n \r\n", b" \t\r\n\r\nb"]
    for body in tricky:
        for offset in range(len(body) + 1):  # shift the body against the chunk grid
            padded = b"p" * offset + body
            keys = [(canon, "sha256", None) for canon in BODY_CANONS]
            got = body_digests(io.BytesIO(padded), keys, chunk_size=chunk_size)
            assert got == {key: dkimpy_digest(padded, key) for key in keys}, padded


def test_long_runs_in_big_chunks() -> None:
    keys = [(canon, "sha256", limit) for canon in BODY_CANONS for limit in (None, 150_001)]
    for body in (b"\r\n" * 100_000 + b"x" + b"\r\n" * 70_000, b" \t" * 90_000 + b"\r\n", b"\r" * 70_000 + b"\n"):
        for chunk_size in (65_536, 200_000):
            assert body_digests(io.BytesIO(body), keys, chunk_size=chunk_size) == {
                key: dkimpy_digest(body, key) for key in keys
            }


def mutate(raw: bytes, rnd: random.Random) -> bytes:
    head, body = raw.split(b"\r\n\r\n", 1)
    spot = rnd.randint(0, len(body))
    change = rnd.choice(
        [
            lambda b: b[:spot] + b" " + b[spot:],
            lambda b: b[:spot] + b"\t\t" + b[spot:],
            lambda b: b[:spot] + b"Z" + b[spot:],
            lambda b: b[:spot] + b[spot + 1 :],
            lambda b: b + b"\r\n\r\n",
            lambda b: b + b"more\r\n",
            lambda b: b.rstrip(b"\r\n"),
            lambda b: b.replace(b"\r\n", b"\n"),
            lambda b: b.replace(b" ", b"  "),
        ]
    )
    return head + b"\r\n\r\n" + change(body)


def test_signed_by_dkimpy_verified_by_the_stream(tls_resolver: DnsResolver, keys: world.Keys) -> None:
    rnd = random.Random(8463)
    headers = b"From: Alice <alice@good.test>\r\nTo: bob@tenant.test\r\nSubject: hello\r\n\r\n"
    results = set()
    for case in range(160):
        header_c, body_c = CANONICALIZATIONS[case % 4]
        length = case % 8 >= 4
        message = headers + random_body(rnd)
        if case % 10 == 0:  # now and then RSA, mostly ed25519 (faster to sign)
            key, selector, algorithm = keys.rsa_pem, b"rsa", b"rsa-sha256"
        else:
            key, selector, algorithm = keys.ed25519_seed_b64, b"ed", b"ed25519-sha256"
        raw = (
            dkim.sign(
                message,
                selector,
                b"good.test",
                key,
                signature_algorithm=algorithm,
                include_headers=[b"from", b"to", b"subject"],
                canonicalize=(header_c, body_c),
                length=length,
            )
            + message
        )
        chunk_size = TINY_CHUNKS[case % len(TINY_CHUNKS)]
        r = stream_check(tls_resolver.session(Deadline(5)), raw, chunk_size=chunk_size)
        assert r.result is Result.PASS, (raw, r.reason)
        for _ in range(2):
            tampered = mutate(raw, rnd)
            expected = check_dkim(tls_resolver.session(Deadline(5)), tampered, max_signatures=5)
            got = stream_check(tls_resolver.session(Deadline(5)), tampered, chunk_size=chunk_size)
            assert got == expected, tampered
            results.add(got.result)
    assert results == {Result.PASS, Result.FAIL}  # the mutations both break and keep signatures


# --- how the stream is read -----------------------------------------------------------------------


def test_l_tag_stops_reading_once_its_octets_are_hashed(session: DnsSession, keys: world.Keys) -> None:
    message = world.message(body="the signed part\r\n")
    signed = dkim.sign(message, b"rsa", b"good.test", keys.rsa_pem, include_headers=[b"from"], length=True) + message
    raw = signed + b"an unsigned tail\r\n" * 50_000
    stream = RecordingStream(raw)
    r = check_dkim_stream(session, stream, max_signatures=5, chunk_size=4096)
    assert r.result is Result.PASS, r.reason
    assert check_dkim(session, raw, max_signatures=5).result is Result.PASS
    assert stream.total <= len(signed) + 4096 < len(raw)


def test_header_block_over_the_limit_is_permerror(session: DnsSession, keys: world.Keys) -> None:
    raw = world.sign(world.message(subject="x" * 5000), keys)
    stream = RecordingStream(raw)
    r = check_dkim_stream(session, stream, max_signatures=5, max_header_bytes=4096, chunk_size=1000)
    assert r.result is Result.PERMERROR and "header block over 4096 bytes" in r.reason
    assert stream.total <= 4096 + 1000 and session.queries == 0
    assert stream_check(session, raw).result is Result.PASS  # the default limit (1 MiB) lets it through


def test_no_terminator_within_the_limit_is_permerror(session: DnsSession) -> None:
    r = check_dkim_stream(session, io.BytesIO(b"X-Long: " + b"y" * 10_000), max_signatures=5, max_header_bytes=4096)
    assert r.result is Result.PERMERROR


@pytest.mark.parametrize("fail_after", [0, 100, 2000])
def test_a_stream_that_breaks_is_temperror(session: DnsSession, keys: world.Keys, fail_after: int) -> None:
    raw = world.sign(world.message(body="line\r\n" * 1000), keys)
    stream = RecordingStream(raw, fail_after=fail_after)
    r = check_dkim_stream(session, stream, max_signatures=5, chunk_size=512)
    assert r.result is Result.TEMPERROR and r.reason == "raw message unavailable: connection reset by peer"


def test_chunk_size_must_be_positive(session: DnsSession) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        check_dkim_stream(session, io.BytesIO(b""), max_signatures=5, chunk_size=0)


def big_body(size: int) -> bytes:
    """Base64-like attachment lines with some text (tabs, double spaces, trailing whitespace), ``size`` octets."""
    rnd = random.Random(30)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    line = bytes(rnd.choice(alphabet) for _ in range(76)) + b"\r\n"
    block = line * 800 + b"Some  text,\twith whitespace.  \r\n" * 100 + b"\xe9t\xe9\n"
    return (block * (size // len(block) + 1))[:size] + b"\r\n\r\n"


def test_30_mb_message_read_once_in_bounded_reads(resolver: DnsResolver, keys: world.Keys) -> None:
    # What is tested is the single bounded pass, not speed (bench/ has DKIM's timings): a deadline that
    # a loaded machine's 30 MB hash cannot reach, so the key lookup after it is never cut short.
    session = resolver.session(Deadline(300.0))
    message = world.message(body="").rstrip(b"\r\n") + b"\r\n\r\n" + big_body(30 * 1024 * 1024)
    signed = dkim.sign(
        message,
        b"ed",
        b"good.test",
        keys.ed25519_seed_b64,
        signature_algorithm=b"ed25519-sha256",
        include_headers=[b"from", b"to", b"subject"],
        canonicalize=(b"relaxed", b"relaxed"),
    )
    # On top, a simple/simple signature taken from another message: its body hash is computed in the
    # same single pass and does not match, then the relaxed one passes.
    other = world.sign(world.message(body="another body\r\n"), keys)
    foreign = other[: other.index(b"From: ")]
    raw = foreign.replace(b"c=relaxed/simple", b"c=simple/simple") + signed + message
    del message

    stream = RecordingStream(raw)
    r = check_dkim_stream(session, stream, max_signatures=5)
    assert r.result is Result.PASS and r.properties == {"header.d": "good.test", "header.s": "ed"}, r.reason
    assert max(stream.asked) <= CHUNK_SIZE
    assert stream.total == len(raw)  # every octet read, and only once
    assert len(stream.asked) <= len(raw) // CHUNK_SIZE + 2


# --- the message stores' open() -------------------------------------------------------------------


def test_in_memory_open(keys: world.Keys, session: DnsSession) -> None:
    raw = world.sign(world.message(), keys)
    store = InMemoryMessages({"m1": raw})
    with store.open("m1", 10_000) as stream:
        assert check_dkim_stream(session, stream, max_signatures=5).result is Result.PASS
    assert store.fetches == 1
    with pytest.raises(MessageStoreError) as missing:
        store.open("m2", 10_000)
    assert missing.value.missing
    with pytest.raises(MessageStoreError, match="over the 100 limit"):
        store.open("m1", 100)


class FakeS3:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.bodies: list[StreamingBody] = []

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, object]:
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "no"}}, "GetObject")
        data = self.objects[Key]
        body = StreamingBody(io.BytesIO(data), len(data))
        self.bodies.append(body)
        return {"Body": body, "ContentLength": len(data)}


def test_s3_open_streams_the_object(keys: world.Keys, session: DnsSession) -> None:
    raw = world.sign(world.message(body="hello from S3\r\n" * 100), keys)
    s3 = FakeS3({"in/m1": raw})
    store = S3MessageStore(s3, "bucket", "in/")
    stream = store.open("m1", 1_000_000)
    assert isinstance(stream, StreamingBody)
    assert check_dkim_stream(session, stream, max_signatures=5, chunk_size=100).result is Result.PASS

    with pytest.raises(MessageStoreError) as missing:
        store.open("m2", 1_000_000)
    assert missing.value.missing and "s3://bucket/in/m2" in str(missing.value)

    with pytest.raises(MessageStoreError, match="over the 100 limit"):
        store.open("m1", 100)
    assert s3.bodies[-1]._raw_stream.closed  # the refused object's body was closed, not left open


def test_truncated_s3_body_is_temperror(keys: world.Keys, session: DnsSession) -> None:
    raw = world.sign(world.message(body="x\r\n" * 100), keys)
    body = StreamingBody(io.BytesIO(raw[:-50]), len(raw))  # the connection dropped before the end
    r = check_dkim_stream(session, body, max_signatures=5, chunk_size=64)
    assert r.result is Result.TEMPERROR and "raw message unavailable" in r.reason
