"""Recipient domains in one canonical form: lower-case A-labels (punycode), no trailing dot."""

from __future__ import annotations

import re

import dns.exception
import dns.name

_LDH = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class DomainError(ValueError):
    """Not a usable mail domain; the message says why."""


def normalize_domain(text: str) -> str:
    """``Bücher.Example.`` -> ``xn--bcher-kva.example``; ``DomainError`` for anything else."""
    raw = text.strip().rstrip(".")
    if not raw:
        raise DomainError("empty domain")
    try:
        name = dns.name.from_unicode(raw, origin=dns.name.root)
    except (dns.exception.DNSException, UnicodeError) as exc:
        # The library's sentence ("A DNS label is empty."), never its class name.
        why = str(exc).strip().rstrip(".") or "not encodable"
        raise DomainError(f"{raw[:80]!r} is not a domain name: {why[:1].lower()}{why[1:]}") from None
    ascii_form = name.to_text(omit_final_dot=True).lower()
    labels = ascii_form.split(".")
    if len(labels) < 2 or not all(_LDH.match(label) for label in labels):
        raise DomainError(f"{raw[:80]!r} is not a host-style domain (letters, digits, hyphens; two labels or more)")
    return ascii_form


def recipient_domain(address: str) -> str:
    """The canonical domain of an envelope recipient, e.g. ``"Ann"@Example.COM`` -> ``example.com``."""
    local, at, domain = address.strip().strip("<>").rpartition("@")
    if not at or not local:
        raise DomainError(f"{address[:80]!r} is not an address with a domain")
    return normalize_domain(domain)
