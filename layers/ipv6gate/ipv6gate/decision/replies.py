"""The three replies Exchange Online documents for anonymous IPv6 mail, verbatim."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    status: str  # RFC 3463 enhanced status code
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}"

    @property
    def permanent(self) -> bool:
        return self.code >= 500


@functools.lru_cache(maxsize=64)
def _compressed(address: ipaddress.IPv6Address) -> str:
    # Cached: the policy's certainty test builds these replies for every completion of the missing
    # results, after each check's answer, and formatting the address was most of its time.
    return address.compressed


def no_reverse_dns(address: ipaddress.IPv6Address) -> Reply:
    return Reply(
        450,
        "4.7.25",
        f"Service unavailable, sending IPv6 address [{_compressed(address)}] must have reverse DNS record.",
    )


def not_authenticated(address: ipaddress.IPv6Address) -> Reply:
    return Reply(
        450,
        "4.7.26",
        f"Service unavailable, message sent over IPv6 [{_compressed(address)}] "
        "must pass either SPF or DKIM validation.",
    )


def ipv6_not_accepted(domain: str) -> Reply:
    return Reply(550, "5.2.1", f"Service unavailable, [{domain}] does not accept email over IPv6.")


# The enhanced status codes of the three replies above, in the rule's order: reports and metrics key by them.
STATUSES = ("4.7.25", "4.7.26", "5.2.1")


# The SMTP-time front door's own replies (RFC 5321 §4.5.3.1.10: a client retries the recipients a
# 452 refused in a later transaction).
def too_many_recipients(limit: int) -> Reply:
    return Reply(452, "4.5.3", f"Too many recipients (at most {limit} per message), send the rest again later.")


def separate_transaction() -> Reply:
    return Reply(452, "4.5.3", "Recipient's IPv6 policy differs from the others, send it again in a separate message.")
