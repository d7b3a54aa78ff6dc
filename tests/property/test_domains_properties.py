"""recipient_domain / normalize_domain: one canonical A-label form, or DomainError, never anything else."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from ipv6gate.mail.domains import DomainError, normalize_domain, recipient_domain
from tests.property import strategies as s

LDH = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# Letters whose IDNA 2003 (Python's "idna" codec, the oracle) and IDNA 2008 forms agree.
U_LETTERS = "abcdefghijklmnopqrstuvwxyzäöüéèêëáàâíìîïóòôúùûñçåøæœłžščřďťňýÿąęğş"
u_labels = st.builds(
    lambda a, b, c: a + b + c,
    st.text(st.sampled_from(U_LETTERS), max_size=8),
    st.sampled_from(U_LETTERS[26:]),  # at least one non-ASCII letter
    st.text(st.sampled_from(U_LETTERS), max_size=8),
)
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
ascii_labels = st.builds(
    lambda first, middle, last: first + middle + last,
    st.sampled_from(_ALNUM),
    st.text(st.sampled_from(_ALNUM + "-"), max_size=30),
    st.sampled_from(_ALNUM) | st.just(""),
).filter(lambda t: t[2:4] != "--" and not t.endswith("-"))
tlds = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"), min_size=2, max_size=8)
domain_like = st.one_of(
    s.any_text,
    st.lists(st.one_of(ascii_labels, u_labels, s.any_text), min_size=1, max_size=5).map(".".join),
    st.lists(ascii_labels, min_size=1, max_size=200).map(".".join),
)


def canonical(result: str) -> None:
    assert result.isascii() and result == result.lower()
    labels = result.split(".")
    assert len(labels) >= 2 and len(result) <= 253
    assert all(LDH.fullmatch(label) and len(label) <= 63 for label in labels), result


@given(text=domain_like)
@example(text="a" * 64 + ".test")
@example(text="\\097bc.test")
@example(text="xn--.test")
def test_normalize_returns_canonical_form_or_domain_error(text: str) -> None:
    try:
        result = normalize_domain(text)
    except DomainError:
        return
    canonical(result)
    assert normalize_domain(result) == result  # idempotent


@given(address=st.one_of(s.recipient_addresses, st.builds("{}@{}".format, s.any_text, domain_like)))
def test_recipient_domain_returns_canonical_form_or_domain_error(address: str) -> None:
    try:
        result = recipient_domain(address)
    except DomainError:
        return
    canonical(result)
    assert recipient_domain(f"x@{result}") == result


@given(labels=st.lists(ascii_labels, min_size=2, max_size=5), mask=st.integers(0, 2**253))
def test_case_does_not_matter(labels: list[str], mask: int) -> None:
    domain = ".".join(labels)
    assume(len(domain) <= 253)
    flipped = "".join(c.upper() if mask >> i & 1 else c.lower() for i, c in enumerate(domain))
    assert normalize_domain(flipped) == normalize_domain(domain.lower()) == domain.lower()
    assert recipient_domain(f"Bob@{flipped}") == domain.lower()


@given(u=u_labels, tld=tlds, upper=st.booleans(), trailing_dot=st.booleans())
def test_u_labels_become_a_labels(u: str, tld: str, upper: bool, trailing_dot: bool) -> None:
    upper = upper and u.upper().lower() == u  # not for letters like dotless i, whose upper case is plain I
    written = f"{u.upper() if upper else u}.{tld}{'.' if trailing_dot else ''}"
    want = f"{u.encode('idna').decode('ascii')}.{tld.lower()}"
    assert normalize_domain(written) == want
    assert recipient_domain(f"someone@{written}") == want


@given(
    local=st.text(st.characters(codec="ascii", exclude_characters='"\\'), max_size=30),
    labels=st.lists(ascii_labels, min_size=2, max_size=3),
)
def test_quoted_local_parts_with_at_signs(local: str, labels: list[str]) -> None:
    domain = ".".join(labels)
    for address in (f'"{local}@evil.test"@{domain}', f'"@{local}@"@{domain}', f'<"{local}@x"@{domain}>'):
        assert recipient_domain(address) == domain.lower()


@given(n=st.integers(64, 300), tld=ascii_labels)
def test_overlong_labels_are_refused(n: int, tld: str) -> None:
    with pytest.raises(DomainError):
        normalize_domain("a" * n + "." + tld)


@given(labels=st.lists(st.just("a" * 63), min_size=4, max_size=8), extra=st.integers(0, 50))
def test_overlong_names_are_refused(labels: list[str], extra: int) -> None:
    name = ".".join(labels) + ".b" * extra
    if len(name) > 253:
        with pytest.raises(DomainError):
            normalize_domain(name)
