"""Soak of the SMTP-time front door (``make load``): 20,000 SMTP sessions through a real Postfix to
``ipv6gate milter``, hostile ones among them, all on loopback.

What runs, started here and stopped on exit: Knot DNS serving ``devstack/world.py``'s zones, the
milter on a unix socket with tenants from a file, a private Postfix (``devstack/postfix.py``)
allowed enough smtpd processes for the burst. The sessions are ``devstack/smtp_sessions.py``'s
kinds in turn: the six well-behaved ones (spf pass, no PTR, not opted in, neither SPF nor DKIM, DKIM
pass, IPv4) and the hostile ones (sessions that never send DATA and QUIT or drop the connection,
a connection dropped in the body, a slow body, RSET then a message, 101 recipients, garbage bytes).

Order: a warm-up (``--warmup`` sessions), then ``--burst`` sessions open at once (1,000 concurrent:
each stops after RCPT and holds, half then QUIT and half drop the connection; while they hold, one
session of every kind; past ``MILTER_MAX_SESSIONS`` a session hears 421), then the rest by
``--concurrency`` clients, until ``--sessions`` in all. The milter's threads and resident memory
(``/proc/PID/status``) are sampled every second. "start" is after the warm-up and the burst (its
pools, never above the sizes their settings name, have grown to what the burst needed), "end" after
the last session, each after a settling pause (libmilter notices closed sessions within its poll).
Between the two they must stay flat.

Exit status 0 only when every session heard exactly its kind's reply (or, past the milter's session
ceiling ``MILTER_MAX_SESSIONS``, Postfix's ``421``), the milter is still running with no ``milter
callback failed`` line, threads and memory at the end are within a margin of the start, all within
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import world
from devstack.knot import KnotServer
from devstack.postfix import MilterProcess, PostfixInstance
from devstack.smtp_sessions import TENANTS, Kind, Refused, kinds

THREAD_MARGIN = 20  # threads above the start's that the end may show (pools sized by settings, not load)
RSS_MARGIN = 1.5  # the end's resident memory at most this times the start's
CEILING = "refused at the session ceiling (421)"
SETTLE_SECONDS = 15  # libmilter's poll notices closed sessions within this
BURST_HOLD_SECONDS = 20.0  # how long the burst's sessions stay open after RCPT


@dataclass
class Sample:
    threads: int
    rss_kib: int

    @classmethod
    def of(cls, pid: int) -> Sample:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        status = dict(line.split(":", 1) for line in lines if ":" in line)
        return cls(int(status["Threads"]), int(status["VmRSS"].split()[0]))


@dataclass
class Run:
    port: int
    deadline: float
    heard: Counter[tuple[str, str]] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    ran: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def one(self, kind: Kind) -> None:
        try:
            heard = kind.run(self.port)
        except Refused:
            heard = CEILING
        except Exception as exc:  # a session the client could not finish is a wrong reply too
            heard = f"error: {exc.__class__.__name__}: {exc}"[:200]
        with self.lock:
            self.ran += 1
            self.heard[(kind.name, heard)] += 1
            if heard not in (kind.expected, CEILING):
                self.wrong.append(f"{kind.name}: heard {heard!r}, expected {kind.expected!r}")

    def sessions(self, cycle: Iterator[Kind], count: int, concurrency: int) -> None:
        """``count`` sessions by ``concurrency`` clients, kinds in turn, until the deadline."""
        with cf.ThreadPoolExecutor(max_workers=concurrency) as pool:
            pending: set[cf.Future[None]] = set()
            for _ in range(count):
                if time.monotonic() > self.deadline:
                    break
                if len(pending) >= concurrency * 2:
                    _, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                pending.add(pool.submit(self.one, next(cycle)))

    def burst(self, keys: world.Keys, count: int, every_kind: list[Kind]) -> None:
        """``count`` sessions open at once: each stops after RCPT and holds for ``BURST_HOLD_SECONDS``
        (half then QUIT, half drop the connection); while they hold, one session of every kind."""
        held = [k for k in every_kind if k.name.startswith("never DATA")]
        with cf.ThreadPoolExecutor(max_workers=count + len(every_kind)) as pool:
            for i in range(count):
                pool.submit(self.one, held[i % len(held)])
            time.sleep(BURST_HOLD_SECONDS / 2)
            for kind in every_kind:
                pool.submit(self.one, kind)


@contextmanager
def stack(args: argparse.Namespace, keys: world.Keys) -> Iterator[tuple[MilterProcess, PostfixInstance]]:
    with tempfile.TemporaryDirectory(prefix="ipv6gate-soak-") as tmp:
        tenants = Path(tmp) / "tenants.json"
        tenants.write_text(TENANTS)
        (Path(tmp) / "zones").mkdir()
        postfix_extra = {
            "default_process_limit": str(args.burst + 100),
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_event_limit_exceptions": "127.0.0.0/8, [::1]/128",
        }
        with KnotServer(world.write_zone_dir(Path(tmp) / "zones", keys)) as knot:
            env = {"AWS_REGION": "eu-west-1", "DNS_SERVERS": knot.servers_env, "MILTER_AUTHSERV_ID": "mx.soak.test"}
            env |= dict(e.split("=", 1) for e in args.milter_env)
            with (
                MilterProcess(env, ["--tenants", str(tenants)], unix=True) as milter,
                PostfixInstance(milter.postfix_address, extra=postfix_extra) as postfix,
            ):
                yield milter, postfix


def soak(args: argparse.Namespace) -> dict[str, Any]:
    """The run; its figures."""
    started = time.monotonic()
    keys = world.make_keys()
    cycle = itertools.cycle(kinds(keys, hold=0.5, slow_tail=4, seconds_per_byte=0.05))
    all_at_once = kinds(keys, hold=BURST_HOLD_SECONDS)
    with stack(args, keys) as (milter, postfix):
        assert milter._proc is not None
        pid = milter._proc.pid
        run = Run(postfix.port, started + args.max_seconds)
        stop = threading.Event()

        def sampler() -> None:
            while not stop.wait(1.0):
                run.samples.append(Sample.of(pid))

        threading.Thread(target=sampler, daemon=True).start()
        idle = Sample.of(pid)
        run.sessions(cycle, args.warmup, args.concurrency)
        run.burst(keys, args.burst, all_at_once)
        time.sleep(SETTLE_SECONDS)
        start = Sample.of(pid)  # the pools have grown to what the burst needed: from here on, flat
        run.sessions(cycle, args.sessions - args.warmup - args.burst, args.concurrency)
        seconds = time.monotonic() - started
        time.sleep(SETTLE_SECONDS)
        end = Sample.of(pid)
        stop.set()
        alive = milter._proc.poll() is None
        failed = sum(1 for r in milter.records() if r.get("message") == "milter callback failed; message accepted")
        decisions = len(milter.decisions())
    peak = [*run.samples, start, end]
    return {
        "sessions": run.ran,
        "seconds": round(seconds, 1),
        "sessions_per_second": round(run.ran / seconds, 1),
        "wrong_replies": len(run.wrong),
        "wrong_examples": run.wrong[:20],
        "refused_at_ceiling": sum(n for (_, heard), n in run.heard.items() if heard == CEILING),
        "milter_alive": alive,
        "callback_failures": failed,
        "decisions_logged": decisions,
        "threads": {
            "idle": idle.threads,
            "start": start.threads,
            "peak": max(s.threads for s in peak),
            "end": end.threads,
        },
        "rss_mib": {
            "idle": round(idle.rss_kib / 1024, 1),
            "start": round(start.rss_kib / 1024, 1),
            "peak": round(max(s.rss_kib for s in peak) / 1024, 1),
            "end": round(end.rss_kib / 1024, 1),
        },
        "heard": {f"{name}: {heard}": n for (name, heard), n in sorted(run.heard.items())},
    }


def problems(figures: dict[str, Any], wanted: int) -> list[str]:
    found = [f"wrong reply: {w}" for w in figures["wrong_examples"]]
    threads, rss = figures["threads"], figures["rss_mib"]
    if figures["sessions"] < wanted:
        found.append(f"only {figures['sessions']} of {wanted} sessions within --max-seconds")
    if not figures["milter_alive"]:
        found.append("the milter exited")
    if figures["callback_failures"]:
        found.append(f"{figures['callback_failures']} milter callback failure(s)")
    if threads["end"] > threads["start"] + THREAD_MARGIN:
        found.append(f"threads grew: {threads['start']} at the start, {threads['end']} at the end")
    if rss["end"] > rss["start"] * RSS_MARGIN:
        found.append(f"memory grew: {rss['start']} MiB at the start, {rss['end']} MiB at the end")
    return found


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="load.milter_soak", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20_000, help="SMTP sessions in all (default 20000)")
    parser.add_argument("--burst", type=int, default=1000, help="sessions started at once (default 1000)")
    parser.add_argument("--warmup", type=int, default=500, help="sessions before the start sample (default 500)")
    parser.add_argument("--concurrency", type=int, default=50, help="clients after the burst (default 50)")
    parser.add_argument("--max-seconds", type=float, default=1200.0, help="time limit (default 1200)")
    parser.add_argument("--milter-env", action="append", default=[], metavar="NAME=VALUE", help="extra setting")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if not 0 < args.warmup + args.burst <= args.sessions:
        parser.error("--warmup + --burst must be within --sessions")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    figures = soak(args)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    found = problems(figures, args.sessions)
    for problem in found:
        print(f"SOAK FAILED: {problem}", file=sys.stderr)
    if not found:
        print(
            f"soak passed: {figures['sessions']} sessions, 0 wrong replies, milter threads "
            f"{figures['threads']['start']} -> {figures['threads']['end']}, "
            f"RSS {figures['rss_mib']['start']} -> {figures['rss_mib']['end']} MiB"
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
