"""The latency scenarios and their critical paths, counted in DNS round trips ("delays").

A scenario says what each check needs from DNS and how it ends. From that alone follow:

- ``critical_path``: the longest chain of *dependent* queries that the VERDICT needs, when
  independent chains run concurrently and the decision ends as soon as its outcome is certain:
  - IPv4: no check, 0;
  - no usable PTR: the reply is 4.7.25 whatever SPF and DKIM say, so only the PTR chain;
  - PTR ok and some check passes: the PTR chain and the *shortest* passing chain, whichever is longer
    (one pass suffices, the other check's outcome cannot change the verdict);
  - PTR ok and nothing passes: every chain must end (a failure is only certain when all are in).
- ``all_checks_path``: the longest of all chains: what a gate needs that waits for every check.
- ``sequential_path``: PTR, then SPF, then DKIM one after the other, stopping as soon as the verdict is
  certain: what the plain sequential baseline needs.

- ``deciding_queries``: the queries whose answers the verdict waits for: the last query of each chain
  the critical path counts. The *deciding answer* is the latest of their answers: after it the verdict
  is determined (no PTR: the PTR's NXDOMAIN; spf-accept: the PTR and the include's TXT, whichever
  came later; dkim-accept: the PTR and the key). The bench measures the return from there.

Chains: iprev is the PTR query (1), plus the forward A/AAAA query in ``PTR_MODE=fcrdns`` (2). SPF is
the sender's TXT record and then each nested ``include:`` TXT, one after the other (here 2). DKIM is
one key TXT query per signature tried (here 1); an unsigned message needs no DNS (0).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from bench.world import SELECTOR, Sender, sender_ip


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    what: str
    expected: str  # "accept" or the reply's enhanced status code
    ipv6: bool = True
    ptr_ok: bool = True
    spf_chain: int = 2  # record + one include
    spf_pass: bool = True
    dkim_chain: int = 0  # 1 when the message is signed
    dkim_pass: bool = False
    tag: int = 0  # picks the scenario's address range

    def ptr_chain(self, fcrdns: bool) -> int:
        return 2 if fcrdns and self.ptr_ok else 1

    def critical_path(self, fcrdns: bool = False) -> int:
        if not self.ipv6:
            return 0
        ptr = self.ptr_chain(fcrdns)
        if not self.ptr_ok:
            return ptr
        passing = [c for c, ok in ((self.spf_chain, self.spf_pass), (self.dkim_chain, self.dkim_pass)) if ok]
        if passing:
            return max(ptr, min(passing))
        return max(ptr, self.spf_chain, self.dkim_chain)

    def deciding_queries(self, sender: Sender, fcrdns: bool = False) -> frozenset[tuple[str, str]]:
        """``(qname, qtype)`` of the queries whose answers decide (lower-case absolute names, as the proxy logs)."""
        if not self.ipv6:
            return frozenset()
        ptr = (ipaddress.ip_address(sender.ip).reverse_pointer + ".", "PTR")
        if not self.ptr_ok:
            return frozenset({ptr})
        ends = {"spf": (f"_spf.{sender.domain}.", "TXT"), "dkim": (f"{SELECTOR}._domainkey.{sender.domain}.", "TXT")}
        chains = [("spf", self.spf_chain, self.spf_pass), ("dkim", self.dkim_chain, self.dkim_pass)]
        chains = [c for c in chains if c[1] > 0]
        passing = [c for c in chains if c[2]]
        wanted = [min(passing, key=lambda c: c[1])] if passing else chains
        ptr_end = (f"{sender.helo}.", "AAAA") if fcrdns else ptr
        return frozenset({ptr_end, *(ends[name] for name, _length, _ok in wanted)})

    def all_checks_path(self, fcrdns: bool = False) -> int:
        if not self.ipv6:
            return 0
        return max(self.ptr_chain(fcrdns), self.spf_chain, self.dkim_chain)

    def sequential_path(self, fcrdns: bool = False) -> int:
        if not self.ipv6:
            return 0
        total = self.ptr_chain(fcrdns)
        if not self.ptr_ok:
            return total
        total += self.spf_chain
        return total if self.spf_pass else total + self.dkim_chain

    def sender(self, index: int) -> Sender:
        prefix = self.name[0]
        if not self.ipv6:
            return Sender(f"{prefix}{index}.bench.test", f"198.51.100.{index % 250 + 1}", ptr=False)
        return Sender(
            f"{prefix}{index}.bench.test",
            sender_ip(self.tag, index),
            ptr=self.ptr_ok,
            spf_pass=self.spf_pass,
            signed=self.dkim_chain > 0,
        )


SCENARIOS = (
    Scenario(
        "spf-accept",
        "IPv6, PTR, SPF passes through one include:, unsigned",
        "accept",
        tag=0x1,
    ),
    Scenario(
        "dkim-accept",
        "IPv6, PTR, SPF fails (after its include:), DKIM-signed: passes",
        "accept",
        spf_pass=False,
        dkim_chain=1,
        dkim_pass=True,
        tag=0x2,
    ),
    Scenario(
        "no-ptr",
        "IPv6 without PTR (NXDOMAIN); SPF would pass through one include:",
        "4.7.25",
        ptr_ok=False,
        tag=0x3,
    ),
    Scenario("ipv4", "IPv4 client: outside the rule", "accept", ipv6=False, tag=0x4),
)

# Senders outside the latency scenarios (their own names, so they never warm a measured one).
COLD_START_SENDER = Sender("cold.bench.test", sender_ip(0x5, 0))
COLD_START_V4_SENDER = Sender("cold4.bench.test", "198.51.100.251", ptr=False)
CPU_SENDER = Sender("cpu.bench.test", sender_ip(0x6, 0), spf_pass=False, signed=True)
CPU_V4_SENDER = Sender("cpu4.bench.test", "198.51.100.252", ptr=False)
SIZE_SENDER = Sender("size.bench.test", sender_ip(0x7, 0), spf_pass=False, signed=True)


def all_senders(iterations: int) -> list[Sender]:
    """Every sender the run needs: ``iterations + 1`` per scenario (the last one warms up)."""
    senders = [s.sender(i) for s in SCENARIOS for i in range(iterations + 1)]
    return [*senders, COLD_START_SENDER, COLD_START_V4_SENDER, CPU_SENDER, CPU_V4_SENDER, SIZE_SENDER]
