"""The benchmark's DNS world: a distinct sender domain (and client address) for every measured decision.

Every decision of a scenario gets a domain of its own (``s0.bench.test``, ``s1.bench.test``, ...) and
a client address of its own, so neither a DNS cache nor any cache the gate may keep per domain can
answer for it: each decision pays its DNS round trips. Zone files are written to a temp dir per run
and served by Knot (behind ``DelayingDnsProxy``); the DKIM key is generated once per run.

Each sender publishes:

- ``<domain> TXT "v=spf1 include:_spf.<domain> -all"`` and ``_spf.<domain> TXT "v=spf1 ip6:<net> -all"``,
  where ``<net>`` is the client's /64 when SPF should pass, else a range the client is not in;
- a PTR for the client address (``mail.<domain>``) and the AAAA back (for ``PTR_MODE=fcrdns``),
  unless the sender is one without reverse DNS;
- ``sel._domainkey.<domain> TXT`` (RSA 2048) when its mail is DKIM-signed.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack import world

ORIGIN = "bench.test"
REVERSE_ORIGIN = "8.b.d.0.1.0.0.2.ip6.arpa"  # 2001:db8::/32
TENANT = "tenant.bench.test"
RECIPIENT = f"postmaster@{TENANT}"
SELECTOR = "sel"
NO_MATCH_NET = "2001:db8:ffff::/64"  # in SPF records that must not pass
TTL = 300


@dataclass(frozen=True, slots=True)
class Sender:
    """One sending domain and the client that connects for it."""

    domain: str
    ip: str
    ptr: bool = True
    spf_pass: bool = True
    signed: bool = False

    @property
    def helo(self) -> str:
        return f"mail.{self.domain}"

    @property
    def mail_from(self) -> str:
        return f"bounce@{self.domain}"

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.ip).version


def sender_ip(family_tag: int, index: int) -> str:
    """A distinct IPv6 client per scenario (``family_tag``) and decision (``index``)."""
    return f"2001:db8:{family_tag:x}:{index:x}::25"


def _txt(value: str) -> str:
    return " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))


def _relative(name: str) -> str:
    return name.removesuffix("." + ORIGIN)


def zone_texts(senders: list[Sender], keys: world.Keys) -> dict[str, str]:
    """Zone origin -> zone file text for every sender."""
    soa = "@ IN SOA ns hostmaster 1 3600 600 86400 300\n@ IN NS ns\n"
    forward = [soa, "ns IN A 192.0.2.53\n", "tenant IN A 192.0.2.10\n"]
    reverse = [soa.replace("ns hostmaster", f"ns.{ORIGIN}. hostmaster.{ORIGIN}.").replace("NS ns", f"NS ns.{ORIGIN}.")]
    key = _txt("v=DKIM1; k=rsa; p=" + keys.rsa_public_b64)
    for s in senders:
        label = _relative(s.domain)
        if s.version == 6:
            net = ipaddress.ip_network(f"{s.ip}/64", strict=False) if s.spf_pass else NO_MATCH_NET
            mechanism = f"ip6:{net}"
        else:
            mechanism = f"ip4:{s.ip}/32" if s.spf_pass else "ip4:203.0.113.0/24"
        forward.append(f'{label} IN TXT "v=spf1 include:_spf.{s.domain} -all"\n')
        forward.append(f'_spf.{label} IN TXT "v=spf1 {mechanism} -all"\n')
        if s.ptr and s.version == 6:
            forward.append(f"mail.{label} IN AAAA {s.ip}\n")
            owner = ipaddress.ip_address(s.ip).reverse_pointer + "."
            reverse.append(f"{owner} IN PTR {s.helo}.\n")
        if s.signed:
            forward.append(f"{SELECTOR}._domainkey.{label} IN TXT {key}\n")
    return {
        ORIGIN: f"$ORIGIN {ORIGIN}.\n$TTL {TTL}\n" + "".join(forward),
        REVERSE_ORIGIN: f"$ORIGIN {REVERSE_ORIGIN}.\n$TTL {TTL}\n" + "".join(reverse),
    }


def write_zones(directory: Path, senders: list[Sender], keys: world.Keys) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for origin, text in zone_texts(senders, keys).items():
        (directory / f"{origin}.zone").write_text(text, encoding="ascii")
    return directory


def body_of_size(size: int) -> str:
    """``size`` bytes of base64 lines (CRLF), like an attachment: random, so nothing compresses it away."""
    line_payload = 57  # 76 base64 characters per line
    lines = (size + 77) // 78
    raw = base64.b64encode(os.urandom(line_payload * lines)).decode("ascii")
    text = "\r\n".join(raw[i : i + 76] for i in range(0, len(raw), 76)) + "\r\n"
    return text[:size]


def message(sender: Sender, keys: world.Keys, *, size: int = 0, subject: str = "bench") -> bytes:
    """The raw message from ``sender`` (about ``size`` bytes in all), DKIM-signed if the sender signs."""
    head = world.message(mail_from=sender.mail_from, to=RECIPIENT, subject=subject, body="")
    body = body_of_size(max(0, size - len(head) - 600)) if size else "Hello.\r\n"
    raw = world.message(mail_from=sender.mail_from, to=RECIPIENT, subject=subject, body=body)
    if sender.signed:
        raw = world.sign(raw, keys, domain=sender.domain, selector=SELECTOR)
    return raw


def header_part(raw: bytes) -> bytes:
    """The header section only (what an SES event carries), without copying a large body."""
    end = raw.find(b"\r\n\r\n")
    return raw[: end + 4] if end >= 0 else raw


def event(sender: Sender, raw: bytes, message_id: str) -> dict[str, Any]:
    """The SES receipt event for ``raw`` sent by ``sender``'s client (the headers only, as SES sends)."""
    return world.ses_event(
        ip=sender.ip,
        helo=sender.helo,
        mail_from=sender.mail_from,
        recipients=(RECIPIENT,),
        raw=header_part(raw),
        message_id=message_id,
    )
