"""``make bench``, phase ``peers``: the milter beside the chain operators run instead (bench/README.md, "Peers").

Three configurations of the same private Postfix, one after the other in one run, against the same
Knot behind the same ``DelayingDnsProxy`` (every query +``--delay-ms``), with the same clients:

- ``alone``: Postfix, no restriction, no milter;
- ``chain``: Postfix's ``reject_unknown_client_hostname``, pyspf-milter (SPF) and OpenDKIM (DKIM
  verification), each configured by bench/README.md's blocks;
- ``ipv6gate``: Postfix + ``ipv6gate milter`` over a unix socket, deciding the whole rule.

Everything runs in a private network and mount namespace (``devstack.private_net``): clients
connect *from* the scenario's IPv6 address (so Postfix looks that address up itself: XCLIENT would
replace the lookup), and every program that reads /etc/resolv.conf reads one naming the proxy.
``measure_peers`` starts ``python -m bench.peers`` there and reads its JSON.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import percentile, summarize
from devstack import world
from devstack.page import blocks

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
TENANTS = '[{"domain": "tenant.test", "ipv6_inbound": true}]'
CONFIGS = ("alone", "chain", "ipv6gate")


@dataclass(frozen=True)
class Scenario:
    name: str
    ip: str
    signed: bool
    expected: dict[str, str]  # configuration -> the reply the session ends with (code, enhanced code)
    after_data: int  # DNS queries in a row the rule still needs after the end of DATA (ipv6gate)


SCENARIOS = (
    # PTR mail.good.test (forward-confirmed); good.test's SPF lists the client; unsigned.
    Scenario("spf-pass", world.GOOD_IP, False, {"alone": "250", "chain": "250", "ipv6gate": "250"}, 0),
    # PTR mail.other.test (forward-confirmed); SPF fails; signed by good.test: the key is the one
    # query still needed after DATA (the milter hears the headers only once the message is in).
    Scenario("dkim-pass", world.OTHER_IP, True, {"alone": "250", "chain": "250", "ipv6gate": "250"}, 1),
    # No PTR: Postfix's restriction and the rule both answer 450 4.7.25 at RCPT.
    Scenario("no-ptr", world.NO_PTR_IP, False, {"alone": "250", "chain": "450 4.7.25", "ipv6gate": "450 4.7.25"}, 0),
)


def config_blocks() -> dict[str, str]:
    """The configuration blocks of bench/README.md, as the bench uses them."""
    found = blocks(README)
    wanted = ("peers-all.cf", "peers-chain.cf", "opendkim.conf", "opendkim-unbound.conf", "pyspf-milter.conf")
    missing = [n for n in wanted if n not in found]
    if missing:
        raise RuntimeError(f"bench/README.md has no block named {', '.join(missing)}")
    return found


# ---------------------------------------------------------------------------------------------- inside
def _session(port: int, sc: Scenario, message: bytes) -> tuple[str, float]:
    """One whole session from the scenario's address; (final reply, ms from the end of DATA to the reply)."""
    with smtplib.SMTP("::1", port, timeout=120, source_address=(sc.ip, 0)) as smtp:
        assert smtp.sock is not None
        smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        smtp.ehlo("mail.good.test")
        smtp.mail("alice@good.test")
        code, text = smtp.rcpt("bob@tenant.test")
        if code >= 400:
            return _reply(code, text), 0.0
        smtp.putcmd("data")
        smtp.getreply()
        smtp.send(message.replace(b"\r\n.", b"\r\n..") + b"\r\n")
        t_eod = time.perf_counter()
        smtp.send(b".\r\n")
        code, text = smtp.getreply()
        return _reply(code, text), (time.perf_counter() - t_eod) * 1000


def _guarded_session(port: int, sc: Scenario, message: bytes) -> tuple[str, float]:
    """``_session``, a refused or broken one counted as its error (a load run reports it, never stops for it)."""
    try:
        return _session(port, sc, message)
    except (OSError, smtplib.SMTPException) as exc:
        code = getattr(exc, "smtp_code", None)
        return (f"error {code}" if code else f"error {exc.__class__.__name__}"), 0.0


def _reply(code: int, text: bytes) -> str:
    if code < 400:
        return str(code)
    words = text.decode(errors="replace").split()
    return f"{code} {words[0]}" if words and words[0][:1].isdigit() else str(code)


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {**summarize(values).to_dict(), "p99": round(percentile(values, 99), 3)}


def _milter_notes(maillog: str, most: int = 5) -> dict[str, int]:
    """What Postfix logged about its milters and their replies (the causes of a 4xx in a load run), counted."""
    notes: Counter[str] = Counter()
    for line in maillog.splitlines():
        if "milter" in line and ("warning" in line or "milter-reject" in line):
            text = line.split("]: ", 1)[-1]
            text = text.split(": ", 1)[1] if text[:1].isalnum() and ": " in text[:16] else text  # queue id
            if text.startswith("milter-reject: ") and "]: " in text:  # the stage and the reply, not the client
                text = f"milter-reject at {text.split()[1]}: {text.split(']: ', 1)[1].split(';')[0]}"
            notes[text[:160]] += 1
    return dict(notes.most_common(most))


def _tree_cpu(roots: list[int]) -> float:
    """CPU seconds (user + system, reaped children included) of ``roots`` and every live descendant."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
            stats[int(entry.name)] = (int(fields[1]), ticks / os.sysconf("SC_CLK_TCK"))
    wanted, total, frontier = set(roots), 0.0, list(roots)
    while frontier:
        pid = frontier.pop()
        total += stats.get(pid, (0, 0.0))[1]
        children = [p for p, (parent, _) in stats.items() if parent == pid and p not in wanted]
        wanted.update(children)
        frontier += children
    return total


@contextmanager
def _configuration(
    name: str, dns: str, workdir: Path, conf: dict[str, str]
) -> Iterator[tuple[Any, Callable[[], list[int]], Callable[[], dict[str, int]]]]:
    """The configuration running: its ``PostfixInstance``, the process ids whose CPU counts, the peers that died."""
    from devstack.peer_milters import OpenDkim, PySpfMilter
    from devstack.postfix import MilterProcess, PostfixInstance

    milters: list[Any] = []
    try:
        lines = conf["peers-all.cf"]
        if name == "chain":
            milters = [
                PySpfMilter(conf["pyspf-milter.conf"]).start(),
                OpenDkim(conf["opendkim.conf"], conf["opendkim-unbound.conf"]).start(),
            ]
            lines += conf["peers-chain.cf"]
        elif name == "ipv6gate":
            tenants = workdir / "tenants.json"
            tenants.write_text(TENANTS)
            env = {"DNS_SERVERS": dns, "DNS_CACHE_SIZE": "0", "AWS_REGION": "eu-west-1", "TENANT_CACHE_SECONDS": "0"}
            milters = [MilterProcess(env, ["--tenants", str(tenants)], unix=True).start()]
        with PostfixInstance(" ".join(m.postfix_address for m in milters), main_cf_lines=lines) as postfix:

            def pids() -> list[int]:
                found = [postfix.master_pid, *(m.pid for m in milters)]
                return [p for p in found if p]

            def died() -> dict[str, int]:  # a peer that died under load: its configuration looks faster
                return {m.name: m.exit_code for m in milters if getattr(m, "exit_code", None) is not None}

            yield postfix, pids, died
    finally:
        for m in milters:
            m.stop()


def _throughput(
    port: int, messages: dict[str, bytes], concurrency: int, sessions: int, pids: Callable[[], list[int]]
) -> dict[str, Any]:
    jobs = [SCENARIOS[i % len(SCENARIOS)] for i in range(sessions)]
    cpu_before = _tree_cpu(pids())
    started = time.perf_counter()
    with cf.ThreadPoolExecutor(max_workers=concurrency) as clients:
        done = list(clients.map(lambda sc: (sc.name, *_guarded_session(port, sc, messages[sc.name])), jobs))
    elapsed = time.perf_counter() - started
    cpu = _tree_cpu(pids()) - cpu_before
    replies = [(name, reply) for name, reply, _ in done]
    return {
        "concurrency": concurrency,
        "sessions": sessions,
        "seconds": round(elapsed, 3),
        "sessions_per_second": round(sessions / elapsed, 1),
        "cpu_seconds": round(cpu, 3),
        "cpu_seconds_per_1000": round(cpu / sessions * 1000, 2),
        "replies": {f"{n}: {r}": c for (n, r), c in sorted(Counter(replies).items())},
        "eod_to_reply_ms": _spread([ms for _, _, ms in done if ms]),  # every session that reached the end of DATA
    }


def _probe_rtt(port: int, samples: int = 10) -> float:
    """Median ms of one query through the proxy (its delay plus loopback and Knot)."""
    import dns.message
    import dns.query

    times = []
    for _ in range(samples):
        t = time.perf_counter()
        dns.query.udp(dns.message.make_query("good.test.", "TXT"), "127.0.0.1", port=port, timeout=5)
        times.append((time.perf_counter() - t) * 1000)
    return sorted(times)[len(times) // 2]


def run_inside(delay_ms: float, iterations: int, runs: list[tuple[int, int]], out: Path) -> None:
    from devstack.dns_proxy import DelayingDnsProxy
    from devstack.knot import KnotServer

    conf = config_blocks()
    keys = world.make_keys()
    plain = world.message()
    messages = {sc.name: world.sign(plain, keys) if sc.signed else plain for sc in SCENARIOS}
    results: dict[str, Any] = {"delay_ms": delay_ms, "configs": {}}
    with tempfile.TemporaryDirectory(prefix="ipv6gate-peers-") as tmp:
        workdir = Path(tmp)
        with (
            KnotServer(world.write_zone_dir(workdir / "zones", keys)) as knot,
            DelayingDnsProxy.front(
                knot, delay=delay_ms / 1000, host="127.0.0.1", port=53, lifetime=1800.0, max_inflight=4096
            ) as proxy,
        ):
            results["query_rtt_ms"] = round(_probe_rtt(proxy.port), 2)
            for name in CONFIGS:
                with _configuration(name, proxy.servers_env, workdir, conf) as (postfix, pids, died):
                    port = postfix.port
                    row: dict[str, Any] = {"latency": {}, "throughput": []}
                    for sc in SCENARIOS:
                        _session(port, sc, messages[sc.name])  # warm-up, not counted
                        proxy.reset_counts()
                        got = [_session(port, sc, messages[sc.name]) for _ in range(iterations)]
                        row["latency"][sc.name] = {
                            "expected": sc.expected[name],
                            "replies": sorted({r for r, _ in got}),
                            "eod_to_reply_ms": _spread([ms for _, ms in got if ms]),
                            "dns_after_data_ms": round(sc.after_data * results["query_rtt_ms"], 2),
                            "queries": {f"{q} {t}": n for (q, t), n in sorted(proxy.counts().items())},
                        }
                    for concurrency, sessions in runs:
                        row["throughput"].append(_throughput(port, messages, concurrency, sessions, pids))
                    row["postfix_milter_notes"] = _milter_notes(postfix.maillog())
                    row["peers_died"] = died()
                    results["configs"][name] = row
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------- outside
def measure_peers(
    workdir: Path, *, delay_ms: float, iterations: int, runs: list[tuple[int, int]], timeout: float = 1200
) -> dict[str, Any]:
    """Run the three configurations in a private namespace; their numbers, with ratios and targets."""
    from devstack.private_net import isolated

    root = HERE.parent
    out = workdir / "peers.json"
    args = ["--delay-ms", str(delay_ms), "--iterations", str(iterations), "--out", str(out)]
    args += [a for c, n in runs for a in ("--run", f"{c}x{n}")]
    command = isolated([sys.executable, "-m", "bench.peers", *args], [sc.ip for sc in SCENARIOS], workdir)
    env = {**os.environ, "PYTHONPATH": f"{root / 'layers' / 'ipv6gate'}:{root}"}
    log = workdir / "peers.log"
    with log.open("wb") as sink:
        child = subprocess.Popen(command, cwd=root, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            code = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGTERM first: the child then stops what it started (Postfix's master daemonizes and
            # would outlive a killed child); SIGKILL only if it does not end.
            child.terminate()
            try:
                code = child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                code = child.wait()
    if code != 0 or not out.exists():
        raise RuntimeError(f"bench.peers failed ({code}): {log.read_text(errors='replace')[-1500:]}")
    return summarize_peers(json.loads(out.read_text(encoding="utf-8")))


def summarize_peers(raw: dict[str, Any]) -> dict[str, Any]:
    """Ratios (ipv6gate / chain) and the two targets, added to the raw numbers."""
    configs = raw["configs"]
    ratios = []
    for ours, theirs in zip(configs["ipv6gate"]["throughput"], configs["chain"]["throughput"], strict=True):
        ratios.append(
            {
                "concurrency": ours["concurrency"],
                "sessions_per_second": round(ours["sessions_per_second"] / theirs["sessions_per_second"], 2),
                "cpu_per_1000": round(ours["cpu_seconds_per_1000"] / theirs["cpu_seconds_per_1000"], 2)
                if theirs["cpu_seconds_per_1000"]
                else None,
            }
        )
    dkim = configs["ipv6gate"]["latency"]["dkim-pass"]
    beyond = dkim["eod_to_reply_ms"]["median"] - dkim["dns_after_data_ms"] if dkim["eod_to_reply_ms"] else None
    raw["ratios"] = ratios
    raw["targets"] = {
        "sessions_per_second": all(r["sessions_per_second"] >= 1 for r in ratios),
        "dkim_beyond_dns_ms": round(beyond, 2) if beyond is not None else None,
        "dkim_within_3ms": beyond is not None and beyond <= 3.0,
    }
    raw["verdicts_ok"] = all(
        row["latency"][sc.name]["replies"] == [sc.expected[name]] for name, row in configs.items() for sc in SCENARIOS
    )
    return raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bench.peers inside its namespace (started by measure_peers)")
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--run", action="append", default=[], help="CONCURRENCYxSESSIONS, repeatable")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    runs = [(int(c), int(n)) for c, n in (r.split("x") for r in args.run)]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # unwind: every server started here is stopped
    run_inside(args.delay_ms, args.iterations, runs, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
