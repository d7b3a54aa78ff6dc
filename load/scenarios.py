"""The load test's world: who sends what to whom, and what the gate must answer.

Built on ``devstack/world.py`` (its zones, keys, addresses and SES events) plus a few names of
its own: tenants with every setting (enforce, monitor, opted out, partner prefixes), a sender
domain whose DNS answers SERVFAIL, and the PTR of ``PTR_TIMEOUT_IP``, which the DNS proxy drops so
the query times out. Every scenario names the outcome the gate must reach (``outcome`` below); the
runner counts a different one as an error, since a decision must not depend on load.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from devstack import world

ENFORCE = "tenant.test"
MONITOR = "monitor.test"
OPTED_OUT = "optout.test"
PARTNER = "partner.test"
UNKNOWN = "stranger.test"  # no tenant item at all
PARTNER_PREFIX = "2001:db8:2::/48"  # NO_PTR_IP's range: the partner's connector

SERVFAIL_DOMAIN = "broken.test"  # every query at or below it: SERVFAIL (DNS proxy rule)
DROPPED_PTR = ipaddress.ip_address(world.PTR_TIMEOUT_IP).reverse_pointer  # never answered (DNS proxy rule)

TENANTS: list[dict[str, Any]] = [
    {"domain": ENFORCE, "ipv6_inbound": True, "mode": "enforce"},
    {"domain": MONITOR, "ipv6_inbound": True, "mode": "monitor"},
    {"domain": OPTED_OUT, "ipv6_inbound": False},
    {"domain": PARTNER, "ipv6_inbound": True, "partner_prefixes": [PARTNER_PREFIX]},
]


@dataclass(frozen=True)
class Scenario:
    name: str
    weight: int  # share of the decisions, out of the sum of all weights
    outcome: str  # what ``outcome()`` must say about the decision
    ip: str
    mail_from: str
    recipients: tuple[str, ...]
    dkim: str | None = None  # signing domain: the raw message is stored in S3 for the gate to fetch
    kwargs: Mapping[str, Any] = field(default_factory=dict)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("ipv4", 10, "CONTINUE ipv4", world.V4_IP, "alice@good.test", (f"bob@{ENFORCE}",)),
    Scenario("accept-spf", 18, "CONTINUE accept", world.GOOD_IP, "alice@good.test", (f"bob@{ENFORCE}",)),
    # other.test's SPF does not list OTHER_IP (fail), its DKIM signature passes
    Scenario(
        "accept-dkim", 10, "CONTINUE accept", world.OTHER_IP, "carol@other.test", (f"bob@{ENFORCE}",), dkim="other.test"
    ),
    Scenario("no-ptr", 10, "STOP_RULE_SET 4.7.25", world.NO_PTR_IP, "dave@noptr.test", (f"bob@{ENFORCE}",)),
    Scenario(
        "not-authenticated", 10, "STOP_RULE_SET 4.7.26", world.OTHER_IP, "erin@softfail.test", (f"bob@{ENFORCE}",)
    ),
    Scenario("not-opted-in", 7, "STOP_RULE_SET 5.2.1", world.GOOD_IP, "alice@good.test", (f"bob@{OPTED_OUT}",)),
    Scenario("unknown-domain", 3, "STOP_RULE_SET 5.2.1", world.GOOD_IP, "alice@good.test", (f"bob@{UNKNOWN}",)),
    Scenario(
        "mixed",
        8,
        "CONTINUE 5.2.1+accept",
        world.GOOD_IP,
        "alice@good.test",
        (f"bob@{ENFORCE}", f"carol@{OPTED_OUT}"),
    ),
    Scenario("monitor", 7, "CONTINUE monitor:4.7.25", world.NO_PTR_IP, "dave@noptr.test", (f"bob@{MONITOR}",)),
    Scenario("partner", 5, "CONTINUE accept", world.NO_PTR_IP, "frank@nospf.test", (f"bob@{PARTNER}",)),
    # the PTR query is never answered (timeout); SPF passes, so the temperror decides: accepted
    Scenario(
        "dns-timeout", 6, "CONTINUE accept+temperror", world.PTR_TIMEOUT_IP, "alice@good.test", (f"bob@{ENFORCE}",)
    ),
    # the sender's SPF record cannot be read (SERVFAIL); the PTR passes and there is no DKIM
    Scenario(
        "dns-servfail", 6, "CONTINUE accept+temperror", world.GOOD_IP, f"grace@{SERVFAIL_DOMAIN}", (f"bob@{ENFORCE}",)
    ),
)


def outcome(decision: Mapping[str, Any], disposition: str) -> str:
    """A short, comparable description: disposition, then each recipient's reply (or accept)."""
    if decision.get("ip_version") == 4:
        return f"{disposition} ipv4"
    replies = set()
    for row in decision.get("recipients") or []:
        if row.get("monitor") and row.get("would_reply"):
            replies.add(f"monitor:{_status(row['would_reply'])}")
        elif row.get("reply"):
            replies.add(_status(row["reply"]))
        else:
            replies.add("accept")
    checks = decision.get("checks") or {}
    if any((c or {}).get("result") == "temperror" for c in checks.values()):
        replies.add("temperror")
    return f"{disposition} {'+'.join(sorted(replies))}"


def _status(reply: object) -> str:
    """The enhanced status code of a reply: ``450 4.7.25 Service ...`` -> ``4.7.25``."""
    parts = str(reply).split(" ")
    return parts[1] if len(parts) > 1 else str(reply)


def schedule(total: int) -> list[Scenario]:
    """``total`` scenarios in the weights' proportions, interleaved (a smooth weighted round robin)."""
    weights = {s.name: s.weight for s in SCENARIOS}
    whole = sum(weights.values())
    current = dict.fromkeys(weights, 0)
    by_name = {s.name: s for s in SCENARIOS}
    out = []
    for _ in range(total):
        for name, weight in weights.items():
            current[name] += weight
        pick = max(current, key=lambda n: current[n])
        current[pick] -= whole
        out.append(by_name[pick])
    return out


@dataclass(frozen=True)
class Item:
    """One SES event of the run, with what it is for."""

    index: int
    scenario: Scenario
    message_id: str
    event: dict[str, Any]
    raw: bytes | None  # to store in S3 (DKIM scenarios)


def message_id(index: int) -> str:
    """Unique and shaped like SES's (lower-case letters and digits, 40 characters)."""
    return f"load{index:012d}".ljust(40, "0")


def items(total: int, keys: world.Keys) -> Iterator[Item]:
    signed: dict[str, bytes] = {}
    for index, scenario in enumerate(schedule(total)):
        mid = message_id(index)
        raw = None
        if scenario.dkim:
            if scenario.dkim not in signed:
                plain = world.message(mail_from=scenario.mail_from, to=scenario.recipients[0])
                signed[scenario.dkim] = world.sign(plain, keys, domain=scenario.dkim)
            raw = signed[scenario.dkim]
        event = world.ses_event(
            ip=scenario.ip,
            helo=f"mail.{scenario.mail_from.rpartition('@')[2]}",
            mail_from=scenario.mail_from,
            recipients=scenario.recipients,
            raw=raw,
            message_id=mid,
            **dict(scenario.kwargs),
        )
        yield Item(index, scenario, mid, event, raw)
