"""The test world: generated DKIM keys, zone files for a handful of sender domains, SES events.

Everything uses documentation ranges (2001:db8::/32, 192.0.2.0/24) and the reserved .test TLD.
Zone text is produced here so unit tests (zone-file DNS) and integration tests (real Knot) serve
exactly the same data.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import subprocess
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

import dkim
import dns.name
import dns.zone
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from devstack import ses
from ipv6gate.dns.zones import ZoneBackend

RECEIVER = ses.RECEIVER
GOOD_IP = "2001:db8:1::25"  # PTR mail.good.test, forward-confirmed; in good.test's SPF
NO_PTR_IP = "2001:db8:2::25"  # no PTR at all
MISMATCH_IP = "2001:db8:3::25"  # PTR mail.nomatch.test, which does not resolve back
NUMERIC_PTR_IP = "2001:db8:4::25"  # PTR "192.0.2.1." (a number, not a name)
PTR_TIMEOUT_IP = "2001:db8:5::25"  # the PTR query times out (zone-file DNS only); in good.test's SPF
OTHER_IP = "2001:db8:6::25"  # PTR mail.other.test (forward-confirmed), in no SPF record
V4_IP = "192.0.2.25"


@dataclass(frozen=True)
class Keys:
    rsa_pem: bytes
    rsa_public_b64: str
    small_rsa_pem: bytes
    small_rsa_public_b64: str
    ed25519_seed_b64: bytes
    ed25519_public_b64: str


def make_keys() -> Keys:
    def rsa_pair(bits: int) -> tuple[bytes, str]:
        if bits >= 1024:
            key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        else:  # cryptography refuses to make keys this weak; openssl still will (RFC 8301 test)
            pem = subprocess.run(["openssl", "genrsa", str(bits)], capture_output=True, check=True).stdout
            loaded = serialization.load_pem_private_key(pem, password=None)
            assert isinstance(loaded, rsa.RSAPrivateKey)
            key = loaded
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
        der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return pem, base64.b64encode(der).decode()

    rsa_pem, rsa_pub = rsa_pair(2048)
    small_pem, small_pub = rsa_pair(768)
    ed = ed25519.Ed25519PrivateKey.generate()
    seed = ed.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    pub = ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Keys(rsa_pem, rsa_pub, small_pem, small_pub, base64.b64encode(seed), base64.b64encode(pub).decode())


def _txt(value: str) -> str:
    """A TXT rdata in zone-file syntax, split into <=255-octet strings."""
    return " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))


_SOA = "@ 3600 IN SOA ns.{origin} hostmaster.{origin} 1 3600 600 86400 300\n@ 3600 IN NS ns.{origin}\n"


def zone_texts(keys: Keys) -> dict[str, str]:
    """Zone origin -> zone file text."""
    zones = {
        "good.test": f"""
ns      A     192.0.2.53
mail    AAAA  {GOOD_IP}
@       TXT   "v=spf1 ip6:2001:db8:1::/48 ip6:2001:db8:5::/48 -all"
rsa._domainkey     TXT {_txt("v=DKIM1; k=rsa; p=" + keys.rsa_public_b64)}
ed._domainkey      TXT {_txt("v=DKIM1; k=ed25519; p=" + keys.ed25519_public_b64)}
small._domainkey   TXT {_txt("v=DKIM1; k=rsa; p=" + keys.small_rsa_public_b64)}
""",
        "other.test": f"""
ns      A     192.0.2.53
mail    AAAA  {OTHER_IP}
@       TXT   "v=spf1 ip6:2001:db8:1::/48 -all"
rsa._domainkey     TXT {_txt("v=DKIM1; k=rsa; p=" + keys.rsa_public_b64)}
""",
        # Authorises the PTR-less range: SPF passes there, so a 4.7.25 rejection may bounce.
        "noptr.test": """
ns      A     192.0.2.53
@       TXT   "v=spf1 ip6:2001:db8:2::/48 -all"
""",
        "softfail.test": """
ns      A     192.0.2.53
@       TXT   "v=spf1 ~all"
""",
        "nospf.test": """
ns      A     192.0.2.53
""",
        "nomatch.test": """
ns      A     192.0.2.53
mail    AAAA  2001:db8:ffff::1
""",
        # The IPv6 void-lookup trap: three IPv4-only hosts before the ip6: range that matches.
        "v4only.test": """
ns      A     192.0.2.53
a1      A     192.0.2.1
a2      A     192.0.2.2
a3      A     192.0.2.3
@       TXT   "v=spf1 a:a1.v4only.test a:a2.v4only.test a:a3.v4only.test ip6:2001:db8:1::/48 -all"
gone    TXT   "v=spf1 a:x1.v4only.test a:x2.v4only.test a:x3.v4only.test ip6:2001:db8:1::/48 -all"
""",
        "tenant.test": """
ns      A     192.0.2.53
""",
        "8.b.d.0.1.0.0.2.ip6.arpa": f"""
{_ptr_owner(GOOD_IP)}          PTR mail.good.test.
{_ptr_owner(MISMATCH_IP)}      PTR mail.nomatch.test.
{_ptr_owner(NUMERIC_PTR_IP)}   PTR 192.0.2.1.
{_ptr_owner(OTHER_IP)}         PTR mail.other.test.
""",
    }
    return {origin: _SOA.format(origin=origin + ".") + body for origin, body in zones.items()}


def _ptr_owner(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer + "."


def write_zone_dir(directory: Path, keys: Keys) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for origin, text in zone_texts(keys).items():
        (directory / f"{origin}.zone").write_text(f"$ORIGIN {origin}.\n$TTL 300\n{text}", encoding="ascii")
    return directory


def zone_backend(keys: Keys, timeouts: tuple[str, ...] = ()) -> ZoneBackend:
    zones = [
        dns.zone.from_text(f"$TTL 300\n{text}", origin=origin + ".", relativize=False)
        for origin, text in zone_texts(keys).items()
    ]
    return ZoneBackend(zones, timeouts=[dns.name.from_text(t) for t in timeouts])


def message(
    *, mail_from: str = "alice@good.test", to: str = "bob@tenant.test", subject: str = "hello", body: str = "Hi.\n"
) -> bytes:
    lines = [
        f"From: Alice <{mail_from or 'alice@good.test'}>",
        f"To: {to}",
        f"Subject: {subject}",
        f"Date: {formatdate(0)}",
        "Message-ID: <test@good.test>",
        "",
        body,
    ]
    return "\r\n".join(lines).encode()


def sign(raw: bytes, keys: Keys, *, domain: str = "good.test", selector: str = "rsa", algorithm: str = "rsa") -> bytes:
    """Prepend a DKIM-Signature made with one of the generated keys."""
    if algorithm == "ed25519":
        sig: bytes = dkim.sign(
            raw,
            selector.encode(),
            domain.encode(),
            keys.ed25519_seed_b64,
            signature_algorithm=b"ed25519-sha256",
            include_headers=[b"from", b"to", b"subject"],
        )
    else:
        key = keys.small_rsa_pem if selector == "small" else keys.rsa_pem
        sig = dkim.sign(
            raw,
            selector.encode(),
            domain.encode(),
            key,
            signature_algorithm=b"rsa-sha1" if algorithm == "rsa-sha1" else b"rsa-sha256",
            include_headers=[b"from", b"to", b"subject"],
        )
    return sig + raw


def ses_event(
    *,
    ip: str = GOOD_IP,
    helo: str = "mail.good.test",
    mail_from: str = "alice@good.test",
    recipients: tuple[str, ...] = ("bob@tenant.test",),
    raw: bytes | None = None,
    message_id: str = ses.MESSAGE_ID,
    received: str | None = None,
    extra_headers: tuple[tuple[str, str], ...] = (),
    ip_form: str = "plain",
) -> dict[str, Any]:
    """An SES receipt event (RequestResponse) with SES's own headers first, then the message's."""
    received = received or ses.received_header(
        helo=helo, ip=ip, ip_form=ip_form, message_id=message_id, recipient=recipients[0]
    )
    msg = raw if raw is not None else message(mail_from=mail_from, to=recipients[0])
    head = msg.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ")
    fields = (line.partition(": ") for line in unfolded.split("\r\n"))
    msg_headers = [(name, value) for name, colon, value in fields if colon]
    return ses.ses_event(
        headers=[*ses.ses_headers(mail_from=mail_from, received=received, extra=extra_headers), *msg_headers],
        mail_from=mail_from,
        recipients=recipients,
        message_id=message_id,
        common_headers={"from": [mail_from], "to": list(recipients), "messageId": "<test@good.test>"},
    )


def dump(event: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(event, indent=2), encoding="utf-8")
    return path
