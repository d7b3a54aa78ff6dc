"""Soak test: hostile SES events and raw messages through ``handle_ses_event``, in process.

    .venv/bin/python -m fuzz.soak --events 100000 [--seed 1] [--max-seconds 600] [--profile out.prof]

Each event goes through the Lambda body exactly as in production (``parse_event`` -> ``Gate.evaluate``
-> ``Gate.act`` -> Powertools Logger and Metrics), with the zone-file DNS of the test world plus
hostile zones (``devstack/hostile_zones.py``), in-memory tenants, messages, bounce queue and trace,
and a Logger writing to a null stream that insists on UTF-8 as Lambda's stdout does. Four gates with
different settings share the load (defaults; fcrdns + TEMPERROR_ACTION=reject; tiny caps; a
0.1 s decision budget with failing bounce queue and trace).

Checked for every event: nothing escapes the handler; it returns ``{"disposition": ...}``; the
decision is well formed (``devstack/invariants.py``); the client address is the one SES
wrote; sender-written forgeries (lower Received headers, Authentication-Results, Received-SPF, ...)
do not change the decision. Reported as findings (they fail only with ``--strict``): decisions that
change with thread timing, temperrors the sender can cause at will, HELO values or PTR names
that make the gate check an address of the sender's choosing. Exit status 1 on an escaped exception or a
malformed decision, 2 when ``--max-seconds`` ran out before ``--events``.

Plain pyspf and dkimpy crash on a domain over 255 octets (dnspython's NameTooLong); the report ends
with that shown next to the gate deciding the same inputs (``plain_library_demo``).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import ipaddress
import re
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.name
import dns.rdatatype
from aws_lambda_powertools import Logger, Metrics

from devstack import hostile_zones as zones
from devstack import invariants, world
from fuzz.cases import LONG_DOMAIN, Case, CaseFactory, ses_event
from ipv6gate.decision.tenants import Mode, Tenant
from ipv6gate.dns import Answer, Backend, DnsResolver
from ipv6gate.entrypoints.lambda_gate import handle_ses_event
from ipv6gate.entrypoints.telemetry import log_json
from ipv6gate.evaluation.gate import Gate
from ipv6gate.evaluation.record import Decision
from ipv6gate.mail.event import EventError, Mail, parse_event
from ipv6gate.ports.memory import InMemoryBounceQueue, InMemoryMessages, InMemoryTenants, InMemoryTrace
from ipv6gate.settings import Settings
from ipv6gate.wiring import assemble_gate

ROOT = Path(__file__).resolve().parent.parent


GATE_ENVS: dict[str, dict[str, str]] = {
    "default": {},
    "strict": {
        "PTR_MODE": "fcrdns",
        "TEMPERROR_ACTION": "reject",
        "BOUNCE_MODE": "always",
        "DKIM_MAX_SIGNATURES": "50",
        "DNS_QUERY_LIMIT": "500",
        "SPF_VOID_LOOKUP_LIMIT": "10",
    },
    "tiny": {
        "MESSAGE_MAX_BYTES": "4096",
        "DNS_QUERY_LIMIT": "5",
        "SPF_VOID_LOOKUP_LIMIT": "0",
        "DKIM_MAX_SIGNATURES": "1",
        "TRUSTED_RECEIVERS": "inbound-smtp.*.amazonaws.com,mx.partner.example",
        "BOUNCE_MODE": "never",
    },
    "hurried": {"DECISION_BUDGET_SECONDS": "0.1", "DNS_QUERY_TIMEOUT_SECONDS": "0.05", "BOUNCE_MODE": "always"},
}
GATE_WEIGHTS = {"default": 5, "strict": 2, "tiny": 2, "hurried": 1}
# Temporary results that come from the sender's input, not from a DNS failure: the PTR lookup starved
# by a query cap that the sender's SPF record used up, or an over-size message (it stays over the
# limit on every retry), both fixed since; a crashed check.
SENDER_MADE_TEMPERRORS = re.compile(
    r"^iprev: .*DNS query limit|^dkim: raw message unavailable: .*over the .* limit|check crashed|SPF evaluation error"
)


class NullStream(io.StringIO):
    """Discards text, but as Lambda's stdout would: counting lines it could not encode as UTF-8."""

    def __init__(self) -> None:
        super().__init__()
        self.lines = 0
        self.unencodable = 0

    def write(self, text: str) -> int:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            self.unencodable += 1
        self.lines += text.count("\n")
        return len(text)


class RecordingGate(Gate):
    """The real gate; remembers the last mail and decision so the soak can judge them."""

    last_mail: Mail | None = None
    last: Decision | None = None
    acted: Decision | None = None
    crash: str | None = None

    def reset(self) -> None:
        self.last_mail = self.last = self.acted = None
        self.crash = None

    def evaluate(self, mail: Mail, raw_message: bytes | None = None) -> Decision:
        self.last_mail = mail
        try:
            decision = super().evaluate(mail, raw_message)
        except Exception:
            self.crash = traceback.format_exc(limit=6)
            raise
        self.last = decision
        return decision

    def record(self, decision: Decision) -> Decision:
        self.acted = super().record(decision)
        return self.acted


class Stats:
    def __init__(self) -> None:
        self.events = 0
        self.escaped = 0
        self.malformed = 0
        self.evaluate_crashes = 0
        self.malformed_events = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.checks: collections.Counter[str] = collections.Counter()
        self.temperrors: collections.Counter[str] = collections.Counter()
        self.unexpected_temperrors: collections.Counter[str] = collections.Counter()
        self.forged_source: collections.Counter[str] = collections.Counter()
        self.injection_cases: collections.Counter[str] = collections.Counter()
        self.wrong_source = 0
        self.forgery_mismatch = 0
        self.forgery_compared = 0
        self.nondeterministic = 0
        self.findings: list[str] = []
        self.max_queries: dict[str, int] = collections.defaultdict(int)
        self.examples: list[str] = []

    def example(self, text: str) -> None:
        if len(self.examples) < 12:
            self.examples.append(text)

    def finding(self, text: str) -> None:
        if len(self.findings) < 4:
            self.findings.append(text)

    @property
    def finding_count(self) -> int:
        return self.nondeterministic + sum(self.forged_source.values()) + sum(self.unexpected_temperrors.values())


class MemoBackend:
    """The zone-file backend with its answers remembered (zone data never changes during a soak).

    Like a warm resolver cache in a Lambda container; timeouts are not remembered, they recur.
    Saves the zone backend's wildcard walk for the many random reverse names.
    """

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.answers: dict[tuple[dns.name.Name, dns.rdatatype.RdataType], Answer] = {}

    def lookup(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, timeout: float) -> Answer:
        key = (name, rdtype)
        answer = self.answers.get(key)
        if answer is None:
            answer = self.inner.lookup(name, rdtype, timeout)
            if len(self.answers) < 200_000:
                self.answers[key] = answer
        return answer


def build_gates(keys: world.Keys) -> tuple[dict[str, RecordingGate], InMemoryMessages]:
    backend = MemoBackend(zones.backend(keys))
    tenants = InMemoryTenants(
        [
            Tenant("tenant.test", ipv6_inbound=True),
            Tenant("optout.test", ipv6_inbound=False),
            Tenant("watch.test", ipv6_inbound=True, mode=Mode.MONITOR),
            Tenant("partner.test", ipv6_inbound=True, partner_prefixes=(ipaddress.IPv6Network("2001:db8:1::/48"),)),
            Tenant("xn--bcher-kva.test", ipv6_inbound=True),
        ]
    )
    messages = InMemoryMessages()
    gates: dict[str, RecordingGate] = {}
    for name, overrides in GATE_ENVS.items():
        settings = Settings.from_env({"AWS_REGION": "eu-west-1", **overrides})
        resolver = DnsResolver(
            backend, query_timeout=settings.dns_query_timeout_seconds, query_limit=settings.dns_query_limit
        )
        failing = name == "hurried"
        parts = assemble_gate(
            settings,
            resolver,
            tenants,
            messages,
            bounces=InMemoryBounceQueue(fail_with="queue down" if failing else None),
            trace=InMemoryTrace(fail_with="table throttled" if failing else None),
        )
        gates[name] = RecordingGate(parts.evaluator, parts.messages, parts.recorder)
    return gates, messages


def message_id(case: Case) -> str | None:
    try:
        mid = case.event["Records"][0]["ses"]["mail"]["messageId"]
    except (KeyError, IndexError, TypeError):
        return None
    return mid if isinstance(mid, str) else None


def outcome_of(decision: Decision) -> str:
    parts = sorted(
        {("monitor:" if v.monitor else "") + (v.reply.status if v.reply else "accept") for v in decision.verdicts}
    )
    return f"{decision.disposition:<13} {'/'.join(parts) or '(no recipients)'}"


def fingerprint(decision: Decision) -> tuple[Any, ...]:
    """What the sender gets. Check results are left out: with the early exit, a check the verdict
    did not need is ``skipped`` or finished depending on thread timing."""
    return (
        decision.client_ip,
        decision.disposition,
        tuple((v.recipient, v.verdict, str(v.reply), v.monitor) for v in decision.verdicts),
    )


def judge(case: Case, gate_name: str, gate: RecordingGate, result: Any, stats: Stats) -> None:
    problems = invariants.handler_result_problems(result)
    decision, mail = gate.last, gate.last_mail
    if gate.crash is not None:
        stats.evaluate_crashes += 1
        problems.append(f"Gate.evaluate raised (the handler continued):\n{gate.crash}")
    elif decision is None or mail is None:
        stats.malformed_events += 1
        stats.outcomes["(not an SES event) CONTINUE"] += 1
        if "malformed" not in case.tags:
            problems.append("a well-formed event was refused as malformed")
    else:
        problems += invariants.decision_problems(decision, mail, query_limit=gate.settings.dns_query_limit)
        final = gate.acted or decision
        if isinstance(result, dict) and result.get("disposition") != final.disposition:
            problems.append(f"handler said {result.get('disposition')}, the decision was {final.disposition}")
        stats.outcomes[outcome_of(final)] += 1
        stats.max_queries[gate_name] = max(stats.max_queries[gate_name], decision.dns_queries)
        for check in (decision.checks.iprev, decision.checks.spf, decision.checks.dkim):
            stats.checks[f"{check.method}={check.result.value}"] += 1
            if check.temporary:
                key = f"{check.method}: {_normalise(check.reason)}"
                stats.temperrors[key] += 1
                if SENDER_MADE_TEMPERRORS.search(f"{check.method}: {check.reason}"):
                    stats.unexpected_temperrors[key] += 1
        judge_source(case, decision, stats, problems)
        if case.clean_event is not None and case.check_source and gate_name != "hurried":
            judge_forgeries(case, gate, decision, stats)
    if problems:
        stats.malformed += 1
        stats.example(f"[{case.kind} via {gate_name}] " + "; ".join(problems)[:1500])


def judge_source(case: Case, decision: Decision, stats: Stats, problems: list[str]) -> None:
    if not case.check_source:
        return
    got = decision.client_ip
    if case.injected:
        stats.injection_cases[case.injected] += 1
        if got is not None and got != case.expected_ip:
            stats.forged_source[case.injected] += 1
        return
    if case.expected_ip is None:
        if got is not None:
            problems.append(f"client {got} read from an untrusted Received header")
    elif got is not None and got != case.expected_ip:
        stats.wrong_source += 1
        problems.append(f"client read as {got}, SES saw {case.expected_ip}")
    elif got is None and case.strict_parse:
        stats.wrong_source += 1
        problems.append(f"SES's plain Received header for {case.expected_ip} was not understood: {decision.source}")


def judge_forgeries(case: Case, gate: RecordingGate, decision: Decision, stats: Stats) -> None:
    """The same event without the sender's forgeries must get the same answer.

    When it does not, both are decided again a few times: if the answers overlap, the difference is
    thread timing (counted as nondeterministic, a finding); if they never meet, the forgeries changed
    the decision (malformed).
    """
    try:
        clean = parse_event(case.clean_event)
    except EventError:
        return
    stats.forgery_compared += 1
    first = fingerprint(decision)
    if fingerprint(gate.evaluate(clean)) == first:
        return
    original = parse_event(case.event)
    with_forgeries = {first, *(fingerprint(gate.evaluate(original)) for _ in range(8))}
    without = {fingerprint(gate.evaluate(clean)) for _ in range(8)}
    if with_forgeries & without or len(with_forgeries) > 1 or len(without) > 1:
        stats.nondeterministic += 1
        stats.finding(f"[{case.kind}] same event, different verdicts (thread timing): {_brief(decision)}")
    else:
        stats.forgery_mismatch += 1
        stats.malformed += 1
        stats.example(f"[{case.kind}] sender-written forgeries changed the decision: {_brief(decision)}")


def _brief(decision: Decision) -> str:
    d = decision.to_dict()
    return str({k: d[k] for k in ("client_ip", "helo", "disposition", "recipients", "checks", "dns_queries")})[:900]


def _normalise(reason: str) -> str:
    text = re.sub(r"\b[0-9a-f]*:[0-9a-f:.]+\b|\b\d+(\.\d+)*\b", "#", reason)
    text = re.sub(r"'[^']*'|\S+\.test\.?|\S+\.arpa\.?", "…", text)
    return text[:90]


@dataclass
class Rig:
    gates: dict[str, RecordingGate]
    messages: InMemoryMessages
    logger: Logger
    metrics: Metrics
    null: NullStream
    stats: Stats


def soak_one(rig: Rig, case: Case, gate_name: str) -> None:
    gates, messages, metrics, stats = rig.gates, rig.messages, rig.metrics, rig.stats
    gate = gates[gate_name]
    mid = message_id(case)
    if mid is not None and case.raw is not None:
        messages.messages[mid] = case.raw
    gate.reset()
    metrics.clear_metrics()
    try:
        with contextlib.redirect_stdout(rig.null):  # Metrics prints EMF blobs when 100 values pile up
            result = handle_ses_event(case.event, gate, rig.logger, metrics)
    except Exception:
        stats.escaped += 1
        stats.example(f"[{case.kind} via {gate_name}] ESCAPED:\n{traceback.format_exc(limit=8)}")
    else:
        judge(case, gate_name, gate, result, stats)
    if mid is not None:
        messages.messages.pop(mid, None)
    for g in gates.values():  # in-memory side effects would grow without bound
        if isinstance(g.evaluator.bounces, InMemoryBounceQueue):
            g.evaluator.bounces.requests.clear()
        if isinstance(g.recorder.trace, InMemoryTrace):
            g.recorder.trace.records.clear()


def run(args: argparse.Namespace) -> int:
    import random

    out = sys.stdout
    started = time.monotonic()
    keys = world.make_keys()
    rng = random.Random(args.seed)  # noqa: S311 (reproducible test data, not secrets)
    factory = CaseFactory(rng, keys)
    gates, messages = build_gates(keys)
    names = list(GATE_WEIGHTS)
    weights = [GATE_WEIGHTS[n] for n in names]
    null = NullStream()
    # The function's own serializer (ASCII JSON), so what is counted below is what Lambda would lose.
    logger = Logger(service="ipv6gate-soak", stream=null, level="INFO", json_serializer=log_json)
    metrics = Metrics(namespace="IPv6GateSoak", service="ipv6gate-soak")
    stats = Stats()
    rig = Rig(gates, messages, logger, metrics, null, stats)
    setup = time.monotonic() - started
    print(f"soak: seed {args.seed}, {args.events} events, setup {setup:.1f}s", file=out, flush=True)
    loop_start = time.monotonic()
    deadline = loop_start + args.max_seconds
    stopped_early = False
    for n in range(1, args.events + 1):
        gate_name = rng.choices(names, weights)[0]
        soak_one(rig, factory.make(), gate_name)
        stats.events = n
        if n % args.progress == 0:
            rate = n / (time.monotonic() - loop_start)
            print(
                f"  {n:>7} events  {rate:7.0f}/s  escaped {stats.escaped}  malformed {stats.malformed}",
                file=out,
                flush=True,
            )
        if time.monotonic() > deadline and n < args.events:
            stopped_early = True
            break
    elapsed = time.monotonic() - loop_start
    report(stats, elapsed, null, out)
    if args.plain_demo:
        plain_library_demo(gates["default"], logger, metrics, out)
    status = 0
    if stats.escaped or stats.malformed or (args.strict and stats.finding_count):
        status = 1
    elif stopped_early:
        print(f"stopped by --max-seconds={args.max_seconds} after {stats.events} of {args.events} events", file=out)
        status = 2
    print(f"soak: {'FAILED' if status else 'passed'} (exit {status})", file=out)
    return status


def report(stats: Stats, elapsed: float, null: NullStream, out: Any) -> None:
    def show(title: str, counter: collections.Counter[str], limit: int = 25) -> None:
        print(f"{title}:", file=out)
        for key, count in counter.most_common(limit):
            print(f"  {count:>8}  {key}", file=out)

    show("outcomes (disposition, replies)", stats.outcomes)
    show("check results", stats.checks, 40)
    show("temperror reasons", stats.temperrors, 15)
    for text in stats.examples:
        print("--- malformed or escaped:\n" + text, file=out)
    injections = sum(stats.injection_cases.values())
    lines = [
        "",
        "FINDINGS (well-formed answers that are wrong; --strict fails on them):",
        f"  decisions that change with thread timing:       {stats.nondeterministic}"
        f" of {stats.forgery_compared} re-decided",
        f"  temperrors made by the sender (no DNS failure): {sum(stats.unexpected_temperrors.values())}",
        *(f"    {count:>6}  {key}" for key, count in stats.unexpected_temperrors.most_common(5)),
        f"  HELO/PTR injections that chose the checked address: {sum(stats.forged_source.values())} of {injections}",
    ]
    if stats.injection_cases:
        kinds = ", ".join(f"{k} {stats.forged_source[k]}/{n}" for k, n in sorted(stats.injection_cases.items()))
        lines.append(f"    by separator: {kinds}")
    lines += [f"    e.g. {text}" for text in stats.findings]
    lines += [
        "",
        "SUMMARY",
        f"  events:                      {stats.events}",
        f"  exceptions escaped:          {stats.escaped}",
        f"  malformed decisions:         {stats.malformed} (Gate.evaluate raised: {stats.evaluate_crashes};"
        f" wrong client address: {stats.wrong_source}; changed by forgeries: {stats.forgery_mismatch})",
        f"  events refused as malformed: {stats.malformed_events}",
        f"  runtime:                     {elapsed:.1f}s, {stats.events / elapsed:.0f} events/s",
        f"  log lines:                   {null.lines}"
        f" ({null.unencodable} not encodable as UTF-8: lost on Lambda's stdout)",
        f"  most DNS queries/decision:   {dict(stats.max_queries)}",
    ]
    print("\n".join(lines), file=out)


_PLAIN = """
import spf, dkim
d = {domain!r}
what = "  plain pyspf  check2(s='alice@<304 octets>'):"
try:
    print(what, spf.check2(i='2001:db8:1::25', s='alice@' + d, h='mail.good.test', querytime=5))
except Exception as e:
    print(what, "raised", type(e).__module__ + '.' + type(e).__name__)
msg = (b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=" + d.encode() + b"; s=rsa; h=from; "
       b"bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\\r\\nFrom: a@good.test\\r\\n\\r\\nHi.\\r\\n")
try:
    print("  plain dkimpy verify(d=<304 octets>):", dkim.verify(msg))
except Exception as e:
    print("  plain dkimpy verify(d=<304 octets>): raised", type(e).__module__ + '.' + type(e).__name__)
"""


def plain_library_demo(gate: RecordingGate, logger: Logger, metrics: Metrics, out: Any) -> None:
    """pyspf and dkimpy used plainly (own DNS) crash on a 304-octet domain; the gate decides the same inputs."""
    print("over-long domains (304 octets), plain libraries vs the gate:", file=out, flush=True)
    code = _PLAIN.format(domain=LONG_DOMAIN)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    print(done.stdout.rstrip() or done.stderr.strip()[-300:], file=out)
    raw = (
        b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=" + LONG_DOMAIN.encode() + b"; s=rsa; h=from; "
        b"bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n" + world.message()
    )
    headers = [
        ("Received", f"from mail.good.test (x [{world.GOOD_IP}]) by {world.RECEIVER} with SMTP id m; date"),
        ("DKIM-Signature", f"v=1; a=rsa-sha256; d={LONG_DOMAIN}; s=rsa"),
    ]
    event = ses_event(
        headers=headers, mail_from="alice@" + LONG_DOMAIN, recipients=["bob@tenant.test"], message_id="plain-demo"
    )
    assert isinstance(gate.messages, InMemoryMessages)
    gate.messages.messages["plain-demo"] = raw
    gate.reset()
    with contextlib.redirect_stdout(NullStream()):
        result = handle_ses_event(event, gate, logger, metrics)
    decision = gate.last
    assert decision is not None
    checks = decision.checks
    print(
        f"  the gate, same MAIL FROM and d=: {result}; spf={checks.spf.result.value} "
        f"({checks.spf.reason[:40]}…), dkim={checks.dkim.result.value} ({checks.dkim.reason[:60]})",
        file=out,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--progress", type=int, default=10_000, help="print a progress line every N events")
    parser.add_argument("--profile", metavar="FILE", help="run under cProfile; write stats to FILE, print the top")
    parser.add_argument("--no-plain-demo", dest="plain_demo", action="store_false")
    parser.add_argument("--strict", action="store_true", help="also fail on findings (wrong but well-formed answers)")
    args = parser.parse_args(argv)
    if not args.profile:
        return run(args)
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    status: int = profiler.runcall(run, args)
    profiler.dump_stats(args.profile)
    pstats.Stats(args.profile).sort_stats("cumulative").print_stats(30)
    return status


if __name__ == "__main__":
    sys.exit(main())
