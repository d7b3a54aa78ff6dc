"""Seeded generators of hostile SES receipt events and raw messages, for ``fuzz/soak.py``.

Every case knows what SES saw (``expected_ip``, when the topmost Received header is SES's own and
parses), and, when it carries sender-written forgeries that must not matter (lower Received headers,
Authentication-Results, Received-SPF, X-SES-* look-alikes), the same event without them.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dkim

from devstack import ses, world
from devstack.hostile_zones import BOOM_IP

RECEIVER = world.RECEIVER
# Trusted by every gate the soak runs (each gate's TRUSTED_RECEIVERS covers these).
TRUSTED_BY = (RECEIVER, RECEIVER.upper(), RECEIVER + ".", "Inbound-SMTP.EU-West-1.AmazonAWS.com")
# Trusted by none of them.
UNTRUSTED_BY = (
    "mx.evil.test",
    RECEIVER + ".evil.test",
    "inbound-smtp.eu-west-1.amazonaws.co",
    "inbound-smtp.a.b.amazonaws.com",
    "evil-inbound-smtp.eu-west-1.amazonaws.com",
    "inbound-smtp.eu-west-1.amazonaws.com)",
    "[2001:db8::1]",
)
# Whitespace an SMTP server does not split an EHLO argument on, but Python's str.split() and re's \s do.
EXOTIC_SPACE = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\xa0", "\u2028", "\u3000", "\u2003")

WORLD_V6 = (
    world.GOOD_IP,
    world.NO_PTR_IP,
    world.MISMATCH_IP,
    world.NUMERIC_PTR_IP,
    world.PTR_TIMEOUT_IP,
    world.OTHER_IP,
    BOOM_IP,
)
SENDER_DOMAINS = (
    "good.test",
    "other.test",
    "noptr.test",
    "softfail.test",
    "nospf.test",
    "nomatch.test",
    "v4only.test",
    "gone.v4only.test",
    "boom.test",
    "deep.boom.test",
    "wide.boom.test",
    "loop.boom.test",
    "redir.boom.test",
    "cname.boom.test",
    "two.boom.test",
    "void.boom.test",
    "macro.boom.test",
    "big.boom.test",
    "dk.test",
    "nowhere.test",
    "Good.TEST",
    "bücher.test",
)
RECIPIENTS = (
    "bob@tenant.test",
    "Bob@TENANT.test",
    "carol@optout.test",
    "dave@watch.test",
    "erin@partner.test",
    "fay@xn--bcher-kva.test",
    "gus@bücher.test",
    "hal@nobody.test",
    '"a@b"@tenant.test',
    "<ivy@tenant.test>",
    "no-at-sign",
    "@tenant.test",
    "bob@[192.0.2.1]",
    "bob@tenant.test.",
    "",
    "bob@" + "x" * 70 + ".test",
    "bob@" + ".".join(["a" * 63] * 5),
    "\x00@tenant.test",
    "bob@tenant..test",
    "bob@-tenant.test",
)
LONG_DOMAIN = ".".join(["d" * 60] * 5)  # 304 octets: dnspython's NameTooLong in plain pyspf/dkimpy
FORGERY_HEADERS = ("Authentication-Results", "Received-SPF", "X-SES-Spam-Verdict", "X-SES-RECEIPT", "ARC-Seal")
# The soak's receipt events: exactly the headers given, all of SES's verdicts PASS.
ses_event = functools.partial(ses.ses_event, common_headers={"messageId": "<x@y>"})


@dataclass
class Case:
    kind: str
    event: Any
    raw: bytes | None = None  # stored under the messageId when not None
    expected_ip: str | None = None  # what SES saw, when the topmost Received is SES's own and trusted
    check_source: bool = True  # False when SES's own Received header was left out (SES always writes one)
    strict_parse: bool = False  # the Received header is plain enough that it must parse
    injected: str = ""  # the kind of HELO injection, when the HELO forges a second address
    clean_event: Any = None  # the same event without sender-written forgeries
    tags: list[str] = field(default_factory=list)


class CaseFactory:
    """Deterministic given the seed: ``make()`` returns the next case."""

    def __init__(self, rng: random.Random, keys: world.Keys) -> None:
        self.rng = rng
        self.keys = keys
        self.signed = self._sign_pool()
        self.thousand = self._thousand_signatures()
        self.counter = 0

    # -- messages -------------------------------------------------------------------------------------------------

    def _sign_pool(self) -> list[tuple[str, bytes]]:
        keys = self.keys
        base = world.message()
        pool = [
            ("rsa-good", world.sign(base, keys)),
            ("ed25519-good", world.sign(base, keys, selector="ed", algorithm="ed25519")),
            ("rsa-sha1", world.sign(base, keys, algorithm="rsa-sha1")),
            ("small-key", world.sign(base, keys, selector="small")),
            ("slow-key", world.sign(base, keys, selector="slow")),
            ("missing-key", world.sign(base, keys, selector="missing")),
            ("other-domain", world.sign(base, keys, domain="other.test")),
        ]
        for selector in (
            "rsa",
            "alias",
            "strict",
            "sha1only",
            "huge",
            "two",
            "revoked",
            "garbage",
            "nokey",
            "unknown",
            "binary",
            "loop",
            "slow",
        ):
            pool.append((f"dk-{selector}", world.sign(base, keys, domain="dk.test", selector=selector)))
        with_l = dkim.sign(base, b"rsa", b"good.test", keys.rsa_pem, length=True, include_headers=[b"from", b"to"])
        pool.append(("l-tag", with_l + base))
        pool.append(("l-tag-appended", with_l + base + b"\r\nappended by a list\r\n"))
        # A valid signature under a broken one, and the reverse.
        pool.append(("missing-then-good", world.sign(world.sign(base, keys), keys, selector="missing")))
        return pool

    def _thousand_signatures(self) -> bytes:
        lines = []
        for i in range(1000):
            lines.append(
                f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=s{i}.dk.test; s=rsa; h=from:to; "
                f"bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA{i % 10}AAA"
            )
        return ("\r\n".join(lines) + "\r\n").encode()

    def raw_message(self) -> tuple[str, bytes]:
        rng = self.rng
        kind, raw = rng.choice(self.signed)
        roll = rng.random()
        if roll < 0.45:
            return kind, raw
        mutations: list[tuple[str, Callable[[bytes], bytes]]] = [
            ("tampered-body", lambda r: r.replace(b"Hi.", b"Ho.")),
            ("tampered-subject", lambda r: r.replace(b"Subject: hello", b"Subject: HELLO")),
            ("thousand-sigs", lambda r: self.thousand + r),
            ("thousand-sigs-below", lambda r: r.replace(b"\r\n\r\n", b"\r\n" + self.thousand + b"\r\n", 1)),
            ("long-d", lambda r: self._sig(d=LONG_DOMAIN.encode()) + r),
            ("long-d-unicode", lambda r: self._sig(d=("ü" * 200 + ".test").encode()) + r),
            ("junk-sig", lambda r: self._junk_sig() + r),
            ("huge-header", lambda r: b"X-Huge: " + b"a" * rng.choice((998, 70_000, 600_000)) + b"\r\n" + r),
            ("nul", lambda r: self._sprinkle(r, b"\x00")),
            ("non-utf8", lambda r: self._sprinkle(r, rng.choice((b"\xff\xfe", b"\xc3\x28", b"\xe2\x82", b"\x80")))),
            ("bare-lf", lambda r: r.replace(b"\r\n", b"\n")),
            ("bare-cr", lambda r: r.replace(b"\r\n", b"\r")),
            ("no-body", lambda r: r.split(b"\r\n\r\n", 1)[0]),
            ("colonless-line", lambda r: b"this line has no colon\r\n" + r),
            ("leading-continuation", lambda r: b" continued\r\n" + r),
            ("truncated", lambda r: r[: rng.randrange(len(r) + 1)]),
            ("random-bytes", lambda r: rng.randbytes(rng.randrange(1, 4000))),
            ("empty", lambda r: b""),
            ("mime-bomb", lambda r: r + self._mime_bomb()),
            ("big-body", lambda r: r + b"x" * 76 + b"\r\n" * rng.choice((1, 20_000))),
            ("header-8bit-name", lambda r: b"X-\xff\xfe: v\r\n" + r),
            ("dup-tags", lambda r: b"DKIM-Signature: v=1; v=1; d=good.test; d=evil.test\r\n" + r),
        ]
        name, mutate = rng.choice(mutations)
        out = mutate(raw)
        if roll > 0.9:  # stack a second mutation
            name2, mutate2 = rng.choice(mutations)
            out, name = mutate2(out), f"{name}+{name2}"
        return f"{kind}/{name}", out

    def _sig(self, *, d: bytes, s: bytes = b"rsa", extra: bytes = b"") -> bytes:
        return (
            b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=" + d + b"; s=" + s + b"; h=from:to; "
            b"bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; " + extra + b"b=AAAA\r\n"
        )

    def _junk_sig(self) -> bytes:
        rng = self.rng
        tags = [
            b"v=1",
            b"a=" + rng.choice((b"rsa-sha256", b"ed25519-sha256", b"rsa-sha1", b"", b"x" * 300)),
            b"d="
            + rng.choice(
                (b"good.test", b"", b".", b"a..b", b"[1.2.3.4]", b"\xff.test", b"good.test.", LONG_DOMAIN.encode())
            ),
            b"s=" + rng.choice((b"rsa", b"", b"a.b.c", b"\x00", b"x" * 70, b"%{l}")),
            b"h=" + rng.choice((b"from", b"", b":::", b"from:" * 500)),
            b"bh=" + rng.choice((b"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", b"!!", b"")),
            b"b=" + rng.choice((b"AAAA", b"", b"====", b"A" * 4000)),
            b"l=" + rng.choice((b"", b"0", b"9" * 76, b"-1", b"x")),
            b"t=" + rng.choice((b"9999999999", b"0", b"")),
            b"x=" + rng.choice((b"1", b"", b"99999999999")),
            b"i=" + rng.choice((b"@good.test", b"good.test", b"x@evil.test", b"")),
            b"c=" + rng.choice((b"relaxed/relaxed", b"simple", b"bogus/bogus", b"")),
            b"q=" + rng.choice((b"dns/txt", b"http")),
        ]
        rng.shuffle(tags)
        kept = tags[: rng.randrange(len(tags) + 1)]
        return b"DKIM-Signature: " + b"; ".join(kept) + b"\r\n"

    def _sprinkle(self, raw: bytes, junk: bytes) -> bytes:
        if not raw:
            return junk
        at = self.rng.randrange(len(raw))
        return raw[:at] + junk + raw[at:]

    def _mime_bomb(self) -> bytes:
        depth = self.rng.choice((3, 50, 400))
        parts = [f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth)]
        return "".join(parts).encode() + b"--b0--\r\n--\r\n"

    # -- SES event pieces -----------------------------------------------------------------------------------------

    def client(self) -> tuple[str, str]:
        """(literal as SES might write it, canonical expected address)."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.45:
            ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(rng.choice(WORLD_V6))
        elif roll < 0.65:
            ip = ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(96))
        elif roll < 0.72:
            ip = ipaddress.IPv6Address(rng.getrandbits(128))
        elif roll < 0.78:
            ip = ipaddress.IPv6Address(
                rng.choice(("::1", "::", "fe80::1", "ff02::1", "::102:304", "64:ff9b::c000:201"))
            )
        elif roll < 0.88:
            v4 = ipaddress.IPv4Address(
                rng.choice((world.V4_IP, "192.0.2.1")) if rng.random() < 0.5 else rng.getrandbits(32)
            )
            form = rng.choice(("v4", "mapped", "mapped-hex", "mapped-upper"))
            if form == "v4":
                return str(v4), str(v4)
            mapped = ipaddress.IPv6Address(f"::ffff:{v4}")
            text = {"mapped": f"::ffff:{v4}", "mapped-hex": mapped.compressed, "mapped-upper": f"::FFFF:{v4}"}[form]
            return text, str(v4)
        else:
            ip = ipaddress.ip_address(world.GOOD_IP)
        assert isinstance(ip, ipaddress.IPv6Address)
        forms = [ip.compressed, ip.exploded, ip.compressed.upper(), ip.exploded.upper()]
        if ip.packed[:12] != b"\x00" * 10 + b"\xff\xff" and rng.random() < 0.1:
            forms.append(ip.exploded[:30] + str(ipaddress.IPv4Address(ip.packed[12:])))  # mixed notation
        text = rng.choice(forms)
        expected = ip.ipv4_mapped or ip
        return text, str(expected)

    def helo(self) -> str:
        rng = self.rng
        return rng.choice(
            (
                "mail.good.test",
                "mail.good.test",
                "mx.sender.test",
                "[2001:db8::1]",
                "[IPv6:2001:db8::1]",
                "[192.0.2.1]",
                "localhost",
                "x" * 300,
                LONG_DOMAIN,
                "bücher.test",
                "%{l}.evil.test",
                "h.boom.test",
                "a..b",
                "-",
                ".",
                "\x00",
                "a\\b",
            )
        )

    def received(
        self, helo: str, literal: str, by: str, mid: str, rcpt: str, *, rdns: str | None = None
    ) -> tuple[str, bool]:
        """SES's Received header; the bool says whether it is plain enough that it must parse."""
        rng = self.rng
        tag = rng.choice(("", "", "IPv6:", "ipv6:", "IPV6:")) if ":" in literal else ""
        if rdns is None:
            rdns = rng.choice(("", helo if "(" not in helo else "x", "unknown", "mail.good.test", "a b c", "x)(y"))
        text = ses.received_header(helo=helo, ip=literal, ip_form=tag, rdns=rdns, by=by, message_id=mid, recipient=rcpt)
        plain = bool(helo) and all(c.isascii() and c.isprintable() and c not in " ()[]" for c in helo)
        if rng.random() < 0.3:  # fold and stretch the whitespace as a header writer may
            words = text.split(" ")
            text = words[0] + "".join(
                rng.choice((" ", "  ", "\t", "\r\n ", "\r\n\t", " \r\n  ")) + w for w in words[1:]
            )
        return text, plain

    def injection(self, forged: str) -> tuple[str, str, str]:
        """A one-token EHLO argument, or a PTR name, that reads as ``x ([forged]) by <trusted>`` once unfolded.

        Returns (helo, rdns, kind); the one not injected is plain.
        """
        rng = self.rng
        space = rng.choice((*EXOTIC_SPACE, " "))
        tag = rng.choice(("", "IPv6:"))
        kind = "space" if space == " " else f"U+{ord(space):04X}"
        if rng.random() < 0.4:  # a PTR label may hold any octet (0x20 too), if SES writes it verbatim
            rdns = space.join(("x", f"[{tag}{forged}])", "by", RECEIVER, "(y"))
            return "mail.sender.test", rdns, f"ptr/{kind}"
        helo = space.join(("x", "(rdns", f"[{tag}{forged}])", "by", RECEIVER, "with", "SMTP"))
        return helo, "", f"helo/{kind}"

    def mail_from(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.55:
            return f"{rng.choice(('alice', 'a.b', 'bounce+x=y', 'Alice'))}@{rng.choice(SENDER_DOMAINS)}"
        return rng.choice(
            (
                "",
                "<>",
                " ",
                "<alice@good.test>",
                "alice@" + LONG_DOMAIN,
                "x" * 5000 + "@good.test",
                "alice@" + "a" * 64 + ".test",
                "ålice@good.test",
                "alice@good.test.",
                "alice",
                "a@b@good.test",
                '"a@b c"@good.test',
                "alice@good.test\x00evil",
                "\ud800@good.test",
                "%{l}@macro.boom.test",
                "alice@[2001:db8::1]",
                "alice@" + "é" * 300 + ".test",
                "postmaster@",
            )
        )

    def recipients(self) -> list[str]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.02:
            return []
        if roll < 0.03:
            return [f"u{i}@tenant.test" for i in range(rng.choice((100, 150)))]
        n = rng.choice((1, 1, 1, 2, 3, 5))
        picks = [rng.choice(RECIPIENTS[:6]) if rng.random() < 0.7 else rng.choice(RECIPIENTS) for _ in range(n)]
        if rng.random() < 0.05:
            picks.append(picks[0])  # a duplicate
        return picks

    def message_headers(self, raw: bytes) -> list[tuple[str, str]]:
        """The header list SES would show for ``raw``: unfolded, decoded leniently."""
        head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
        out: list[tuple[str, str]] = []
        for line in head.split(b"\n"):
            if line[:1] in (b" ", b"\t") and out:
                name, value = out[-1]
                out[-1] = (name, value + " " + line.strip().decode("utf-8", "replace"))
            elif b":" in line:
                name_b, value_b = line.split(b":", 1)
                out.append((name_b.decode("utf-8", "replace"), value_b.strip().decode("utf-8", "replace")))
        return out

    # -- events ---------------------------------------------------------------------------------------------------

    def make(self) -> Case:
        self.counter += 1
        rng = self.rng
        mid = f"soak{self.counter:08d}{rng.getrandbits(64):016x}"
        literal, expected = self.client()
        helo, rdns, injected = self.helo(), None, ""
        if rng.random() < 0.02:
            forged = rng.choice((world.GOOD_IP, world.OTHER_IP, "2001:db8:1::99"))
            helo, rdns, injected = self.injection(forged)
        mail_from = self.mail_from()
        rcpts = self.recipients()
        trusted = rng.random() < 0.9
        by = rng.choice(TRUSTED_BY if trusted else UNTRUSTED_BY)
        received, plain = self.received(helo, literal, by, mid, rcpts[0] if rcpts else "x@tenant.test", rdns=rdns)
        kind = "plain"
        raw: bytes | None = None
        msg_headers: list[tuple[str, str]]
        if rng.random() < 0.45:
            kind, raw = self.raw_message()
            msg_headers = self.message_headers(raw)
            kind = "dkim:" + kind
        else:
            msg_headers = [("From", f"<{mail_from}>"), ("To", rcpts[0] if rcpts else ""), ("Subject", "hello")]
        forgeries = self.forgeries(literal) if rng.random() < 0.15 else []
        with_received = rng.random() < 0.97
        if not with_received:
            by, trusted = "", False  # no SES header: a lower, sender-written one is then topmost
        top = ses.ses_headers(mail_from=mail_from, received=received if with_received else None)
        bounce_headers = [rng.choice(BOUNCE_HEADERS)] if rng.random() < 0.05 else []
        headers, truncated = self.truncate(top + forgeries + bounce_headers + msg_headers)
        event = ses_event(headers=headers, mail_from=mail_from, recipients=rcpts, message_id=mid, truncated=truncated)
        case = Case(kind, event, raw, strict_parse=trusted and plain and not injected, injected=injected)
        if trusted and by:
            case.expected_ip = expected
        case.check_source = bool(by)
        if forgeries:
            clean = top + bounce_headers + msg_headers
            case.clean_event = ses_event(
                headers=clean, mail_from=mail_from, recipients=rcpts, message_id=mid, truncated=truncated
            )
            case.tags.append("forged")
        if raw is not None and rng.random() < 0.08:
            case.raw = None  # the S3 object is missing
            case.tags.append("no-object")
        if rng.random() < 0.05:
            return self.malformed(case)
        return case

    def truncate(self, headers: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], bool]:
        """SES cuts the header list at about 10 KB (and says so); sometimes a list is passed whole."""
        if self.rng.random() < 0.5 or sum(len(n) + len(v) for n, v in headers) <= 10_240:
            return headers, False
        keep, size = [], 0
        for n, v in headers:
            size += len(n) + len(v)
            if size > 10_240:
                break
            keep.append((n, v))
        return keep, True

    def forgeries(self, literal: str) -> list[tuple[str, str]]:
        rng = self.rng
        forged_ip = rng.choice((world.GOOD_IP, world.OTHER_IP, "192.0.2.25"))
        pool = [
            ("Received", f"from mail.good.test (mail.good.test [{forged_ip}]) by {RECEIVER} with SMTP id x"),
            ("Received", f"from mail.good.test (mail.good.test [IPv6:{forged_ip}]) by {RECEIVER}"),
            ("Received", "garbage"),
            (
                "Authentication-Results",
                f"{RECEIVER}; spf=pass smtp.mailfrom=good.test; dkim=pass header.d=good.test; "
                f'iprev=pass policy.iprev="{forged_ip}"',
            ),
            ("Received-SPF", f"pass (spf: domain of good.test designates {forged_ip}) client-ip={forged_ip}; helo=x;"),
            ("X-SES-Spam-Verdict", "PASS"),
            ("X-SES-RECEIPT", "AEFBQUFBQUFBQUFBQUFB"),
            ("ARC-Seal", "i=1; a=rsa-sha256; cv=none; d=good.test; s=rsa; b=AAAA"),
            ("X-Originating-IP", f"[{literal}]"),
        ]
        return rng.sample(pool, rng.randrange(1, 4))

    def malformed(self, case: Case) -> Case:
        """Break the event's structure (or just its types) in one place."""
        rng = self.rng
        event = copy.deepcopy(case.event)
        ses = event["Records"][0]["ses"]
        mutations: list[tuple[str, Callable[[], Any]]] = [
            ("top-list", lambda: [event]),
            ("top-none", lambda: None),
            ("top-str", lambda: "Records"),
            ("no-records", lambda: {"records": event["Records"]}),
            ("records-empty", lambda: {"Records": []}),
            ("records-dict", lambda: {"Records": {"0": event["Records"][0]}}),
            ("record-none", lambda: {"Records": [None]}),
            ("no-ses", lambda: {"Records": [{"eventSource": "aws:ses"}]}),
            ("mail-list", lambda: _set(event, ses, "mail", [])),
            ("receipt-none", lambda: _set(event, ses, "receipt", None)),
            ("headers-none", lambda: _set(event, ses["mail"], "headers", None)),
            ("header-no-value", lambda: _set(event, ses["mail"], "headers", [{"name": "Received"}])),
            ("header-int", lambda: _set(event, ses["mail"], "headers", [{"name": "Received", "value": 7}])),
            ("header-str", lambda: _set(event, ses["mail"], "headers", ["Received: x"])),
            ("recipients-str", lambda: _set(event, ses["receipt"], "recipients", "bob@tenant.test")),
            ("recipients-int", lambda: _set(event, ses["receipt"], "recipients", [1, 2])),
            ("recipients-none", lambda: _drop(event, ses["receipt"], "recipients")),
            ("message-id-int", lambda: _set(event, ses["mail"], "messageId", 12345)),
            ("message-id-missing", lambda: _drop(event, ses["mail"], "messageId")),
            ("source-none", lambda: _set(event, ses["mail"], "source", None)),
            ("timestamp-bad", lambda: _set(event, ses["mail"], "timestamp", "yesterday")),
            ("timestamp-int", lambda: _set(event, ses["mail"], "timestamp", 1700000000)),
            ("truncated-str", lambda: _set(event, ses["mail"], "headersTruncated", "false")),
            ("extra-keys", lambda: _set(event, ses, "surprise", {"x": [1, 2, 3]})),
            ("huge-header-list", lambda: _set(event, ses["mail"], "headers", ses["mail"]["headers"] * 500)),
            (
                "huge-recipients",
                lambda: _set(event, ses["receipt"], "recipients", [f"x{i}@tenant.test" for i in range(2000)]),
            ),
            ("message-id-huge", lambda: _set(event, ses["mail"], "messageId", "m" * 100_000)),
            ("message-id-unicode", lambda: _set(event, ses["mail"], "messageId", "ü\x00\ud800/../x")),
        ]
        name, mutate = rng.choice(mutations)
        return Case(f"malformed:{name}", mutate(), case.raw, case.expected_ip, False, False, "", None, ["malformed"])


BOUNCE_HEADERS = (
    ("Auto-Submitted", "auto-replied"),
    ("Precedence", "bulk"),
    ("Content-Type", 'multipart/report; report-type="delivery-status"; boundary=x'),
    ("Content-Type", "multipart/report; " + "x" * 5000),
)


def _set(event: Any, obj: dict[str, Any], key: str, value: Any) -> Any:
    obj[key] = value
    return event


def _drop(event: Any, obj: dict[str, Any], key: str) -> Any:
    obj.pop(key, None)
    return event
