"""iprev (RFC 8601 §3): does the connecting address publish a usable reverse DNS name?"""

from __future__ import annotations

import re
from enum import StrEnum

import dns.name

from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.dns import DnsSession, DnsTempError, Status
from ipv6gate.mail.source import IPAddress

METHOD = "iprev"


class PtrMode(StrEnum):
    EXISTS = "exists"  # a valid, non-numeric host name is published for the address
    FCRDNS = "fcrdns"  # ... and that name resolves back to the same address


_MAX_NAMES = 10  # RFC 7208 §4.6.4 uses the same bound for PTR names; a host rarely has more than one
_LDH_LABEL = re.compile(rb"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)


def check_iprev(dns_session: DnsSession, ip: IPAddress, mode: PtrMode) -> CheckResult:
    props = {"policy.iprev": str(ip)}
    try:
        answer = dns_session.ptr(ip)
    except DnsTempError as exc:
        return CheckResult(METHOD, Result.TEMPERROR, f"PTR lookup failed: {exc}", props)
    if answer.status is not Status.OK:
        return CheckResult(METHOD, Result.PERMERROR, f"no PTR record for {ip}", props)

    names = [rd.target for rd in answer.records][:_MAX_NAMES]  # type: ignore[attr-defined]
    hosts = [n for n in names if is_host_name(n)]
    if not hosts:
        shown = names[0].to_text(omit_final_dot=True) if names else "?"
        return CheckResult(METHOD, Result.FAIL, f"PTR name {shown!r} is not a valid host name", props)
    if mode is PtrMode.EXISTS:
        name = hosts[0].to_text(omit_final_dot=True)
        return CheckResult(METHOD, Result.PASS, f"PTR {name}", props | {"policy.iprev.name": name})
    return _forward_confirm(dns_session, ip, hosts, props)


def _forward_confirm(
    dns_session: DnsSession, ip: IPAddress, hosts: list[dns.name.Name], props: dict[str, str]
) -> CheckResult:
    """FCrDNS: some PTR name must resolve (A or AAAA, by the client's family) to the address."""
    temp: str | None = None
    for host in hosts:
        name = host.to_text(omit_final_dot=True)
        try:
            forward = dns_session.addresses(host, ip.version)
        except DnsTempError as exc:
            temp = f"forward lookup of {name} failed: {exc}"
            continue
        if any(rd.address == str(ip) or _same(rd.address, ip) for rd in forward.records):  # type: ignore[attr-defined]
            return CheckResult(METHOD, Result.PASS, f"PTR {name} resolves back", props | {"policy.iprev.name": name})
    if temp is not None:
        return CheckResult(METHOD, Result.TEMPERROR, temp, props)
    shown = hosts[0].to_text(omit_final_dot=True)
    return CheckResult(METHOD, Result.FAIL, f"PTR {shown} does not resolve back to {ip}", props)


def _same(text: str, ip: IPAddress) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(text) == ip
    except ValueError:
        return False


def is_host_name(name: dns.name.Name) -> bool:
    """A syntactically valid host name (RFC 1123 LDH labels) that is not an address in disguise."""
    labels = [label for label in name.labels if label]
    if len(labels) < 2 or not all(_LDH_LABEL.match(label) for label in labels):
        return False
    return not labels[-1].isdigit()  # "192.0.2.1." and friends are numeric, not names
