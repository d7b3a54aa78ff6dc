"""Zone data for the property tests and the soak: the test world plus hostile sender domains.

``devstack/world.py`` serves the well-behaved senders; this adds what a hostile sender can
publish in its own zones: SPF record graphs built to make a decision ask as much DNS as RFC 7208
allows (and more), include loops, CNAME loops, a client address with many PTR names, and DKIM key
records that are malformed, revoked, oversized or looping.
"""

from __future__ import annotations

import ipaddress

import dns.name
import dns.zone

from devstack import world
from ipv6gate.dns import DnsResolver
from ipv6gate.dns.zones import ZoneBackend

BOOM_IP = "2001:db8:7::25"  # 15 PTR names, each resolving back; in no SPF record
SLOW_SELECTOR = "slow._domainkey.dk.test."


def _txt(value: str) -> str:
    return " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))


def _boom_zone() -> str:
    lines = []
    # Within RFC 7208's limits (10 DNS mechanisms, 10 MX names each) but ~211 queries for an IPv6
    # client: every MX host is IPv4-only, so each empty AAAA answer is followed by an A probe.
    mx_terms = " ".join(f"mx:m{i}.boom.test" for i in range(10))
    lines.append(f'@ TXT "v=spf1 {mx_terms} -all"')
    for i in range(10):
        for j in range(10):
            lines.append(f"m{i} MX {j} h{i}-{j}.boom.test.")
            lines.append(f"h{i}-{j} A 192.0.2.{(i * 10 + j) % 250 + 1}")
    # Beyond RFC 7208's limits: an include chain 30 deep, 40 MX names, a ptr term, exists on every label.
    lines.append('deep TXT "v=spf1 include:d0.boom.test -all"')
    for i in range(30):
        lines.append(f'd{i} TXT "v=spf1 a:x{i}.boom.test include:d{i + 1}.boom.test -all"')
        lines.append(f"x{i} A 192.0.2.9")
    lines.append('wide TXT "v=spf1 mx:many.boom.test ptr exists:%{i}.e.boom.test a/24 a//64 -all"')
    for j in range(40):
        lines.append(f"many MX {j} w{j}.boom.test.")
        lines.append(f"w{j} A 192.0.2.{j + 1}")
    lines.append('loop TXT "v=spf1 include:loop.boom.test -all"')
    lines.append('redir TXT "v=spf1 redirect=redir.boom.test"')
    lines.append("cn1 CNAME cn2.boom.test.")
    lines.append("cn2 CNAME cn1.boom.test.")
    lines.append('cname TXT "v=spf1 a:cn1.boom.test include:cn1.boom.test -all"')
    lines.append('two TXT "v=spf1 -all"')
    lines.append('two TXT "v=spf1 +all"')  # two SPF records: permerror
    lines.append('void TXT "v=spf1 a:n1.boom.test a:n2.boom.test a:n3.boom.test a:n4.boom.test +all"')
    lines.append('macro TXT "v=spf1 exists:%{l}.%{o}.%{h}.%{ir}.%{v}.mac.boom.test ptr:%{d2} -all exp=x.boom.test"')
    lines.append('x TXT "%{l} %{s} %{i} %{h} %{c} %{r} %{t} %{p}"')
    lines.append("big TXT " + _txt("v=spf1 " + " ".join(f"ip6:2001:db8:{i:x}::/48" for i in range(8, 400)) + " -all"))
    lines.append(f"rev{0} AAAA {BOOM_IP}")
    for k in range(15):
        lines.append(f"p{k} AAAA {BOOM_IP}")
    return "\n".join(lines) + "\n"


def _dk_zone(keys: world.Keys) -> str:
    good = "v=DKIM1; k=rsa; p=" + keys.rsa_public_b64
    return f"""
rsa._domainkey     TXT {_txt(good)}
ed._domainkey      TXT {_txt("v=DKIM1; k=ed25519; p=" + keys.ed25519_public_b64)}
small._domainkey   TXT {_txt("v=DKIM1; k=rsa; p=" + keys.small_rsa_public_b64)}
revoked._domainkey TXT "v=DKIM1; k=rsa; p="
garbage._domainkey TXT "v=DKIM1; k=rsa; p=!!!not-base64!!!"
nokey._domainkey   TXT "v=DKIM1; k=rsa"
unknown._domainkey TXT "v=DKIM1; k=dsa; p=AAAA"
sha1only._domainkey TXT {_txt("v=DKIM1; h=sha1; k=rsa; p=" + keys.rsa_public_b64)}
strict._domainkey  TXT {_txt("v=DKIM1; t=s; k=rsa; p=" + keys.rsa_public_b64)}
huge._domainkey    TXT {_txt("v=DKIM1; k=rsa; n=" + "x" * 3800 + "; p=" + keys.rsa_public_b64)}
two._domainkey     TXT {_txt(good)}
two._domainkey     TXT "v=DKIM1; k=rsa; p="
binary._domainkey  TXT "v=DKIM1; k=rsa; p=\\000\\255\\254"
loop._domainkey    CNAME loop2._domainkey.dk.test.
loop2._domainkey   CNAME loop._domainkey.dk.test.
alias._domainkey   CNAME rsa._domainkey.dk.test.
@                  TXT "v=spf1 -all"
"""


def _boom_reverse_zone() -> str:
    owner = ipaddress.ip_address(BOOM_IP).reverse_pointer + "."
    return "\n".join(f"{owner} PTR p{k}.boom.test." for k in range(15)) + "\n"


def zone_texts(keys: world.Keys) -> dict[str, str]:
    """The test world's zones plus the hostile ones; origin -> zone file text."""
    soa = "@ 3600 IN SOA ns.{o}. hostmaster.{o}. 1 3600 600 86400 300\n@ 3600 IN NS ns.{o}.\nns A 192.0.2.53\n"
    extra = {
        "boom.test": _boom_zone(),
        "dk.test": _dk_zone(keys),
        "7.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa": _boom_reverse_zone(),
    }
    texts = dict(world.zone_texts(keys))
    for origin, body in extra.items():
        texts[origin] = soa.format(o=origin) + body
    return texts


def backend(keys: world.Keys) -> ZoneBackend:
    zones = [
        dns.zone.from_text(f"$ORIGIN {origin}.\n$TTL 300\n{text}", origin=origin + ".", relativize=False)
        for origin, text in zone_texts(keys).items()
    ]
    timeouts = (ipaddress.ip_address(world.PTR_TIMEOUT_IP).reverse_pointer + ".", SLOW_SELECTOR)
    return ZoneBackend(zones, timeouts=[dns.name.from_text(t) for t in timeouts])


def resolver(keys: world.Keys, *, query_limit: int = 60, query_timeout: float = 1.0) -> DnsResolver:
    return DnsResolver(backend(keys), query_timeout=query_timeout, query_limit=query_limit)
