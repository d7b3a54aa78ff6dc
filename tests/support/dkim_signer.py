"""A DKIM signer for tests that need signatures dkimpy would never make: any tag, any order, any lie.

It is written from RFC 6376 §3.4 and §3.7 directly (relaxed and simple canonicalization, the
signature field hashed last with an empty b=), not with dkimpy, so that the differential test
checks the verifier against an independent implementation on both sides: messages signed here,
verified by Perl's Mail::DKIM and by ``ipv6gate.checks.dkim``.
"""

from __future__ import annotations

import base64
import hashlib
import re

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

_WSP_RUN = re.compile(rb"[ \t]+")
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def canonical_body(body: bytes, method: str) -> bytes:
    lines = body.replace(b"\r\n", b"\n").split(b"\n")
    if method == "relaxed":
        lines = [_WSP_RUN.sub(b" ", line).rstrip(b" ") for line in lines]
    while lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        return b"" if method == "relaxed" else b"\r\n"
    return b"\r\n".join(lines) + b"\r\n"


def canonical_header(name: bytes, value: bytes, method: str) -> bytes:
    if method == "simple":
        return name + b":" + value
    unfolded = re.sub(rb"\r?\n", b"", value)
    return name.lower().strip() + b":" + _WSP_RUN.sub(b" ", unfolded).strip()


def split_message(raw: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        else:
            name, _, value = line.partition(b":")
            fields.append((name, value))
    return fields, body


def sign(
    raw: bytes,
    private_key: PrivateKey,
    tags: list[tuple[str, str]],
    *,
    canonicalization: str = "relaxed/relaxed",
    body_length: int | None = None,
    hash_name: str = "sha256",
    b_first: bool = False,
) -> bytes:
    """Prepend a DKIM-Signature with ``tags`` in that order; ``bh=`` and ``b=`` are filled in here.

    ``tags`` may repeat a tag, leave one out or state anything at all; ``h=`` (in ``tags``) says which
    fields are hashed, bottom-up as RFC 6376 §5.4.2 says; ``body_length`` truncates the hashed body;
    ``hash_name`` is "sha256" or, for RFC 8301 tests, "sha1" (ed25519 always hashes with SHA-256).
    """
    header_c, _, body_c = canonicalization.partition("/")
    fields, body = split_message(raw)
    canon = canonical_body(body, body_c or "simple")
    if body_length is not None:
        canon = canon[:body_length]
    body_hash = base64.b64encode(hashlib.new(hash_name, canon).digest()).decode()
    listed = "; ".join(f"{name}={value}" for name, value in tags)
    # b= last (as signers write it), or first when ``b_first``: RFC 6376 §3.7 removes its value wherever it is.
    value, tail = (" b=", f"; {listed}; bh={body_hash}") if b_first else (f" {listed}; bh={body_hash}; b=", "")
    signed_names = next((v for n, v in tags if n == "h"), "from").split(":")
    data = b""
    remaining = list(fields)
    for name in signed_names:
        for index in range(len(remaining) - 1, -1, -1):
            if remaining[index][0].lower() == name.strip().lower().encode():
                data += canonical_header(*remaining.pop(index), header_c) + b"\r\n"
                break
    data += canonical_header(b"DKIM-Signature", (value + tail).encode(), header_c)
    if isinstance(private_key, rsa.RSAPrivateKey):
        digest = hashes.SHA1() if hash_name == "sha1" else hashes.SHA256()
        signature = private_key.sign(data, padding.PKCS1v15(), digest)
    else:
        signature = private_key.sign(hashlib.sha256(data).digest())  # RFC 8463: ed25519 over the SHA-256
    return b"DKIM-Signature:" + value.encode() + base64.b64encode(signature) + tail.encode() + b"\r\n" + raw


def public_key_b64(private_key: PrivateKey) -> str:
    if isinstance(private_key, rsa.RSAPrivateKey):
        der = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()
    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()
