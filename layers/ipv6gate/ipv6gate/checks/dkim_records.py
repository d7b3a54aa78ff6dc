"""DKIM-Signature fields and key records, parsed and checked per RFC 6376 (§3.2, §3.5, §3.6.1) and RFC 8301.

dkimpy 1.1.8 is right about canonicalization, header hashing and the RSA arithmetic, and those stay
its own; its parsing around them is not (README "DKIM"): it compares key ``s=`` as one string, ignores
key ``t=s`` and ``h=``, refuses a ``q=`` list and a quoted-printable ``i=``, accepts a signature whose
``h=`` leaves out From or whose ``a=`` disagrees with the key type, and reports key problems as a bare
``False``. Here every rule is one check that raises ``Unusable`` with its RFC 8601 result and a
plain-text cause; ``checks.dkim`` applies them before and around dkimpy's cryptography.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass

from ipv6gate.checks.results import Result

# RFC 8301: rsa-sha1 MUST NOT be considered valid, RSA keys under 1024 bits MUST NOT.
# RFC 8463 adds ed25519-sha256. Each algorithm is (key type, hash).
ALGORITHMS = {"rsa-sha256": ("rsa", "sha256"), "ed25519-sha256": ("ed25519", "sha256")}
REFUSED_ALGORITHMS = {"rsa-sha1": "rsa-sha1 is not accepted (RFC 8301)"}
MIN_RSA_BITS = 1024
# RFC 8301 §3.2: verifiers MUST handle 1024-4096 bits and MAY handle more. Larger keys, exponents and
# h= lists only buy a sender CPU time beyond the decision budget (pure-Python RSA, header selection).
MAX_RSA_BITS = 8192
MAX_RSA_EXPONENT_BITS = 64
MAX_SIGNED_FIELDS = 256
CANONICALIZATIONS = ("simple", "relaxed")

_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_WSP = " \t\r\n"
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}\Z")
_LABEL = re.compile(r"(?:[A-Za-z0-9_]|[^\x00-\x7f])(?:[A-Za-z0-9_-]|[^\x00-\x7f]){0,62}\Z")
_QP_ESCAPE = re.compile(r"=([0-9A-F]{2})")


class Unusable(Exception):
    """This signature cannot pass: the RFC 8601 result to report and the RFC 6376 cause."""

    def __init__(self, result: Result, cause: str) -> None:
        super().__init__(cause)
        self.result = result
        self.cause = cause


def _syntax(cause: str) -> Unusable:
    # RFC 8601 §2.7.1: "signed, but the signature ... contained syntax errors" is neutral.
    return Unusable(Result.NEUTRAL, f"signature syntax: {cause}")


def _key(cause: str) -> Unusable:
    # RFC 6376 §6.1.2/§6.1.3 PERMFAIL: a later attempt will not change it.
    return Unusable(Result.PERMERROR, cause)


def parse_tag_list(text: str, what: str) -> dict[str, str]:
    """RFC 6376 §3.2 tag=value list: names are ALPHA *(ALPHA/DIGIT/"_"), a repeated name invalidates it.

    Folding white space around names and values is dropped; inside a value it is kept (b=, bh= and p=
    strip it themselves). ``what`` names the list in the error ("signature", "key record").
    """
    tags: dict[str, str] = {}
    specs = text.split(";")
    if specs and not specs[-1].strip(_WSP):
        specs.pop()  # a trailing ";" is allowed
    for spec in specs:
        name, equals, value = spec.partition("=")
        name = name.strip(_WSP)
        if not equals or not _TAG_NAME.match(name):
            raise ValueError(f"{what} has a malformed tag {_shown(spec)}")
        if name in tags:
            raise ValueError(f"{what} repeats the tag {name}= (RFC 6376 §3.2)")
        value = value.strip(_WSP)
        if any((ord(c) < 0x20 and c not in _WSP) or ord(c) == 0x7F for c in value):
            raise ValueError(f"{what} tag {name}= has a control character")
        tags[name] = value
    return tags


@dataclass(frozen=True, slots=True)
class Signature:
    """A DKIM-Signature that passed every syntax rule; values as the verifier needs them."""

    domain: str  # d=, lowercased (domain names compare case-insensitively), without a final dot
    selector: str  # s=
    key_type: str  # from a=: "rsa" or "ed25519"
    hash_name: str  # from a=: "sha256"
    signature: bytes  # b=, decoded
    body_hash: bytes  # bh=, decoded
    header_canon: str  # c=, "simple" or "relaxed"
    body_canon: str
    signed_fields: tuple[str, ...]  # h=, lowercased, in order
    identity_domain: str  # the domain of i= (decoded, lowercased), or d= when i= is absent
    length: int | None  # l=
    tags: dict[str, str]  # all of them, for dkimpy's header hash

    @property
    def c_value(self) -> bytes:
        return f"{self.header_canon}/{self.body_canon}".encode()


def parse_signature(raw: str, *, now: float) -> Signature:
    """Check a DKIM-Signature field value against RFC 6376 §3.5 (and RFC 8301); raise ``Unusable``."""
    try:
        tags = parse_tag_list(raw, "signature")
    except ValueError as exc:
        raise _syntax(str(exc)) from None
    for name in ("v", "a", "b", "bh", "d", "h", "s"):
        if name not in tags:
            raise _syntax(f"required tag {name}= is missing")
    if tags["v"] != "1":
        raise _syntax(f"v={_shown(tags['v'])} is not 1")
    algorithm = tags["a"].lower()
    if algorithm in REFUSED_ALGORITHMS:
        raise Unusable(Result.PERMERROR, REFUSED_ALGORITHMS[algorithm])
    if algorithm not in ALGORITHMS:
        raise Unusable(Result.PERMERROR, f"algorithm {_shown(tags['a'])} is not supported")
    key_type, hash_name = ALGORITHMS[algorithm]
    domain = tags["d"].lower().removesuffix(".")
    if not _is_domain(domain):
        raise _syntax(f"d={_shown(tags['d'])} is not a domain name")
    if not _is_domain(tags["s"]):
        raise _syntax(f"s={_shown(tags['s'])} is not a selector")
    header_canon, body_canon = _canonicalization(tags.get("c", "simple/simple"))
    signed = tuple(name.strip(_WSP).lower() for name in tags["h"].split(":"))
    if not all(signed):
        raise _syntax("h= has an empty field name")
    if len(signed) > MAX_SIGNED_FIELDS:
        raise _syntax(f"h= lists {len(signed)} fields (this verifier hashes at most {MAX_SIGNED_FIELDS})")
    if "from" not in signed:
        raise _syntax("h= does not include From (RFC 6376 §5.4)")
    if "q" in tags and "dns/txt" not in (method.strip(_WSP).lower() for method in tags["q"].split(":")):
        raise _syntax(f"q={_shown(tags['q'])} names no query method this verifier has (dns/txt)")
    identity_domain = _identity_domain(tags["i"], domain) if "i" in tags else domain
    length = _decimal(tags, "l") if "l" in tags else None
    _check_times(tags, now)
    return Signature(
        domain=domain,
        selector=tags["s"],
        key_type=key_type,
        hash_name=hash_name,
        signature=_base64(tags, "b", _syntax),
        body_hash=_base64(tags, "bh", _syntax),
        header_canon=header_canon,
        body_canon=body_canon,
        signed_fields=signed,
        identity_domain=identity_domain,
        length=length,
        tags=tags,
    )


def key_name(raw: str) -> str | None:
    """Where the key of this DKIM-Signature value is, as ``checks.dkim`` will look it up; None if it names none.

    For asking the key ahead of the verification (the milter, as the header arrives): only the
    tags it needs are read, so a signature that fails another rule may still be looked up.
    """
    try:
        tags = parse_tag_list(raw, "signature")
    except ValueError:
        return None
    domain, selector = tags.get("d", "").lower().removesuffix("."), tags.get("s", "")
    if not (_is_domain(domain) and _is_domain(selector)):
        return None
    return f"{selector}._domainkey.{domain}"


def _is_domain(name: str) -> bool:
    """RFC 6376 §3.5 domain-name / selector: dot-separated labels, no white space, at most 253 octets.

    Octets over 0x7F pass (U-labels, RFC 8616); the key lookup then finds no such name.
    """
    labels = name.split(".")
    return 0 < len(name) <= 253 and all(_LABEL.match(label) for label in labels)


def _canonicalization(value: str) -> tuple[str, str]:
    header, slash, body = value.lower().partition("/")
    body = body if slash else "simple"  # "c=relaxed" means relaxed/simple (§3.5)
    if header not in CANONICALIZATIONS or body not in CANONICALIZATIONS:
        raise _syntax(f"c={_shown(value)} is not a known canonicalization")
    return header, body


def _identity_domain(value: str, domain: str) -> str:
    """i= is dkim-quoted-printable (§2.11); its domain must be d= or a subdomain of it (§3.5)."""
    decoded = _QP_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), re.sub(r"[ \t\r\n]", "", value))
    _, at, identity = decoded.rpartition("@")
    identity = identity.rstrip(".").lower()
    if not at or not identity:
        raise _syntax(f"i={_shown(value)} is not an identity (local-part@domain)")
    if identity != domain.lower() and not identity.endswith("." + domain.lower()):
        raise _syntax(f"i= domain {_shown(identity)} is not d={_shown(domain)} or a subdomain of it")
    return identity


def _decimal(tags: dict[str, str], name: str) -> int:
    value = tags[name]
    if not value.isascii() or not value.isdigit() or len(value) > 76:  # §3.5: up to 76 digits
        raise _syntax(f"{name}={_shown(value)} is not a decimal number")
    return int(value)


def _check_times(tags: dict[str, str], now: float) -> None:
    signed_at = _decimal(tags, "t") if "t" in tags else None
    if "x" not in tags:
        return
    expires = _decimal(tags, "x")
    if signed_at is not None and expires <= signed_at:
        raise _syntax("x= is not later than t= (RFC 6376 §3.5)")
    if expires < now:
        raise _syntax(f"signature expired (x={expires})")


def _base64(tags: dict[str, str], name: str, error: Callable[[str], Unusable]) -> bytes:
    compact = re.sub(r"[ \t\r\n]", "", tags[name])
    if not compact or not _BASE64.match(compact) or len(compact) % 4:
        raise error(f"{name}= is not valid base64")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise error(f"{name}= is not valid base64") from None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key record that passed RFC 6376 §3.6.1; ``public_key`` is p= decoded (never empty)."""

    key_type: str  # k=, "rsa" or "ed25519"
    public_key: bytes
    hash_names: frozenset[str] | None  # h=, None when every hash is acceptable
    testing: bool  # t=y
    strict: bool  # t=s: i= must not be a subdomain of d=


def parse_key_record(text: str) -> KeyRecord:
    """Check a key record (one TXT record's strings, joined) per RFC 6376 §3.6.1; raise ``Unusable``."""
    try:
        tags = parse_tag_list(text, "key record")
    except ValueError as exc:
        raise _key(f"key syntax: {exc}") from None
    if "v" in tags and (tags["v"] != "DKIM1" or next(iter(tags)) != "v"):
        raise _key("key syntax: v= must be DKIM1 and the first tag")
    services = {s.strip(_WSP).lower() for s in tags.get("s", "*").split(":")}
    if not services & {"*", "email"}:
        raise _key(f"key is not for email (s={_shown(tags['s'])})")
    if "p" not in tags:
        raise _key("key syntax: p= is missing")
    if not re.sub(r"[ \t\r\n]", "", tags["p"]):
        raise _key("key revoked (empty p=)")
    public_key = _base64(tags, "p", lambda cause: _key(f"key syntax: {cause}"))
    key_type = tags.get("k", "rsa").lower()
    if key_type not in {kt for kt, _ in ALGORITHMS.values()}:
        raise _key(f"key type k={_shown(key_type)} is not supported")
    hashes = frozenset(h.strip(_WSP).lower() for h in tags["h"].split(":")) if "h" in tags else None
    flags = {f.strip(_WSP).lower() for f in tags.get("t", "").split(":")}
    return KeyRecord(key_type, public_key, hashes, testing="y" in flags, strict="s" in flags)


def check_key_fits(signature: Signature, key: KeyRecord) -> None:
    """The rules that join a signature and its key (§3.6.1 h=, k=, t=s; the a= key type)."""
    if key.key_type != signature.key_type:
        raise _key(f"key type {key.key_type} does not match a={signature.key_type}-{signature.hash_name}")
    if key.hash_names is not None and signature.hash_name not in key.hash_names:
        raise _key(f"key does not allow {signature.hash_name} (h={':'.join(sorted(key.hash_names))})")
    if key.strict and signature.identity_domain != signature.domain.lower():
        raise _key(f"key has t=s but i= domain {signature.identity_domain} is a subdomain of d={signature.domain}")


def _shown(value: str) -> str:
    """A sender-chosen value, printable and short, for a reason text."""
    text = "".join(c if " " <= c <= "~" else "?" for c in value.strip())
    return text if len(text) <= 40 else text[:37] + "..."
