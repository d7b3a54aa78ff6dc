"""Soak of the SMTP-time front door (``make load``): 20,000 SMTP sessions through a real Postfix to
``ipv6gate milter``, hostile ones among them, all on loopback.

What runs, started here and stopped on exit: Knot DNS serving ``tests/support/world.py``'s zones, the
milter on a unix socket with tenants from a file, a private Postfix (``tests/support/postfix.py``)
allowed enough smtpd processes for the burst. The sessions are ``tests/support/smtp_sessions.py``'s
kinds in turn: the six well-behaved ones (spf pass, no PTR, not opted in, neither SPF nor DKIM, DKIM
pass, IPv4) and the hostile ones (sessions that never send DATA and QUIT or drop the connection,
a connection dropped in the body, a slow body, RSET then a message, 101 recipients, garbage bytes).

Order: a warm-up (``--warmup`` sessions), then ``--burst`` sessions all at once (1,000 concurrent),
then the rest by ``--concurrency`` clients, until ``--sessions`` in all. The milter's threads and
resident memory (``/proc/PID/status``) are sampled every second; "start" is after the warm-up, "end"
after the last session and a settling pause (libmilter notices closed sessions within its poll).

Exit status 0 only when every session heard exactly its kind's reply (or, past the milter's session
ceiling, its temporary refusal ``451 4.3.2``), the milter is still running with no ``milter callback
failed`` line, threads and memory at the end are within a margin of the start, all within
``--max-seconds``; 1 otherwise.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import itertools
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import world
from tests.support.knot import KnotServer
from tests.support.postfix import MilterProcess, PostfixInstance
from tests.support.smtp_sessions import TENANTS, Kind, kinds

THREAD_MARGIN = 20  # threads above the start's that the end may show (pools sized by settings, not load)
RSS_MARGIN = 1.5  # the end's resident memory at most this times the start's


@dataclass
class Sample:
    seconds: float
    threads: int
    rss_kib: int


@dataclass
class Run:
    heard: Counter[tuple[str, str]] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def one(self, kind: Kind, port: int) -> None:
        try:
            heard = kind.run(port)
        except Exception as exc:  # a session the client could not finish is a wrong reply too
            heard = f"error: {exc.__class__.__name__}: {exc}"[:200]
        with self.lock:
            self.heard[(kind.name, heard)] += 1
            if heard != kind.expected and not heard.startswith(CEILING):
                self.wrong.append(f"{kind.name}: heard {heard!r}, expected {kind.expected!r}")


CEILING = "ceiling "  # what smtp_sessions reports for a session refused at the milter's session ceiling


def sample(pid: int, started: float) -> Sample:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return Sample(round(time.monotonic() - started, 1), int(status["Threads"]), int(status["VmRSS"].split()[0]))


def sessions(run: Run, all_kinds: list[Kind], port: int, count: int, concurrency: int, deadline: float) -> int:
    """``count`` sessions by ``concurrency`` clients, kinds in turn; how many ran before the deadline."""
    cycle = itertools.cycle(all_kinds)
    done = 0
    with cf.ThreadPoolExecutor(max_workers=concurrency) as pool:
        pending: set[cf.Future[None]] = set()
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            if len(pending) >= concurrency * 2:
                finished, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                done += len(finished)
            pending.add(pool.submit(run.one, next(cycle), port))
        cf.wait(pending)
        done += len(pending)
    return done


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="load.milter_soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20_000, help="SMTP sessions in all (default 20000)")
    parser.add_argument("--burst", type=int, default=1000, help="sessions started at once (default 1000)")
    parser.add_argument("--warmup", type=int, default=500, help="sessions before the start sample (default 500)")
    parser.add_argument("--concurrency", type=int, default=50, help="clients after the burst (default 50)")
    parser.add_argument("--max-seconds", type=float, default=1200.0, help="time limit (default 1200)")
    parser.add_argument("--milter-env", action="append", default=[], metavar="NAME=VALUE", help="extra setting")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if not args.warmup + args.burst <= args.sessions:
        parser.error("--warmup + --burst must not exceed --sessions")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    started = time.monotonic()
    deadline = started + args.max_seconds
    keys = world.make_keys()
    all_kinds = kinds(keys, hold=0.5, slow_tail=4, seconds_per_byte=0.05)
    run = Run()
    with tempfile.TemporaryDirectory(prefix="ipv6gate-soak-") as tmp:
        tenants = Path(tmp) / "tenants.json"
        tenants.write_text(TENANTS)
        (Path(tmp) / "zones").mkdir()
        zones = world.write_zone_dir(Path(tmp) / "zones", keys)
        postfix_extra = {
            "default_process_limit": str(args.burst + 100),
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_event_limit_exceptions": "127.0.0.0/8, [::1]/128",
        }
        with KnotServer(zones) as knot:
            env = {"AWS_REGION": "eu-west-1", "DNS_SERVERS": knot.servers_env, "MILTER_AUTHSERV_ID": "mx.soak.test"}
            env |= dict(e.split("=", 1) for e in args.milter_env)
            with (
                MilterProcess(env, ["--tenants", str(tenants)], unix=True) as milter,
                PostfixInstance(milter.postfix_address, extra=postfix_extra) as postfix,
            ):
                assert milter._proc is not None
                pid = milter._proc.pid
                stop = threading.Event()

                def sampler() -> None:
                    while not stop.wait(1.0):
                        run.samples.append(sample(pid, started))

                threading.Thread(target=sampler, daemon=True).start()
                first = sample(pid, started)
                ran = sessions(run, all_kinds, postfix.port, args.warmup, args.concurrency, deadline)
                start = sample(pid, started)
                ran += sessions(run, all_kinds, postfix.port, args.burst, args.burst, deadline)
                ran += sessions(
                    run, all_kinds, postfix.port, args.sessions - args.warmup - args.burst, args.concurrency, deadline
                )
                soak_seconds = time.monotonic() - started
                time.sleep(15)  # libmilter's poll notices the last closed sessions
                end = sample(pid, started)
                stop.set()
                alive = milter._proc.poll() is None
                failed = sum(
                    1 for r in milter.records() if r.get("message") == "milter callback failed; message accepted"
                )
                decisions = len(milter.decisions())
    peak = max(run.samples, key=lambda s: s.threads, default=end)
    peak_rss = max((s.rss_kib for s in run.samples), default=end.rss_kib)
    figures = {
        "sessions": ran,
        "seconds": round(soak_seconds, 1),
        "sessions_per_second": round(ran / soak_seconds, 1),
        "wrong_replies": len(run.wrong),
        "refused_at_ceiling": sum(n for (_, heard), n in run.heard.items() if heard.startswith(CEILING)),
        "milter_alive": alive,
        "callback_failures": failed,
        "decisions_logged": decisions,
        "threads": {"idle": first.threads, "start": start.threads, "peak": peak.threads, "end": end.threads},
        "rss_mib": {
            "idle": round(first.rss_kib / 1024, 1),
            "start": round(start.rss_kib / 1024, 1),
            "peak": round(peak_rss / 1024, 1),
            "end": round(end.rss_kib / 1024, 1),
        },
        "heard": {f"{name}: {heard}": n for (name, heard), n in sorted(run.heard.items())},
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    problems = list(run.wrong[:20])
    if ran < args.sessions:
        problems.append(f"only {ran} of {args.sessions} sessions within --max-seconds {args.max_seconds:.0f}")
    if not alive:
        problems.append("the milter exited")
    if failed:
        problems.append(f"{failed} milter callback failure(s)")
    if end.threads > start.threads + THREAD_MARGIN:
        problems.append(f"threads grew: {start.threads} at the start, {end.threads} at the end")
    if end.rss_kib > start.rss_kib * RSS_MARGIN:
        problems.append(f"memory grew: {start.rss_kib} KiB at the start, {end.rss_kib} KiB at the end")
    for problem in problems:
        print(f"SOAK FAILED: {problem}", file=sys.stderr)
    if not problems:
        print(
            f"soak passed: {ran} sessions, 0 wrong replies, milter threads {start.threads} -> {end.threads}, "
            f"RSS {figures['rss_mib']['start']} -> {figures['rss_mib']['end']} MiB"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
