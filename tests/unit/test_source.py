import ipaddress

import pytest

from ipv6gate.mail.source import Source, Unknown, find_source, host_matches

TRUSTED = ("inbound-smtp.eu-west-1.amazonaws.com",)
SES = (
    "from mx.sender.test (mx.sender.test [{ip}]) by inbound-smtp.eu-west-1.amazonaws.com"
    " with SMTP id abc for a@b.test; Fri, 27 Nov 2026"
)


def headers(*received: str) -> list[tuple[str, str]]:
    return [("Return-Path", "<a@sender.test>"), *(("Received", r) for r in received), ("From", "a@sender.test")]


@pytest.mark.parametrize("literal", ["2001:db8::1", "IPv6:2001:db8::1", "ipv6:2001:DB8:0::1"])
def test_reads_ipv6_in_both_forms(literal: str) -> None:
    src = find_source(headers(SES.format(ip=literal)), TRUSTED)
    assert src == Source(ipaddress.IPv6Address("2001:db8::1"), "mx.sender.test", "inbound-smtp.eu-west-1.amazonaws.com")
    assert isinstance(src, Source) and src.version == 6


def test_ipv4_mapped_ipv6_is_ipv4() -> None:
    src = find_source(headers(SES.format(ip="::ffff:192.0.2.7")), TRUSTED)
    assert isinstance(src, Source)
    assert src.ip == ipaddress.IPv4Address("192.0.2.7") and src.version == 4


def test_only_the_topmost_received_counts_even_if_lower_one_is_trusted_looking() -> None:
    forged_top = "from evil (evil [2001:db8::666]) by mx.evil.test with SMTP id x"
    genuine_lower = SES.format(ip="2001:db8::1")
    src = find_source(headers(forged_top, genuine_lower), TRUSTED)
    assert isinstance(src, Unknown)
    assert "mx.evil.test" in src.reason


def test_lower_received_headers_are_never_read() -> None:
    top = SES.format(ip="2001:db8::1")
    forged = "from x (x [2001:db8::bad]) by inbound-smtp.eu-west-1.amazonaws.com with SMTP id y"
    src = find_source(headers(top, forged), TRUSTED)
    assert isinstance(src, Source) and str(src.ip) == "2001:db8::1"


def test_folded_header_is_unfolded() -> None:
    folded = (
        "from mx.sender.test (mx.sender.test\r\n\t[2001:db8::1])\r\n by inbound-smtp.eu-west-1.amazonaws.com with SMTP"
    )
    src = find_source(headers(folded), TRUSTED)
    assert isinstance(src, Source) and str(src.ip) == "2001:db8::1"


def test_empty_rdns_part_is_fine() -> None:
    src = find_source(
        headers("from helo.test ([2001:db8::9]) by inbound-smtp.eu-west-1.amazonaws.com with SMTP"), TRUSTED
    )
    assert isinstance(src, Source) and src.helo == "helo.test"


@pytest.mark.parametrize(
    ("hdrs", "fragment"),
    [
        ([("From", "a@b")], "no Received"),
        (headers("garbage"), "not in SES's format"),
        (headers(SES.format(ip="2001:db8::zz")), "not in SES's format"),
        (headers(SES.format(ip="999.1.1.1")), "no valid client address"),
    ],
)
def test_unknown_source_says_why(hdrs: list[tuple[str, str]], fragment: str) -> None:
    src = find_source(hdrs, TRUSTED)
    assert isinstance(src, Unknown) and fragment in src.reason


def test_wildcard_matches_exactly_one_label() -> None:
    assert host_matches("inbound-smtp.us-east-1.amazonaws.com", "inbound-smtp.*.amazonaws.com")
    assert not host_matches("inbound-smtp.evil.test.amazonaws.com", "inbound-smtp.*.amazonaws.com")
    assert not host_matches("inbound-smtp.us-east-1.amazonaws.com.evil.test", "inbound-smtp.*.amazonaws.com")
    assert host_matches("INBOUND-SMTP.EU-WEST-1.AMAZONAWS.COM", "inbound-smtp.eu-west-1.amazonaws.com")


@pytest.mark.parametrize(
    ("helo", "rdns"),
    [
        ("a(b[2001:db8::bad])", "mx.sender.test"),  # brackets and parentheses in the HELO
        ("[IPv6:2001:db8::bad]", "[IPv6:2001:db8::bad]"),  # a literal HELO, echoed where rDNS goes
        ("mx.sender.test", "evil(x[2001:db8::bad]).test"),  # a PTR name with brackets in it
        ("mx.sender.test", "unknown"),
        ("mx.sender.test", ""),
    ],
)
def test_sender_chosen_helo_or_ptr_cannot_break_or_steer_the_parse(helo: str, rdns: str) -> None:
    header = f"from {helo} ({rdns} [2001:db8::1]) by inbound-smtp.eu-west-1.amazonaws.com with SMTP id x"
    src = find_source(headers(header), TRUSTED)
    assert isinstance(src, Source) and str(src.ip) == "2001:db8::1" and src.helo == helo


def test_a_ptr_name_or_helo_with_spaces_cannot_imitate_ses_when_the_message_id_is_known() -> None:
    fake = "[2001:db8::bad]) by inbound-smtp.eu-west-1.amazonaws.com with SMTP id guess"
    for header in (
        f"from mx.sender.test (x {fake} (y [2001:db8::1]) by inbound-smtp.eu-west-1.amazonaws.com with SMTP id m-1 "
        "for a@b.test",
        f"from x{fake} (mx [2001:db8::1]) by inbound-smtp.eu-west-1.amazonaws.com with SMTP id m-1",
    ):
        src = find_source(headers(header), TRUSTED, message_id="m-1")
        assert isinstance(src, Source) and str(src.ip) == "2001:db8::1"
    # Without the ID (or when SES's header lacks it) the first "[ip]) by" is taken.
    src = find_source(headers(f"from mx (x {fake} (y [2001:db8::1]) by h with SMTP id m-1"), TRUSTED)
    assert isinstance(src, Source) and str(src.ip) == "2001:db8::bad"
