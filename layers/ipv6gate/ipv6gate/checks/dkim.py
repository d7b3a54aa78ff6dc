"""DKIM (RFC 6376) through dkimpy, one signature at a time, with the key lookups on our DNS session.

``dkim.verify()`` looks only at the first signature and folds every error into ``False``; here
each signature (up to a cap) is verified on its own and its outcome kept, so a DNS timeout is a
``temperror`` and not a failed signature. RFC 8301: rsa-sha1 signatures never count and RSA keys
under 1024 bits are refused (dkimpy's ``minkey``). ed25519 (RFC 8463) verifies through PyNaCl.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from ipv6gate.dns import DnsNameError, DnsSession, DnsTempError
from ipv6gate.results import CheckResult, Result

METHOD = "dkim"
MIN_RSA_BITS = 1024
ALLOWED_ALGORITHMS = {b"rsa-sha256", b"ed25519-sha256"}


@dataclass(frozen=True, slots=True)
class SignatureOutcome:
    domain: str
    selector: str
    result: Result
    reason: str


def check_dkim(dns_session: DnsSession, message: bytes, *, max_signatures: int) -> CheckResult:
    try:
        verifier = dkim.DKIM(message, minkey=MIN_RSA_BITS)
        signatures = [v for n, v in verifier.headers if n.lower() == b"dkim-signature"]
    except Exception as exc:  # dkimpy parses sender-controlled bytes: report, don't crash
        return CheckResult(METHOD, Result.PERMERROR, f"message could not be parsed: {exc.__class__.__name__}")
    if not signatures:
        return CheckResult(METHOD, Result.NONE, "no DKIM-Signature header")

    return verify_signatures(verifier, signatures, dns_session, max_signatures=max_signatures)


def verify_signatures(
    verifier: dkim.DKIM,
    signatures: list[bytes],
    dns_session: DnsSession,
    *,
    max_signatures: int,
    prepare: Callable[[int], None] | None = None,
) -> CheckResult:
    """Try the signatures in order, up to the cap, until one passes; ``prepare(idx)`` runs before each."""
    outcomes: list[SignatureOutcome] = []
    for idx, raw in enumerate(signatures[:max_signatures]):
        if prepare is not None:
            prepare(idx)
        outcome = _verify_one(verifier, idx, raw, dns_session)
        outcomes.append(outcome)
        if outcome.result is Result.PASS:
            return CheckResult(
                METHOD,
                Result.PASS,
                f"signature by {outcome.domain} verified",
                {"header.d": outcome.domain, "header.s": outcome.selector},
            )
    return _summary(outcomes, skipped=max(0, len(signatures) - max_signatures))


def _verify_one(verifier: dkim.DKIM, idx: int, raw: bytes, dns_session: DnsSession) -> SignatureOutcome:
    try:
        tags = parse_tag_value(raw)
    except InvalidTagValueList:
        return SignatureOutcome("?", "?", Result.PERMERROR, "malformed DKIM-Signature")
    domain = _text(tags.get(b"d", b"?"))
    selector = _text(tags.get(b"s", b"?"))
    algorithm = tags.get(b"a", b"")
    if algorithm not in ALLOWED_ALGORITHMS:
        reason = f"algorithm {_text(algorithm) or '?'} not accepted (RFC 8301)"
        return SignatureOutcome(domain, selector, Result.PERMERROR, reason)

    temp_failures: list[str] = []

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            records = dns_session.txt(name)
        except DnsTempError as exc:
            temp_failures.append(str(exc))
            raise dkim.DnsTimeoutError(str(exc)) from None
        except DnsNameError:
            return None
        return records[0] if records else None

    try:
        valid = verifier.verify(idx=idx, dnsfunc=dnsfunc)
    except dkim.ValidationError as exc:
        return SignatureOutcome(domain, selector, Result.FAIL, short_reason(exc))
    except dkim.DKIMException as exc:  # key or signature malformed, key too small, unknown key type
        return SignatureOutcome(domain, selector, Result.PERMERROR, short_reason(exc))
    except Exception as exc:
        return SignatureOutcome(domain, selector, Result.PERMERROR, f"verifier error: {exc.__class__.__name__}")
    if temp_failures:
        return SignatureOutcome(domain, selector, Result.TEMPERROR, f"key lookup failed: {temp_failures[0]}")
    if valid:
        return SignatureOutcome(domain, selector, Result.PASS, "verified")
    return SignatureOutcome(domain, selector, Result.FAIL, "signature did not verify or key missing")


def _summary(outcomes: list[SignatureOutcome], skipped: int) -> CheckResult:
    for wanted in (Result.TEMPERROR, Result.FAIL, Result.PERMERROR):
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


def _text(value: bytes) -> str:
    return value.decode("ascii", "replace")


def short_reason(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return text if len(text) <= 120 else text[:117] + "..."
