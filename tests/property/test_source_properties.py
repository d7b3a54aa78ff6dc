"""find_source: the client address comes from SES's own (topmost, trusted) Received header only."""

from __future__ import annotations

import ipaddress

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ipv6gate.mail.source import Source, Unknown, find_source
from tests.property import strategies as s

TRUSTED = s.TRUSTED
OTHER = ipaddress.IPv6Address("2001:db8:bad::1")


def first_received(headers: list[tuple[str, str]]) -> str | None:
    return next((v for n, v in headers if n.lower() == "received"), None)


@given(headers=s.junk_headers)
def test_never_raises(headers: list[tuple[str, str]]) -> None:
    assert isinstance(find_source(headers, TRUSTED), Source | Unknown)


@given(
    line=st.one_of(
        s.any_text,
        st.builds(lambda t, n: t * n, s.any_text, st.integers(1, 20_000)),
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    ),
    prefix=st.sampled_from(["", "from ", "from x (y [", "from x (y [IPv6:", "from x ([2001:db8::1]) by "]),
)
def test_junk_received_lines_never_crash(line: str, prefix: str) -> None:
    result = find_source([("Received", prefix + line)], TRUSTED)
    assert isinstance(result, Source | Unknown)


@given(headers=s.junk_headers, top=st.one_of(st.none(), s.clients.flatmap(s.ses_received), s.any_text))
def test_a_source_only_from_a_trusted_first_received(headers: list[tuple[str, str]], top: str | None) -> None:
    if top is not None:
        headers = [("Received", top), *headers]
    result = find_source(headers, TRUSTED)
    if isinstance(result, Source):
        first = first_received(headers)
        assert first is not None
        unfolded = " ".join(first.split()).lower()
        assert unfolded.startswith("from ") and f"by {result.receiver}" in unfolded
        assert result.receiver == TRUSTED[0]


@given(
    ip=s.clients,
    data=st.data(),
    lower=st.lists(st.one_of(s.forged_received(), st.tuples(st.just("Received"), s.any_text)), max_size=5),
    others=s.junk_headers,
)
def test_lower_received_headers_never_change_the_result(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
    data: st.DataObject,
    lower: list[tuple[str, str]],
    others: list[tuple[str, str]],
) -> None:
    others = [(n, v) for n, v in others if n.lower() != "received"]
    top = ("Received", data.draw(st.one_of(s.ses_received(ip), s.ses_received(ip, by="mx.evil.test"), s.any_text)))
    alone = find_source([top], TRUSTED)
    assert find_source([*others, top, *lower], TRUSTED) == alone
    assert find_source([top, *lower, *others], TRUSTED) == alone


@given(ip=s.clients, data=st.data())
def test_ses_header_in_any_form_gives_the_address(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, data: st.DataObject
) -> None:
    """``[addr]`` or ``[IPv6:addr]``, any case, folded anywhere: the address SES saw (mapped -> IPv4)."""
    header = data.draw(s.ses_received(ip))
    forged_below = ("Received", data.draw(s.ses_received(OTHER)))
    result = find_source([("Return-Path", "<a@good.test>"), ("Received", header), forged_below], TRUSTED)
    assert isinstance(result, Source), (header, result)
    assert result.ip == s.expected(ip)
    assert result.version == s.expected(ip).version


@given(ip=s.clients, data=st.data())
def test_untrusted_by_is_never_a_source(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, data: st.DataObject) -> None:
    by = data.draw(
        st.sampled_from(
            [
                "mx.evil.test",
                f"{s.RECEIVER}.evil.test",
                f"evil-{s.RECEIVER}",
                "inbound-smtp.eu-west-2.amazonaws.com",
                "[2001:db8::1]",
            ]
        )
    )
    assert isinstance(find_source([("Received", data.draw(s.ses_received(ip, by=by)))], TRUSTED), Unknown)


# One EHLO argument (an SMTP server splits it on SP only), or one PTR label (any octets), that reads like
# a second "(rdns [addr]) by <trusted>" if VT, FF, NBSP, U+2028 ... were taken for spaces.
# Regression test: str.split() and re's \s did exactly that until bb8bb0c/5834363.
EXOTIC = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\xa0", "\u2028", "\u3000"]


def injected_header(
    where: str, space: str, tag: str, forged: ipaddress.IPv6Address, real: ipaddress.IPv6Address
) -> str:
    if where == "helo":
        helo = space.join(["x", "(rdns", f"[{tag}{forged}])", "by", s.RECEIVER, "with", "SMTP"])
        return f"from {helo} (rdns [{real}]) by {s.RECEIVER} with SMTP id m for bob@tenant.test; date"
    rdns = space.join(["x", f"[{tag}{forged}])", "by", s.RECEIVER, "(y"])
    return f"from mail.sender.test ({rdns} [{real}]) by {s.RECEIVER} with SMTP id m for bob@tenant.test; date"


@example(where="helo", space="\x0b", tag="", forged=ipaddress.IPv6Address("2001:db8:1::25"), real=OTHER)
@example(where="rdns", space="\xa0", tag="", forged=ipaddress.IPv6Address("2001:db8:1::25"), real=OTHER)
@given(
    where=st.sampled_from(["helo", "rdns"]),
    space=st.sampled_from(EXOTIC),
    tag=st.sampled_from(["", "IPv6:"]),
    forged=s.ipv6,
    real=s.ipv6,
)
def test_the_sender_cannot_choose_the_checked_address(
    where: str, space: str, tag: str, forged: ipaddress.IPv6Address, real: ipaddress.IPv6Address
) -> None:
    result = find_source([("Received", injected_header(where, space, tag, forged, real))], TRUSTED)
    assert isinstance(result, Unknown) or result.ip == real


# If SES writes PTR names verbatim (undocumented), a reverse zone owner can put spaces in one: the
# gate anchors on SES's own "with SMTP id <messageId>", which no sender can know in advance.
@settings(max_examples=20)
@example(tag="", forged=ipaddress.IPv6Address("2001:db8:1::25"), real=OTHER)
@given(tag=st.sampled_from(["", "IPv6:"]), forged=s.ipv6, real=s.ipv6)
def test_a_ptr_name_with_spaces_cannot_choose_the_checked_address(
    tag: str, forged: ipaddress.IPv6Address, real: ipaddress.IPv6Address
) -> None:
    result = find_source([("Received", injected_header("rdns", " ", tag, forged, real))], TRUSTED, message_id="m")
    assert isinstance(result, Unknown) or result.ip == real


_ID = st.text(alphabet="0123456789abcdefghijklmnopqrstuvwxyzABCDEF", min_size=1, max_size=12)


@given(
    message_id=_ID,
    pieces=st.lists(
        st.one_of(
            _ID,
            st.sampled_from(["[2001:db8::1]) by ", "[IPv6:2001:db8::2]) by ", "inbound-smtp.eu-west-1.amazonaws.com"]),
            st.sampled_from([" with SMTP id ", " with ESMTP id ", " ", "\t", ";", "(", "[", "]"]),
            s.any_text,
        ),
        max_size=14,
    ),
)
@example(message_id="abc", pieces=["[1::1]) by h with S id abcd [2001:db8::1]) by h with S id ABC"])
def test_the_anchored_match_is_the_search_for_the_id_itself(message_id: str, pieces: list[str]) -> None:
    """The ID-anchored parse (one pattern, compiled once) finds what a pattern made for the ID would."""
    import re

    from ipv6gate.mail import source

    text = "".join(pieces)
    made = re.compile(source._ANCHOR.format(id=re.escape(message_id)), re.IGNORECASE)
    expected = next(made.finditer(text, 0), None)
    got = source._anchored(text, 0, message_id)
    found = (got.span(), got.group("ip", "by")) if got else None
    assert found == ((expected.span(), expected.group("ip", "by")) if expected else None)
