"""What every decision must look like, whatever the input: shared by the property tests and fuzz/soak.py.

The reply texts are written out here from the README (Exchange Online's wording), not taken from
``ipv6gate.decision.replies``, so a change to a reply text is caught rather than mirrored.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from ipv6gate.checks.results import Result
from ipv6gate.decision.rule import Disposition, Verdict
from ipv6gate.evaluation.record import Decision
from ipv6gate.mail.domains import DomainError, recipient_domain
from ipv6gate.mail.event import Mail
from ipv6gate.mail.source import Source, Unknown

DISPOSITIONS = frozenset({"CONTINUE", "STOP_RULE_SET"})
# RFC 8601 result values the three methods may report, plus "skipped" (check not needed).
RESULTS = frozenset({"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "skipped"})
METHODS = ("iprev", "spf", "dkim")

_IP6 = r"(?P<ip>[0-9a-f:]+)"
REPLY_TEXTS = {
    "5.2.1": re.compile(
        r"550 5\.2\.1 Service unavailable, \[(?P<domain>[a-z0-9.-]+)\] does not accept email over IPv6\."
    ),
    "4.7.25": re.compile(
        rf"450 4\.7\.25 Service unavailable, sending IPv6 address \[{_IP6}\] must have reverse DNS record\."
    ),
    "4.7.26": re.compile(
        rf"450 4\.7\.26 Service unavailable, message sent over IPv6 \[{_IP6}\] "
        r"must pass either SPF or DKIM validation\."
    ),
}


def handler_result_problems(result: Any) -> list[str]:
    if not isinstance(result, dict) or set(result) != {"disposition"}:
        return [f"handler returned {result!r:.120}, not {{'disposition': ...}}"]
    if result["disposition"] not in DISPOSITIONS:
        return [f"handler returned disposition {result['disposition']!r}"]
    return []


def decision_problems(decision: Decision, mail: Mail, *, query_limit: int | None = None) -> list[str]:
    """Everything wrong with ``decision`` as an answer to ``mail``; empty when it is well formed.

    ``query_limit`` is DNS_QUERY_LIMIT, a cap per check (README): a decision makes at most three times it.
    """
    problems: list[str] = []
    add = problems.append
    if decision.disposition not in (Disposition.CONTINUE, Disposition.STOP_RULE_SET):
        add(f"disposition {decision.disposition!r}")
    wanted = list(dict.fromkeys(mail.recipients))  # SES lists each recipient once; duplicates collapse
    got = [v.recipient for v in decision.verdicts]
    if got != wanted:
        add(f"verdicts for {got!r:.200}, recipients were {wanted!r:.200}")
    all_rejected = bool(decision.verdicts) and all(v.verdict is Verdict.REJECT for v in decision.verdicts)
    # A bounce that could not be queued lets the message through (the sender would never hear of it).
    stops = all_rejected and "bounce_queue" not in decision.faults
    if (decision.disposition is Disposition.STOP_RULE_SET) != stops:
        add(f"disposition {decision.disposition} but verdicts {[v.verdict.value for v in decision.verdicts]}")
    source = decision.source
    for v in decision.verdicts:
        problems.extend(_verdict_problems(v, source))
    for method, check in zip(METHODS, (decision.checks.iprev, decision.checks.spf, decision.checks.dkim), strict=True):
        if check.method != method:
            add(f"check {method} reported as {check.method!r}")
        if not isinstance(check.result, Result) or check.result.value not in RESULTS:
            add(f"{method} result {check.result!r} is not RFC 8601 vocabulary")
    needs = isinstance(source, Source) and source.version == 6
    if not needs:
        if any(v.verdict is Verdict.REJECT or v.reply is not None for v in decision.verdicts):
            add("a non-IPv6 (or unknown) client got a rejection")
        if any(
            c.result is not Result.SKIPPED for c in (decision.checks.iprev, decision.checks.spf, decision.checks.dkim)
        ):
            add("checks ran for a non-IPv6 (or unknown) client")
        if decision.dns_queries:
            add(f"{decision.dns_queries} DNS queries for a non-IPv6 (or unknown) client")
    if query_limit is not None and decision.dns_queries > 3 * query_limit:
        add(f"{decision.dns_queries} DNS queries, over three checks' limit of {query_limit} each")
    try:
        json.dumps(decision.to_dict())
    except (TypeError, ValueError) as exc:
        add(f"to_dict() is not JSON: {exc}")
    return problems


def _verdict_problems(v: Any, source: Source | Unknown) -> list[str]:
    out: list[str] = []
    if v.verdict not in (Verdict.ACCEPT, Verdict.REJECT):
        out.append(f"verdict {v.verdict!r}")
    if v.verdict is Verdict.REJECT and (v.reply is None or v.monitor):
        out.append(f"{v.recipient!r:.80} rejected without an enforced reply")
    if v.monitor and v.verdict is not Verdict.ACCEPT:
        out.append(f"{v.recipient!r:.80} in monitor mode but rejected")
    if v.reply is None:
        return out
    text = str(v.reply)
    pattern = REPLY_TEXTS.get(v.reply.status)
    m = pattern.fullmatch(text) if pattern else None
    if m is None:
        out.append(f"reply {text!r:.160} is not one of the three documented texts")
        return out
    if "ip" in m.groupdict():
        client = source.ip if isinstance(source, Source) else None
        if not isinstance(client, ipaddress.IPv6Address) or m["ip"] != client.compressed:
            out.append(f"reply names [{m['ip']}], the client was {client}")
    else:
        try:
            domain = recipient_domain(v.recipient)
        except DomainError:
            domain = None
        if m["domain"] != domain:
            out.append(f"reply names [{m['domain']}], the recipient's domain is {domain}")
    return out


def expected_client(literal: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The client address SES saw, as the gate must report it (IPv4-mapped IPv6 is IPv4)."""
    ip = ipaddress.ip_address(literal)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
