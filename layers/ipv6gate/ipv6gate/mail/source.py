"""Who connected: read only from the Received header that SES itself prepended.

Everything below SES's own headers came from the sender and can say anything, so only the
topmost Received header counts, and only when its ``by`` host is a trusted receiver.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

type IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# from <HELO> (<rDNS or nothing> [<ip>]) by <host> ...
# The HELO (one SMTP token) and the rDNS name are the sender's to choose, so neither may break or
# steer the parse (an unparsable header means "client unknown", which accepts). Only SMTP's own
# white space (SP, HTAB) separates: a HELO or a PTR name may hold other control or Unicode space
# characters, and those stay part of the token. The rDNS part runs to the first "[ip]) by", which
# needs a separator that neither a HELO nor a DNS name can contain.
_RECEIVED = re.compile(
    r"^from[ \t]+(?P<helo>[^ \t]+)[ \t]+\((?P<rdns>.*?)\[(?:IPv6:)?(?P<ip>[0-9A-Fa-f:.]+)\]\)"
    r"[ \t]+by[ \t]+(?P<by>[^ \t;]+)",
    re.IGNORECASE | re.DOTALL,
)
# SES continues "... [ip]) by <host> with SMTP id <messageId> ...". The message ID is SES's own, chosen
# after the HELO and the PTR name are known, so a match that ends in it cannot be one the sender wrote.
_ANCHOR = (
    r"\[(?:IPv6:)?(?P<ip>[0-9A-Fa-f:.]+)\]\)[ \t]+by[ \t]+(?P<by>[^ \t;]+)"
    r"[ \t]+with[ \t]+[^ \t]+[ \t]+id[ \t]+{id}(?![^ \t;])"
)
# The same with the ID as a group, compiled once: compiling the pattern for each message's ID cost
# about 0.4 ms of every decision, before its first DNS query.
_ANCHORED = re.compile(_ANCHOR.format(id=r"(?P<id>[^ \t;]+)"), re.IGNORECASE)
_TOKEN_BREAKS = frozenset(" \t;")
_HELO = re.compile(r"^from[ \t]+(?P<helo>[^ \t]+)", re.IGNORECASE)
_FOLD = re.compile(r"\r?\n(?=[ \t])")  # RFC 5322 folding: a line break followed by white space
_WSP = re.compile(r"[ \t]+")


@dataclass(frozen=True, slots=True)
class Source:
    """The connecting client as SES saw it."""

    ip: IPAddress
    helo: str
    receiver: str = ""  # the trusted "by" host that wrote the header, e.g. inbound-smtp.eu-west-1.amazonaws.com

    @property
    def version(self) -> int:
        return self.ip.version


@dataclass(frozen=True, slots=True)
class Unknown:
    """No trusted statement of the client address could be found; ``reason`` says why."""

    reason: str


def find_source(
    headers: Sequence[tuple[str, str]], trusted_receivers: Sequence[str], message_id: str = ""
) -> Source | Unknown:
    """Parse the topmost Received header; never fall back to a lower (sender-written) one.

    With ``message_id`` (SES's), the address is the one SES wrote right before ``by <host> with ...
    id <message_id>``, which no sender-chosen text can imitate; without it, or when SES's header does
    not carry the ID, the first ``[ip]) by`` after the HELO.
    """
    received = next((value for name, value in headers if name.lower() == "received"), None)
    if received is None:
        return Unknown("no Received header in the SES event")
    text = _WSP.sub(" ", _FOLD.sub("", received)).strip(" \t")
    m: re.Match[str] | None = None
    helo = _HELO.match(text)
    if message_id and helo:
        m = _anchored(text, helo.end(), message_id)
    m = m or _RECEIVED.match(text)
    if not m or not helo:
        return Unknown("topmost Received header is not in SES's format")
    by = m.group("by").lower().rstrip(".")
    if not any(host_matches(by, pattern) for pattern in trusted_receivers):
        return Unknown(f"topmost Received header is by {by!r}, not a trusted receiver")
    try:
        ip = client_address(m.group("ip"))
    except ValueError:
        return Unknown("topmost Received header has no valid client address")
    return Source(ip=ip, helo=helo.group("helo"), receiver=by)


def _anchored(text: str, start: int, message_id: str) -> re.Match[str] | None:
    """The leftmost match of ``_ANCHOR`` for ``message_id`` at or after ``start``."""
    if _TOKEN_BREAKS.intersection(message_id):  # never SES's; the pattern made for it keeps the meaning
        return next(re.compile(_ANCHOR.format(id=re.escape(message_id)), re.IGNORECASE).finditer(text, start), None)
    wanted = message_id.lower()
    at = text.find("[", start)
    while at >= 0:  # every match starts at a "[": try each, leftmost first, as the search would
        m = _ANCHORED.match(text, at)
        if m is not None and m.group("id").lower() == wanted:
            return m
        at = text.find("[", at + 1)
    return None


def client_address(text: str) -> IPAddress:
    """The client address in ``text``; ``ValueError`` for a non-address. The one place where an
    IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, an IPv4 client on a dual-stack socket) becomes IPv4."""
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def smtp_client(address: str | None, receiver: str = "") -> Source | Unknown:
    """The client an MTA names at connect (None: a local or unknown client, outside the rule)."""
    try:
        return Source(client_address(address or ""), "", receiver)
    except ValueError:
        return Unknown(f"MTA gave no IP client address ({(address or 'none')[:60]!r})")


def host_matches(host: str, pattern: str) -> bool:
    """Case-insensitive host match where ``*`` stands for exactly one DNS label."""
    labels, wanted = host.lower().split("."), pattern.lower().split(".")
    return len(labels) == len(wanted) and all(w in ("*", h) for h, w in zip(labels, wanted, strict=True))


_STORED_ID = re.compile(r"[ \t]by[ \t]+[^ \t;]+[ \t]+with[ \t]+[^ \t;]+[ \t]+id[ \t]+(?P<id>[^ \t;]+)", re.IGNORECASE)
_HEAD_LIMIT = 256 * 1024  # SES cuts the headers it reports at 10 KB; a head this long is not one of its messages


def stored_message_id(raw: bytes) -> str | None:
    """The SES message id in a raw message as SES stored it: its topmost Received header is SES's own,
    ``... by <host> with SMTP id <messageId> ...``. ``None`` when that header or the id is missing."""
    head = raw[:_HEAD_LIMIT].replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("latin-1")
    received: list[str] = []
    for line in head.split("\n"):
        if received and line[:1] in (" ", "\t"):
            received.append(line)  # a folded continuation of the header being read
        elif received:
            break
        elif line.lower().startswith("received:"):
            received.append(line[len("received:") :])
    m = _STORED_ID.search(_WSP.sub(" ", " ".join(received)))
    return m.group("id") if m else None
