"""DKIM on one large message, in a fresh process: time and peak memory of ``Gate.evaluate``.

Run by ``bench/dkim_size.py`` as ``python bench/dkim_child.py REQUEST.json RESULT.json``. DNS comes
from the bench's zone files (``DNS_ZONE_DIR``: no network, no delay), the message from an in-memory
message store, so what is measured is the gate's work on the message. The message is read into
memory before the measurement starts; the numbers are what the decision needs on top of it:

- ``wall_s``: ``Gate.evaluate`` (PTR, SPF and DKIM; the DKIM check is nearly all of it), the median
  of ``runs`` (3) decisions of the same message (each under its own message id);
- ``dkim_s``: the DKIM check alone (median; ``dkim_s_min`` the fastest), when
  ``ipv6gate.checks.dkim.check_dkim_stream`` is called through the module (it is wrapped with a timer);
  None otherwise;
- ``rss_delta_mb``: how far the resident set rose during a call, at its peak, the largest of the runs
  (``VmHWM`` after the kernel's peak mark was reset to the current RSS; the message already in
  memory is not counted);
- ``tracemalloc_peak_mb``: peak of Python allocations during a second, traced call (slower; its time
  is not reported).
"""

from __future__ import annotations

import functools
import gc
import json
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _status_mb(field: str) -> float | None:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, from /proc."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


def _peak_growth(before: Callable[[], Any]) -> tuple[Any, float | None]:
    """Run ``before()``; how far the resident set rose above where it was, at its highest (MB).

    ``ru_maxrss`` cannot say: after fork and exec it starts at the *parent's* peak. ``VmHWM`` is this
    process's own peak, and is reset to the current RSS first, so earlier peaks do not hide this one.
    """
    reset = _reset_peak()
    rss = _status_mb("VmRSS")
    start_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = before()
    peak = _status_mb("VmHWM")
    if reset and rss is not None and peak is not None:
        return result, max(0.0, peak - rss)
    # No /proc: ru_maxrss, which says nothing when the peak is below an earlier one.
    return result, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - start_peak


def _timed_runs(
    evaluate: Callable[[str], Any], message_ids: list[str], calls: list[float]
) -> tuple[Any, list[float], list[float], list[float]]:
    """Decide each message id in turn (the machine may be busy: a few runs, not one)."""
    walls: list[float] = []
    dkims: list[float] = []
    growths: list[float] = []
    decision: Any = None
    for message_id in message_ids:
        calls.clear()
        gc.collect()
        started = time.perf_counter()
        decision, growth = _peak_growth(functools.partial(evaluate, message_id))
        walls.append(time.perf_counter() - started)
        if calls:
            dkims.append(sum(calls))
        if growth is not None:
            growths.append(growth)
    return decision, walls, dkims, growths


def main(argv: list[str]) -> int:
    request_path, result_path = argv
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p not in ("", here)]

    import ipv6gate.checks.dkim as dkim_check
    from ipv6gate.decision.tenants import Tenant
    from ipv6gate.mail.event import parse_event
    from ipv6gate.ports.memory import InMemoryMessages, InMemoryTenants
    from ipv6gate.settings import Settings
    from ipv6gate.wiring import build_gate

    warm_raw = Path(request["warm_message"]).read_bytes()
    raw = Path(request["message"]).read_bytes()
    runs = int(request.get("runs", 3))
    timed_ids = [f"timed-{i}" for i in range(runs)]
    mails = {}
    for message_id, path in (("warm", "warm_event"), *((t, "event") for t in timed_ids), ("traced", "event")):
        event = json.loads(Path(request[path]).read_text(encoding="utf-8"))
        event["Records"][0]["ses"]["mail"]["messageId"] = message_id
        mails[message_id] = parse_event(event)
    store = InMemoryMessages({"warm": warm_raw, "traced": raw, **dict.fromkeys(timed_ids, raw)})  # one copy
    settings = Settings.from_env({"AWS_REGION": "eu-west-1", "DNS_ZONE_DIR": request["zone_dir"]})
    gate = build_gate(
        settings, tenants=InMemoryTenants([Tenant(request["tenant"], ipv6_inbound=True)]), messages=store, act=False
    )

    calls: list[float] = []
    original: Callable[..., Any] = dkim_check.check_dkim_stream

    def timed_check(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            calls.append(time.perf_counter() - started)

    dkim_check.check_dkim_stream = timed_check

    warm = gate.evaluate(mails["warm"])  # imports, key parsing, first-call costs
    rss_before = _status_mb("VmRSS")
    decision, walls, dkims, growths = _timed_runs(lambda m: gate.evaluate(mails[m]), timed_ids, calls)
    gc.collect()
    tracemalloc.start()
    gate.evaluate(mails["traced"])
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    checks: Any = decision.to_dict()["checks"]
    row: Any = decision.to_dict()["recipients"]
    out = {
        "bytes": len(raw),
        "runs": runs,
        "wall_s": statistics.median(walls),
        "dkim_s": statistics.median(dkims) if dkims else None,
        "dkim_s_min": min(dkims) if dkims else None,
        "dkim_s_all": dkims,
        "rss_before_mb": rss_before,
        "rss_delta_mb": max(growths) if growths else None,
        "tracemalloc_peak_mb": peak / 2**20,
        "dkim": checks["dkim"]["result"],
        "dkim_reason": checks["dkim"]["reason"],
        "warm_dkim": warm.to_dict()["checks"]["dkim"]["result"],  # type: ignore[index]
        "verdict": row[0]["verdict"],
    }
    Path(result_path).write_text(json.dumps(out), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
