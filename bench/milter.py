"""The SMTP-time front door under ``make bench``: real Postfix, ``ipv6gate milter``, Knot behind the proxy.

Two numbers (bench/README.md, "SMTP time"):

- **Reply latency.** Per scenario, sessions one at a time through Postfix with XCLIENT, every DNS query
  delayed by ``--delay-ms`` (the ``DelayingDnsProxy`` of the latency part; ``DNS_CACHE_SIZE=0``). Timed:
  from the end of DATA (``<CRLF>.<CRLF>`` sent) to the reply. The PTR starts at connect and SPF at MAIL
  FROM, so both have answered by then; DKIM's key query starts when its DKIM-Signature header
  arrives, which Postfix sends the milter only after the end of DATA. "Beyond the critical path" is
  that time minus the DNS the verdict still needs after the end of DATA (one query for
  dkim-accept, none for the others). Run over the milter's unix socket and over TCP: with TCP,
  libmilter's header-change packets meet Nagle's algorithm and Postfix's delayed ACK (about 40 ms
  per accepted message).
- **Throughput.** ``--milter-sessions`` sessions by 50 concurrent clients, Knot without delay: whole
  sessions (XCLIENT, MAIL, RCPT, DATA, reply) per second, all three processes on this machine.
"""

from __future__ import annotations

import concurrent.futures as cf
import smtplib
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import summarize
from devstack import world
from devstack.postfix import MilterProcess, PostfixInstance

TENANTS = '[{"domain": "tenant.test", "ipv6_inbound": true}]'


@dataclass(frozen=True)
class SmtpScenario:
    name: str
    ip: str
    mail_from: str
    signed: bool
    expected: str  # the reply code the session must end with
    chain_after_data: int  # DNS queries in a row the verdict still needs after the end of DATA


SCENARIOS = (
    # SPF: good.test's TXT lists the client (1 query, from MAIL FROM); PTR (1, from connect).
    SmtpScenario("spf-accept", world.GOOD_IP, "alice@good.test", False, "250", 0),
    # SPF fails (1); DKIM: the key (1) is asked at its header, which Postfix sends after the end of DATA.
    SmtpScenario("dkim-accept", world.OTHER_IP, "alice@good.test", True, "250", 1),
    # Nothing passes: 4.7.26 once SPF has failed and the message is unsigned.
    SmtpScenario("not-authenticated", world.OTHER_IP, "alice@good.test", False, "450", 0),
)


def _session(port: int, sc: SmtpScenario, message: bytes) -> tuple[str, float, float]:
    """One session; (final reply code, ms from end of DATA to the reply, ms from MAIL FROM to the reply)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        assert smtp.sock is not None
        smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle wait before the final "."
        smtp.ehlo("bench.client")
        smtp.docmd("XCLIENT", f"ADDR=IPV6:{sc.ip} NAME=[UNAVAILABLE] HELO=mail.good.test")
        smtp.ehlo_resp = None
        smtp.ehlo("mail.good.test")
        t_mail = time.perf_counter()
        smtp.mail(sc.mail_from)
        code, _ = smtp.rcpt("bob@tenant.test")
        if code >= 400:
            return str(code), 0.0, (time.perf_counter() - t_mail) * 1000
        smtp.putcmd("data")
        smtp.getreply()
        smtp.send(message.replace(b"\r\n.", b"\r\n..") + b"\r\n")
        t_eod = time.perf_counter()
        smtp.send(b".\r\n")
        code, _ = smtp.getreply()
        done = time.perf_counter()
    return str(code), (done - t_eod) * 1000, (done - t_mail) * 1000


def _stack(servers_env: str, tenants: Path, *, unix: bool = False) -> tuple[MilterProcess, PostfixInstance]:
    env = {"DNS_SERVERS": servers_env, "DNS_CACHE_SIZE": "0", "AWS_REGION": "eu-west-1", "TENANT_CACHE_SECONDS": "0"}
    milter = MilterProcess(env, ["--tenants", str(tenants)], unix=unix).start()
    try:
        return milter, PostfixInstance(milter.postfix_address).start()
    except BaseException:
        milter.stop()
        raise


def measure_milter(
    keys: world.Keys, workdir: Path, *, iterations: int, delay_ms: float, sessions: int
) -> dict[str, Any]:
    """Knot serving the test world's zones (devstack/world.py), a delaying proxy, Postfix, the milter."""
    from devstack.dns_proxy import DelayingDnsProxy
    from devstack.knot import KnotServer

    tenants = workdir / "milter-tenants.json"
    tenants.write_text(TENANTS)
    with KnotServer(world.write_zone_dir(workdir / "milter-zones", keys)) as knot:
        with DelayingDnsProxy.front(knot, delay=delay_ms / 1000, lifetime=1800.0) as proxy:
            latency = _latency(proxy.servers_env, tenants, keys, iterations, delay_ms, unix=True)
            latency |= {
                f"{name} (TCP)": row
                for name, row in _latency(proxy.servers_env, tenants, keys, iterations, delay_ms).items()
                if name != "postfix-alone"
            }
        throughput = _throughput(knot.servers_env, tenants, sessions)
    return {"delay_ms": delay_ms, "latency": latency, "throughput": throughput}


def _latency(
    servers_env: str, tenants: Path, keys: world.Keys, iterations: int, delay_ms: float, *, unix: bool = False
) -> dict[str, Any]:
    plain, signed = world.message(), world.sign(world.message(), keys)
    out: dict[str, Any] = {}
    milter, postfix = _stack(servers_env, tenants, unix=unix)
    try:
        for sc in SCENARIOS:
            _session(postfix.port, sc, signed if sc.signed else plain)  # warm-up, not counted
            eod: list[float] = []
            total: list[float] = []
            codes: set[str] = set()
            for _ in range(iterations):
                code, to_reply, _ = _session(postfix.port, sc, signed if sc.signed else plain)
                codes.add(code)
                eod.append(to_reply)
                total.append(to_reply - sc.chain_after_data * delay_ms)
            out[sc.name] = {
                "expected": sc.expected,
                "replies": sorted(codes),
                "eod_to_reply_ms": summarize(eod).to_dict(),
                "beyond_critical_path_ms": summarize(total).to_dict(),
                "critical_path_ms": sc.chain_after_data * delay_ms,
            }
    finally:
        postfix.stop()
        milter.stop()
    # The same accepted session with no milter at all: what Postfix itself spends after the end of
    # DATA (its queue file is written and synced before it says 250), for comparison.
    with PostfixInstance("") as alone:
        sc = SCENARIOS[0]
        samples = [_session(alone.port, sc, plain) for _ in range(iterations + 1)][1:]
        out["postfix-alone"] = {
            "expected": "250",
            "replies": sorted({code for code, _, _ in samples}),
            "eod_to_reply_ms": summarize([eod for _, eod, _ in samples]).to_dict(),
            "beyond_critical_path_ms": summarize([eod for _, eod, _ in samples]).to_dict(),
            "critical_path_ms": 0.0,
        }
    return out


def _throughput(servers_env: str, tenants: Path, sessions: int) -> dict[str, Any]:
    milter, postfix = _stack(servers_env, tenants, unix=True)
    try:
        sc, plain = SCENARIOS[0], world.message()
        _session(postfix.port, sc, plain)
        started = time.perf_counter()
        with cf.ThreadPoolExecutor(max_workers=50) as clients:
            codes = list(clients.map(lambda _i: _session(postfix.port, sc, plain)[0], range(sessions)))
        elapsed = time.perf_counter() - started
        return {
            "sessions": sessions,
            "concurrent": 50,
            "seconds": round(elapsed, 2),
            "sessions_per_second": round(sessions / elapsed, 1),
            "replies": {c: codes.count(c) for c in sorted(set(codes))},
        }
    finally:
        postfix.stop()
        milter.stop()
