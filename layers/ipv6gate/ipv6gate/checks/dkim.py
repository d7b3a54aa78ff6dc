"""DKIM (RFC 6376, RFC 8301, RFC 8463): one verifier, for a message read as a stream or held whole.

Each signature (up to a cap) is verified on its own until one passes, in RFC 6376 §6.1's order:
1. the header block is read (``dkim_body``) and split into fields by dkimpy's ``rfc822_parse``;
2. each DKIM-Signature is checked against RFC 6376 §3.5 (``dkim_records.parse_signature``); the
   ones that survive name the body hashes to compute, and the body is read once for all of them;
3. per signature: the key record is fetched through the decision's DNS session and checked
   (``dkim_records.parse_key_record``, ``check_key_fits``), the body hash compared, the signed header
   fields hashed with dkimpy's canonicalization and field selection, and the signature checked with
   dkimpy's RSASSA-PKCS1-v1_5 (after RFC 8017's length and range checks) or PyNaCl's ed25519.

Results in RFC 8601 words, each with the cause: ``pass``; ``fail`` (body hash or signature did not
verify); ``neutral`` (signature syntax, expired, failed under a t=y testing key); ``permerror`` (no
key, revoked, key syntax, unsupported algorithm, key not for this signature); ``temperror`` (DNS).
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ipv6gate.checks.lazy_module import defer_import

# PyNaCl (ed25519) is loaded when a key says k=ed25519: dkimpy imports it at its own import, so its
# signing module (cffi, libsodium) is put in place as a stand-in first (checks/lazy_module.py).
defer_import("nacl.signing")

import dkim  # noqa: E402 (after the lazy module above)
import dkim.crypto  # noqa: E402
from dkim.canonicalization import CanonicalizationPolicy  # noqa: E402

from ipv6gate.checks.dkim_body import (  # noqa: E402
    CHUNK_SIZE,
    MAX_HEADER_BYTES,
    BodyKey,
    ByteStream,
    Reader,
    Unreadable,
    hash_body,
    read_header_block,
)
from ipv6gate.checks.dkim_records import (  # noqa: E402
    MAX_RSA_BITS,
    MAX_RSA_EXPONENT_BITS,
    MIN_RSA_BITS,
    KeyRecord,
    Signature,
    Unusable,
    check_key_fits,
    parse_key_record,
    parse_signature,
)
from ipv6gate.checks.results import CheckResult, Result  # noqa: E402
from ipv6gate.dns import DnsNameError, DnsSession, DnsTempError  # noqa: E402

METHOD = "dkim"

Header = tuple[bytes, bytes]


@dataclass(frozen=True, slots=True)
class SignatureOutcome:
    domain: str
    selector: str
    result: Result
    reason: str


def check_dkim(dns_session: DnsSession, message: bytes, *, max_signatures: int) -> CheckResult:
    """``check_dkim_stream`` for a message held whole."""
    return check_dkim_stream(dns_session, io.BytesIO(message), max_signatures=max_signatures)


def check_dkim_stream(
    dns_session: DnsSession,
    stream: ByteStream,
    *,
    max_signatures: int,
    max_header_bytes: int = MAX_HEADER_BYTES,
    chunk_size: int = CHUNK_SIZE,
    now: Callable[[], float] = time.time,
) -> CheckResult:
    """Verify the message's DKIM signatures, reading ``stream`` once and holding its headers and one chunk."""
    reader = Reader(stream, chunk_size)
    try:
        head = read_header_block(reader, max_header_bytes)
    except Unreadable as exc:
        return CheckResult(METHOD, Result.TEMPERROR, f"raw message unavailable: {short_reason(exc.__cause__ or exc)}")
    if head is None:
        return CheckResult(METHOD, Result.PERMERROR, f"header block over {max_header_bytes} bytes")
    header_block, body_start = head
    try:
        headers: list[Header] = [(bytes(n), bytes(v)) for n, v in dkim.rfc822_parse(header_block)[0]]
    except Exception as exc:  # dkimpy parses sender-controlled bytes: report, don't crash
        return CheckResult(METHOD, Result.PERMERROR, f"message could not be parsed: {exc.__class__.__name__}")
    fields = [h for h in headers if h[0].lower() == b"dkim-signature"]
    if not fields:
        return CheckResult(METHOD, Result.NONE, "no DKIM-Signature header")

    checked_at = now()
    parsed: list[Signature | SignatureOutcome] = []
    for _, value in fields[:max_signatures]:
        try:
            parsed.append(parse_signature(value.decode("latin-1"), now=checked_at))
        except Unusable as exc:
            domain, selector = _names(value)
            parsed.append(SignatureOutcome(domain, selector, exc.result, exc.cause))
    wanted = {_body_key(sig) for sig in parsed if isinstance(sig, Signature)}
    try:
        digests = hash_body(reader, body_start, wanted) if wanted else {}
    except Unreadable as exc:
        return CheckResult(METHOD, Result.TEMPERROR, f"raw message unavailable: {short_reason(exc.__cause__ or exc)}")

    outcomes: list[SignatureOutcome] = []
    for sig, field in zip(parsed, fields, strict=False):
        outcome = sig if isinstance(sig, SignatureOutcome) else _verify(sig, field, headers, digests, dns_session)
        outcomes.append(outcome)
        if outcome.result is Result.PASS:
            return CheckResult(
                METHOD,
                Result.PASS,
                f"signature by {outcome.domain} verified{outcome.reason}",
                {"header.d": outcome.domain, "header.s": outcome.selector},
            )
    return _summary(outcomes, skipped=max(0, len(fields) - max_signatures))


def _body_key(sig: Signature) -> BodyKey:
    return (sig.body_canon, sig.hash_name, sig.length)


def _verify(
    sig: Signature,
    field: Header,
    headers: list[Header],
    digests: dict[BodyKey, bytes | None],
    dns_session: DnsSession,
) -> SignatureOutcome:
    def outcome(result: Result, reason: str) -> SignatureOutcome:
        return SignatureOutcome(sig.domain, sig.selector, result, reason)

    name = f"{sig.selector}._domainkey.{sig.domain}".encode("latin-1")
    try:
        records = dns_session.txt(name)
    except DnsTempError as exc:
        return outcome(Result.TEMPERROR, f"key lookup failed: {exc}")
    except DnsNameError:
        records = []
    if not records:
        return outcome(Result.PERMERROR, "no key for signature")
    # RFC 6376 §6.1.2: with several key records the verifier may try each; the first one's cause is reported.
    first: SignatureOutcome | None = None
    for record in records:
        try:
            key = parse_key_record(record.decode("latin-1"))
            check_key_fits(sig, key)
            body_hash = digests[_body_key(sig)]
            if body_hash is None:
                result = outcome(Result.FAIL, f"body is shorter than l={sig.length}")
            elif body_hash != sig.body_hash:
                result = outcome(Result.FAIL, "body hash did not verify")
            elif not _signature_verifies(sig, key, field, headers):
                result = outcome(Result.FAIL, "signature did not verify")
            else:
                return outcome(Result.PASS, " (key in testing mode, t=y)" if key.testing else "")
        except Unusable as exc:
            first = first or outcome(exc.result, exc.cause)
            continue
        if key.testing:  # RFC 6376 §3.6.1: treat like unsigned mail, not as a failure
            result = outcome(Result.NEUTRAL, f"{result.reason} under a testing key (t=y)")
        first = first or result
    assert first is not None
    return first


def _signature_verifies(sig: Signature, key: KeyRecord, field: Header, headers: list[Header]) -> bool:
    """The header hash (RFC 6376 §3.7, with dkimpy's canonicalization and field selection) checked against b=."""
    public_key = _public_key(key)
    policy = CanonicalizationPolicy.from_c_value(sig.c_value)
    signed = [name.encode("latin-1") for name in sig.signed_fields]
    # As dkimpy does (its bug 644046): a From field that h= does not cover is hashed too, so a second
    # From added below the signed one breaks the signature instead of riding on it.
    if b"from" in signed:
        signed.append(b"from")
    hasher = hashlib.new(sig.hash_name)
    candidates = _bottom_fields(policy.canonicalize_headers(headers), signed)
    own = policy.canonicalize_headers([(field[0], _without_b_value(field[1]))])
    for name, value in dkim.select_headers(candidates, signed) + [(n, v.rstrip()) for n, v in own]:
        hasher.update(name + b":" + value)
    if key.key_type == "ed25519":
        import nacl.exceptions  # loaded with the key (_public_key)

        try:
            public_key.verify(hasher.digest(), sig.signature)
        except (nacl.exceptions.BadSignatureError, ValueError):  # ValueError: b= is not 64 octets
            return False
        return True
    modulus: int = public_key["modulus"]
    # RFC 8017 §8.2.2: a signature is exactly k octets and, as an integer, below the modulus.
    if len(sig.signature) != (modulus.bit_length() + 7) // 8 or int.from_bytes(sig.signature) >= modulus:
        return False
    try:
        return bool(dkim.crypto.RSASSA_PKCS1_v1_5_verify(hasher, sig.signature, public_key))
    except (TypeError, ValueError, dkim.crypto.DigestTooLargeError):
        return False


def _bottom_fields(headers: list[Header], signed: list[bytes]) -> list[Header]:
    """The fields h= can select (RFC 6376 §5.4.2: bottom-up, one per listing), in message order.

    dkimpy's ``select_headers`` costs (h= entries) x (fields); given only these, it picks the same ones.
    """
    wanted = {name: signed.count(name) for name in set(signed)}
    kept: list[Header] = []
    for field in reversed(headers):
        name = field[0].lower()
        if wanted.get(name, 0) > 0:
            wanted[name] -= 1
            kept.append(field)
    return kept[::-1]


def _without_b_value(value: bytes) -> bytes:
    """The DKIM-Signature value with the b= tag's value, and the white space around it, removed (§3.7)."""
    specs = value.split(b";")
    for index, spec in enumerate(specs):
        name, equals, _ = spec.partition(b"=")
        if equals and name.strip(b" \t\r\n") == b"b":
            specs[index] = name + equals
    return b";".join(specs)


def _public_key(key: KeyRecord) -> Any:
    if key.key_type == "ed25519":
        if len(key.public_key) != 32:
            raise Unusable(Result.PERMERROR, "key syntax: an ed25519 key is 32 octets")
        import nacl.signing  # the lazy module: this first use loads PyNaCl

        return nacl.signing.VerifyKey(key.public_key)
    try:
        parsed = dkim.crypto.parse_public_key(key.public_key)
        bits = parsed["modulus"].bit_length()
        exponent_bits = parsed["publicExponent"].bit_length()
    except Exception:  # the ASN.1 is sender-controlled: any failure is a malformed key
        raise Unusable(Result.PERMERROR, "key syntax: p= is not an RSA public key") from None
    if bits < MIN_RSA_BITS:
        raise Unusable(Result.PERMERROR, f"RSA key too small: {bits} bits (RFC 8301 needs {MIN_RSA_BITS})")
    if bits > MAX_RSA_BITS or exponent_bits > MAX_RSA_EXPONENT_BITS:
        raise Unusable(Result.PERMERROR, f"RSA key too large: {bits} bits, exponent of {exponent_bits} bits")
    return parsed


def _names(value: bytes) -> tuple[str, str]:
    """d= and s= of a signature that did not parse, best effort, for the reason and properties."""
    found = {"d": "?", "s": "?"}
    for spec in value.decode("latin-1").split(";"):
        tag, _, tag_value = spec.partition("=")
        if tag.strip() in found and tag_value.strip():
            found[tag.strip()] = "".join(c if " " < c <= "~" else "?" for c in tag_value.strip())[:80]
    return found["d"], found["s"]


def _summary(outcomes: list[SignatureOutcome], skipped: int) -> CheckResult:
    # A temporary failure first (a retry may pass), then a real verification failure, then the rest.
    for wanted in (Result.TEMPERROR, Result.FAIL, Result.PERMERROR, Result.NEUTRAL):
        first = next((o for o in outcomes if o.result is wanted), None)
        if first is not None:
            extra = f"; {skipped} more signature(s) not tried" if skipped else ""
            tried = f"{len(outcomes)} signature(s) tried" if len(outcomes) > 1 else "signature"
            return CheckResult(
                METHOD,
                wanted,
                f"{tried}, {first.domain} (s={first.selector}): {first.reason}{extra}",
                {"header.d": first.domain, "header.s": first.selector},
            )
    return CheckResult(METHOD, Result.PERMERROR, "no signature could be evaluated")


def short_reason(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return text if len(text) <= 120 else text[:117] + "..."
