"""Hypothesis strategies for what a sender controls: headers, HELO, MAIL FROM, recipients, messages."""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from hypothesis import strategies as st

from devstack import ses, world
from devstack.hostile_zones import BOOM_IP

RECEIVER = world.RECEIVER
TRUSTED = (RECEIVER,)
LONG_DOMAIN = ".".join(["d" * 60] * 5)  # 304 octets, over DNS's 255

# Text as hostile as JSON can carry: any code point, lone surrogates and NUL included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=60) | st.sampled_from(
    ["", "\x00", "\ud800", "\udfff", "\r\n", "\r\n ", "é" * 300, "a" * 5000]
)

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
ldh_label = st.builds(
    lambda first, middle, last: first + middle + last if middle or last else first,
    st.sampled_from(_ALNUM),
    st.text(st.sampled_from(_ALNUM + "-"), max_size=20),
    st.text(st.sampled_from(_ALNUM), max_size=1),
).filter(lambda label: not label.endswith("-"))
hostnames = st.lists(ldh_label, min_size=2, max_size=4).map(".".join)

# Whitespace a header writer may fold or stretch: RFC 5322 folding is CRLF followed by WSP.
fws = st.sampled_from([" ", "  ", "\t", " \t", "\r\n ", "\r\n\t", " \r\n  "])

ipv6 = st.one_of(
    st.sampled_from(
        [world.GOOD_IP, world.NO_PTR_IP, world.MISMATCH_IP, world.NUMERIC_PTR_IP, world.OTHER_IP, BOOM_IP]
    ).map(ipaddress.IPv6Address),
    st.ip_addresses(v=6),
)
ipv4 = st.ip_addresses(v=4)
clients: st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address] = st.one_of(
    ipv6, ipv4, ipv4.map(lambda a: ipaddress.IPv6Address(f"::ffff:{a}"))
)


@st.composite
def ip_literal(draw: st.DrawFn, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """``ip`` as a Received header might write it inside the brackets."""
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    text = draw(st.sampled_from([ip.compressed, ip.exploded]))
    if ip.ipv4_mapped is not None and draw(st.booleans()):
        text = f"::ffff:{ip.ipv4_mapped}"
    text = draw(st.sampled_from([text, text.upper(), text.lower()]))
    tag = draw(st.sampled_from(["", "IPv6:", "ipv6:", "IPV6:", "Ipv6:"]))
    return tag + text


def expected(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


plain_helos = st.one_of(
    hostnames,
    st.sampled_from(["mail.good.test", "[2001:db8::1]", "[IPv6:2001:db8::1]", "[192.0.2.1]", "localhost", "x" * 300]),
)


@st.composite
def ses_received(
    draw: st.DrawFn,
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
    helo: str | None = None,
    by: str = RECEIVER,
) -> str:
    """SES's own Received header for a client at ``ip``, folded and cased in any way a writer may."""
    helo = helo if helo is not None else draw(plain_helos)
    rdns = draw(st.sampled_from(["", "unknown", "mail.good.test", helo if "(" not in helo else "x"]))
    rdns_part = f"{rdns}{draw(fws)}" if rdns else ""
    words = [
        draw(st.sampled_from(["from", "FROM", "From"])),
        helo,
        f"({rdns_part}[{draw(ip_literal(ip))}])",
        draw(st.sampled_from(["by", "BY"])),
        draw(st.sampled_from([by, by.upper(), by + "."])),
        "with SMTP id o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1",
        "for bob@tenant.test;",
        "Fri, 27 Nov 2026 12:00:00 +0000 (UTC)",
    ]
    return words[0] + "".join(draw(fws) + w for w in words[1:])


header_names = st.sampled_from(
    ["Received", "received", "RECEIVED", "From", "To", "Subject", "DKIM-Signature", "Authentication-Results"]
) | st.text(min_size=0, max_size=20)
junk_headers = st.lists(st.tuples(header_names, any_text), max_size=8)


@st.composite
def forged_received(draw: st.DrawFn) -> tuple[str, str]:
    """A lower Received header written by the sender, often exactly in SES's shape with another address."""
    ip = draw(clients)
    value = draw(st.one_of(ses_received(ip), any_text))
    return (draw(st.sampled_from(["Received", "received", "RECEIVED"])), value)


forgeries = st.lists(
    st.one_of(
        forged_received(),
        st.tuples(
            st.just("Authentication-Results"),
            st.sampled_from(
                [
                    f"{RECEIVER}; spf=pass smtp.mailfrom=good.test; dkim=pass header.d=good.test; iprev=pass",
                    f'{RECEIVER}; iprev=pass policy.iprev="{world.GOOD_IP}"',
                ]
            ),
        ),
        st.tuples(
            st.just("Received-SPF"),
            st.sampled_from(
                [f"pass (domain of good.test designates {world.GOOD_IP}) client-ip={world.GOOD_IP};", "pass"]
            ),
        ),
        st.tuples(st.sampled_from(["X-SES-Spam-Verdict", "X-SES-Virus-Verdict", "X-SES-RECEIPT"]), any_text),
    ),
    max_size=4,
)

dkim_garbage = st.tuples(
    st.sampled_from(["DKIM-Signature", "dkim-signature"]),
    st.one_of(
        any_text,
        st.builds(
            "v=1; a={}; d={}; s={}; h=from; bh={}; b={}".format,
            st.sampled_from(["rsa-sha256", "ed25519-sha256", "rsa-sha1", ""]),
            st.sampled_from(["good.test", "", "a..b", LONG_DOMAIN, "ü.test", "[1.2.3.4]"]),
            st.sampled_from(["rsa", "", "x" * 70, "%{l}"]),
            st.sampled_from(["47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "!!"]),
            st.sampled_from(["AAAA", "", "===="]),
        ),
    ),
)

mail_froms = st.one_of(
    st.sampled_from(
        [
            "",
            "<>",
            "alice@good.test",
            "alice@other.test",
            "alice@softfail.test",
            "alice@v4only.test",
            "alice@boom.test",
            "alice@deep.boom.test",
            "alice@wide.boom.test",
            "alice@macro.boom.test",
            "alice@" + LONG_DOMAIN,
            "alice@" + "a" * 64 + ".test",
            "x" * 3000 + "@good.test",
            "ålice@bücher.test",
            '"a@b"@good.test',
            "alice@good.test.",
            "alice",
            "@",
        ]
    ),
    st.emails(),
    st.builds("{}@{}".format, any_text, st.one_of(hostnames, any_text)),
    any_text,
)

recipient_addresses = st.one_of(
    st.sampled_from(
        [
            "bob@tenant.test",
            "Bob@TENANT.Test",
            "carol@optout.test",
            "dave@watch.test",
            "erin@bücher.test",
            "fay@nobody.test",
            '"a@b"@tenant.test',
            "<ivy@tenant.test>",
            "bob@" + LONG_DOMAIN,
            "bob@[192.0.2.1]",
            "no-at-sign",
        ]
    ),
    st.emails(),
    any_text,
)
recipient_lists = st.lists(recipient_addresses, min_size=0, max_size=6)


# An SES receipt event (RequestResponse) with exactly the given header list (keyword arguments of
# devstack.ses.ses_event: headers, mail_from, recipients, message_id, truncated).
ses_event = functools.partial(
    ses.ses_event, processing_ms=None, verdicts={"spf": "PASS", "dkim": "PASS"}, action=ses.lambda_action("arn:x")
)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | any_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(any_text, children, max_size=5),
    max_leaves=30,
)
