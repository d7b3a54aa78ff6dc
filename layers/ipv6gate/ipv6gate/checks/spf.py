"""SPF (RFC 7208) through pyspf, with every query asked through the project's DNS session.

pyspf reads DNS through the module global ``spf.DNSLookup``; we install one dispatcher that
answers from the session of the check running in the current thread (a ContextVar), so concurrent
decisions never share state. We also replace pyspf's void-lookup counting: an empty AAAA (or A)
answer for a name that exists (NODATA) is not "void" for our purpose, since it is only the client's
address family that the host lacks (an IPv6 client, a sender whose hosts have only A records);
NXDOMAIN still counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import spf

from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.dns import DnsNameError, DnsSession, DnsTempError, Status
from ipv6gate.mail.source import IPAddress

METHOD = "spf"
_RESULTS = {r.value: r for r in Result}


@dataclass
class _Lookups:
    """The DNS of the SPF check running in this thread, and how each name answered (for voids)."""

    session: DnsSession
    statuses: dict[tuple[str, str], Status] = field(default_factory=dict)


_current: ContextVar[_Lookups] = ContextVar("ipv6gate_spf_lookups")


def _lookup(name: str, qtype: str, strict: object = True, timeout: float = 0) -> Iterator[tuple[tuple[str, str], Any]]:
    """pyspf's DNS hook: ((name, qtype), value) pairs in the shapes pyspf's own dnspython driver yields."""
    lookups = _current.get()
    try:
        answer = lookups.session.query(name, qtype)
        lookups.statuses[(name.lower().rstrip("."), qtype)] = answer.status
    except DnsTempError as exc:
        raise spf.TempError(f"DNS {exc}") from None
    except DnsNameError:
        return iter(())  # RFC 7208 §4.3: a malformed domain yields no record
    out: list[tuple[tuple[str, str], Any]] = []
    for rd in answer.records:
        if qtype in ("A", "AAAA"):
            value: Any = rd.address  # type: ignore[attr-defined]
        elif qtype == "MX":
            value = (rd.preference, rd.exchange.to_text(omit_final_dot=True))  # type: ignore[attr-defined]
        elif qtype == "PTR":
            value = rd.target.to_text(omit_final_dot=True)  # type: ignore[attr-defined]
        else:  # TXT or SPF: the strings of one record, pyspf joins them
            value = tuple(rd.strings)  # type: ignore[attr-defined]
        out.append(((name, qtype), value))
    return iter(out)


spf.DNSLookup = _lookup


class _GateQuery(spf.query):  # type: ignore[misc]
    """pyspf's query with a configurable void limit that ignores family-only gaps."""

    def __init__(self, *args: Any, void_limit: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._void_limit = void_limit

    def dns(self, name: str, qtype: str, cnames: Any = None, ignore_void: bool = False) -> list[Any]:
        result: list[Any] = super().dns(name, qtype, cnames=cnames, ignore_void=True)
        if result or ignore_void or _name_exists(name, qtype):
            return result
        self.void_lookups += 1
        if self.void_lookups > self._void_limit:
            raise spf.PermError(f"Void lookup limit of {self._void_limit} exceeded")
        return result

    def validated_ptrs(self) -> list[str]:
        """RFC 7208 §5.5: DNS errors in the ptr mechanism mean "no match", not a temperror for all.

        pyspf's own version lets the first failing forward lookup end the whole check.
        """
        limit = spf.MAX_PTR if self.strict else spf.MAX_PTR * 4
        try:
            ptr_names: list[str] = self.dns_ptr(self.i)[:limit]
        except spf.TempError:
            return []  # "If a DNS error occurs while doing the PTR RR lookup, the mechanism fails to match"
        names: list[str] = []
        for name in ptr_names:
            try:
                if self.cidrmatch(self.dns_a(name, self.A), self.cidrmax):
                    names.append(name)
            except spf.TempError:
                continue
        return names


def _name_exists(name: str, qtype: str) -> bool:
    """An empty A/AAAA answer for a name that exists (NODATA, not NXDOMAIN) is the client's address
    family missing, not a void: the host is there, typically with addresses of the other family (or
    none at all, which RFC 7208 would count but no sender can use to cost us anything). No extra query."""
    if qtype not in ("A", "AAAA"):
        return False
    return _current.get().statuses.get((name.lower().rstrip("."), qtype)) is Status.NODATA


def check_spf(dns_session: DnsSession, ip: IPAddress, mail_from: str, helo: str, *, void_limit: int) -> CheckResult:
    """Check MAIL FROM, or ``postmaster@<helo>`` for the null sender (RFC 7208 §2.4)."""
    if mail_from:
        identity, props = mail_from, {"smtp.mailfrom": mail_from}
    else:
        identity, props = f"postmaster@{helo}", {"smtp.helo": helo}
    budget = dns_session.deadline.remaining()
    if budget <= 0:
        return CheckResult(METHOD, Result.TEMPERROR, "decision time budget spent before SPF", props)
    token = _current.set(_Lookups(dns_session))
    try:
        query = _GateQuery(
            i=str(ip),
            s=identity,
            h=helo,
            querytime=budget,
            timeout=budget,
            void_limit=void_limit,
        )
        outcome, _code, explanation = query.check()
    except Exception as exc:  # pyspf on hostile input: never let it reject or crash the decision
        return CheckResult(METHOD, Result.TEMPERROR, f"SPF evaluation error: {exc.__class__.__name__}", props)
    finally:
        _current.reset(token)
    result = _RESULTS.get(str(outcome), Result.PERMERROR)
    domain = identity.rpartition("@")[2] or identity  # "postmaster@" and the like still get a reason
    return CheckResult(METHOD, result, f"{domain}: {explanation}" if explanation else domain, props)
