"""One test per RFC 6376 / RFC 8301 rule of ``checks.dkim_records``: the result it gives and the cause it names.

The same rules are checked end to end, signed and verified, against Mail::DKIM in
``tests/differential/test_mail_dkim.py``.
"""

from __future__ import annotations

import pytest

from ipv6gate.checks.dkim_records import (
    KeyRecord,
    Unusable,
    check_key_fits,
    parse_key_record,
    parse_signature,
    parse_tag_list,
)
from ipv6gate.checks.results import Result

NOW = 1_800_000_000
B64 = "AAAA"
BASE = {"v": "1", "a": "rsa-sha256", "d": "example.com", "s": "sel", "h": "from:to", "bh": B64, "b": B64}


def signature(**changes: str | None) -> str:
    tags = {**BASE, **changes}
    return "; ".join(f"{name}={value}" for name, value in tags.items() if value is not None)


def test_tag_list_syntax() -> None:
    assert parse_tag_list(" a = 1 ;\r\n b=x y ; ", "t") == {"a": "1", "b": "x y"}
    with pytest.raises(ValueError, match="repeats the tag a="):
        parse_tag_list("a=1; a=2", "t")
    with pytest.raises(ValueError, match="malformed tag"):
        parse_tag_list("a=1;; b=2", "t")
    with pytest.raises(ValueError, match="malformed tag"):
        parse_tag_list("1a=1", "t")
    with pytest.raises(ValueError, match="control character"):
        parse_tag_list("a=1\x00", "t")


def test_a_valid_signature_and_its_values() -> None:
    sig = parse_signature(signature(c="relaxed", i="jo=40e@Mail.Example.com", l="12", q="x/y:dns/txt"), now=NOW)
    assert (sig.key_type, sig.hash_name, sig.header_canon, sig.body_canon) == ("rsa", "sha256", "relaxed", "simple")
    assert sig.signed_fields == ("from", "to") and sig.length == 12
    assert sig.identity_domain == "mail.example.com"  # quoted-printable decoded, domain lowercased
    assert parse_signature(signature(z="From:a@b", zz="unknown"), now=NOW).domain == "example.com"


@pytest.mark.parametrize(
    "changes,result,cause",
    [
        ({"v": None}, Result.NEUTRAL, "required tag v= is missing"),
        ({"bh": None}, Result.NEUTRAL, "required tag bh= is missing"),
        ({"v": "2"}, Result.NEUTRAL, "v=2 is not 1"),
        ({"a": "rsa-sha1"}, Result.PERMERROR, "rsa-sha1 is not accepted (RFC 8301)"),
        ({"a": "rsa-sha512"}, Result.PERMERROR, "algorithm rsa-sha512 is not supported"),
        ({"d": "exa mple.com"}, Result.NEUTRAL, "is not a domain name"),
        ({"d": "x" * 64 + ".com"}, Result.NEUTRAL, "is not a domain name"),
        ({"s": ""}, Result.NEUTRAL, "is not a selector"),
        ({"c": "relaxed/fancy"}, Result.NEUTRAL, "not a known canonicalization"),
        ({"c": "relaxed/"}, Result.NEUTRAL, "not a known canonicalization"),
        ({"h": "to:subject"}, Result.NEUTRAL, "h= does not include From"),
        ({"q": "foo/bar"}, Result.NEUTRAL, "names no query method"),
        ({"i": "nobody"}, Result.NEUTRAL, "is not an identity"),
        ({"i": "a@example.com.evil.test"}, Result.NEUTRAL, "is not d=example.com or a subdomain"),
        ({"i": "a@notexample.com"}, Result.NEUTRAL, "is not d=example.com or a subdomain"),
        ({"l": "-1"}, Result.NEUTRAL, "l=-1 is not a decimal number"),
        ({"x": str(NOW - 1)}, Result.NEUTRAL, "signature expired"),
        ({"t": str(NOW - 10), "x": str(NOW - 20)}, Result.NEUTRAL, "x= is not later than t="),
        ({"b": "not base64!"}, Result.NEUTRAL, "b= is not valid base64"),
        ({"bh": "AAA"}, Result.NEUTRAL, "bh= is not valid base64"),
    ],
)
def test_signature_rules(changes: dict[str, str | None], result: Result, cause: str) -> None:
    with pytest.raises(Unusable) as caught:
        parse_signature(signature(**changes), now=NOW)
    assert caught.value.result is result and cause in caught.value.cause


def test_repeated_signature_tag() -> None:
    with pytest.raises(Unusable, match="repeats the tag d="):
        parse_signature(signature() + "; d=example.com", now=NOW)


def test_expiry_in_the_future_and_a_future_t_are_accepted() -> None:
    assert parse_signature(signature(t=str(NOW + 60), x=str(NOW + 120)), now=NOW).domain == "example.com"


def test_key_record_values() -> None:
    key = parse_key_record("v=DKIM1; k=ed25519; h=sha256:sha1; s=email:web; t=y:s:q; n=notes; zz=ignored; p=AAAA")
    assert key == KeyRecord("ed25519", b"\0\0\0", frozenset({"sha256", "sha1"}), testing=True, strict=True)
    assert parse_key_record("p=AAAA") == KeyRecord("rsa", b"\0\0\0", None, testing=False, strict=False)
    assert parse_key_record("s=*; p=AAAA").key_type == "rsa"


@pytest.mark.parametrize(
    "record,cause",
    [
        ("v=DKIM1; k=rsa; p=", "key revoked (empty p=)"),
        ("v=DKIM1; k=rsa", "p= is missing"),
        ("k=rsa; v=DKIM1; p=AAAA", "v= must be DKIM1 and the first tag"),
        ("v=DKIM2; p=AAAA", "v= must be DKIM1 and the first tag"),
        ("v=DKIM1; s=web:tlsrpt; p=AAAA", "key is not for email"),
        ("v=DKIM1; k=dsa; p=AAAA", "key type k=dsa is not supported"),
        ("v=DKIM1; p=AA!A", "p= is not valid base64"),
        ("v=DKIM1; k=rsa; k=rsa; p=AAAA", "repeats the tag k="),
        ("this is not a key", "malformed tag"),
    ],
)
def test_key_record_rules(record: str, cause: str) -> None:
    with pytest.raises(Unusable) as caught:
        parse_key_record(record)
    assert caught.value.result is Result.PERMERROR and cause in caught.value.cause


@pytest.mark.parametrize(
    "sig_changes,record,cause",
    [
        ({}, "k=ed25519; p=AAAA", "key type ed25519 does not match a=rsa-sha256"),
        ({"a": "ed25519-sha256"}, "k=rsa; p=AAAA", "key type rsa does not match a=ed25519-sha256"),
        ({}, "h=sha1; p=AAAA", "key does not allow sha256"),
        ({"i": "@mail.example.com"}, "t=s; p=AAAA", "key has t=s but i= domain mail.example.com"),
    ],
)
def test_signature_and_key_must_fit(sig_changes: dict[str, str], record: str, cause: str) -> None:
    with pytest.raises(Unusable) as caught:
        check_key_fits(parse_signature(signature(**sig_changes), now=NOW), parse_key_record(record))
    assert caught.value.result is Result.PERMERROR and cause in caught.value.cause


def test_fitting_signatures_and_keys() -> None:
    check_key_fits(parse_signature(signature(i="@Example.com"), now=NOW), parse_key_record("t=s; h=sha256; p=AAAA"))
    check_key_fits(parse_signature(signature(i="@mail.example.com"), now=NOW), parse_key_record("t=y; p=AAAA"))
