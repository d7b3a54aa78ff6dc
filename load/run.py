"""Load test (``make load``): many decisions through the SAM gate function, all on loopback.

What runs, all started here and stopped on exit (also on an error, a Ctrl-C or the time limit):

- moto server with the template's tables, bucket and queues (``devstack/moto_stack.MotoStack``),
  seeded with the load test's tenants (``load/scenarios.py``) and, for the DKIM scenario, one raw
  message per event where SES's S3 action would have put it;
- Knot DNS serving ``devstack/world.py``'s zones, behind ``devstack/dns_proxy.py``'s
  ``DelayingDnsProxy``: every query is delayed a little (``--dns-delay``), the PTR of one client
  address is never answered (a timeout), one sender domain answers SERVFAIL;
- ``--workers`` Lambda "containers": each is the handler that ``template.yaml`` names
  (``functions/gate/app.py``), imported in a fresh process with the template's environment, exactly
  as ``make demo`` runs it (``sam_local.invoke``), and called with ``--batch`` events in turn
  (a cold start, then warm calls); then the next container takes the next batch.

The gate has its real adapters: DynamoDB tenants, S3 message store, SQS bounce queue and DynamoDB
trace (TRACE_TABLE and BOUNCE_QUEUE_URL set from the template). Environment as the template's
defaults, except DNS_SERVERS (the proxy) and DNS_QUERY_TIMEOUT_SECONDS (``--dns-timeout``, so the
timeout scenario costs half a second instead of two).

Every invocation is checked: no exception, no ERROR log line, a valid disposition, one decision log
line for the right message and recipients, no note of a failed trace write, bounce or tenant
lookup, and the outcome its scenario must have. Afterwards every decision must be in the trace
table (one ``sk = decision`` item per IPv6 message, and no other items than those decisions wrote:
IPv4 mail is not recorded, as README's "Message trace" says) and
every bounce the gate queued must have reached the queue, exactly once (a consumer takes them off
the queue during the run, as the bouncer would). Prints throughput, latency percentiles and the
outcome histogram; exit status 0 only when all ``--decisions`` were made without a single error
within ``--max-seconds``; 1 otherwise; 2 when the local stack could not be started.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from devstack import sam_local, sam_template, world
from devstack.dns_proxy import DelayingDnsProxy
from devstack.moto_stack import MotoStack
from load import scenarios
from load.scenarios import Item

REPO = Path(__file__).resolve().parents[1]


DISPOSITIONS = {"CONTINUE", "STOP_RULE_SET"}
RESULTS = {"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "policy", "skipped"}
BAD_NOTES = ("decision not recorded", "bounce could not be queued", "tenant lookup failed")
BAD_METRICS = ("DecisionErrors", "MalformedEvents", "TraceWriteFailures", "BounceQueueFailures", "TenantLookupFailures")
QUEUED_BOUNCE_ACTIONS = {"send", "defer"}  # Decision.bounce_request(): anything but suppress


class Watchdog(BaseException):
    """The run went past its hard limit; raised in the main thread so everything is stopped."""


@dataclass
class Outcome:
    """What one invocation did, once checked."""

    item: Item
    duration_ms: float
    errors: list[str]
    outcome: str = ""
    queued_bounce: bool = False
    traced: bool = False  # the trace must hold it: IPv6 (and unknown-client) decisions; IPv4 is not recorded


@dataclass
class Results:
    outcomes: list[Outcome] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # containers that died or were killed
    cold_starts_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


# -- checking one invocation ------------------------------------------------------------------------------


def check(item: Item, inv: sam_local.Invocation) -> Outcome:
    errors: list[str] = []
    out = Outcome(item, inv.duration_ms, errors)
    if inv.error:
        errors.append("handler raised: " + inv.error.strip().splitlines()[-1])
    result = inv.result
    disposition = result.get("disposition") if isinstance(result, dict) else None
    if not isinstance(result, dict) or set(result) != {"disposition"} or disposition not in DISPOSITIONS:
        errors.append(f"malformed answer to SES: {result!r}")
    for record in inv.logs():
        if str(record.get("level")).upper() in ("ERROR", "CRITICAL"):
            errors.append(f"{record['level']} log line: {record.get('message')}")
    metrics = inv.metrics()
    errors += [f"metric {name}" for name in BAD_METRICS if metrics.get(name)]
    decisions = inv.logs("decision")
    if len(decisions) != 1:
        errors.append(f"{len(decisions)} decision log lines, expected 1")
        return out
    decision = decisions[0].get("decision")
    if not isinstance(decision, dict):
        errors.append("decision log line without a decision")
        return out
    errors += malformed(decision, item, disposition)
    out.outcome = scenarios.outcome(decision, str(disposition))
    if out.outcome != item.scenario.outcome:
        errors.append(f"outcome {out.outcome!r}, scenario {item.scenario.name} must give {item.scenario.outcome!r}")
    bounce = decision.get("bounce")
    out.queued_bounce = isinstance(bounce, dict) and bounce.get("action") in QUEUED_BOUNCE_ACTIONS
    out.traced = decision.get("ip_version") != 4  # README, "Message trace"
    return out


def malformed(decision: dict[str, Any], item: Item, disposition: object) -> list[str]:
    """What is wrong with the decision's shape (empty when nothing is)."""
    errors = []
    if decision.get("message_id") != item.message_id:
        errors.append(f"decision for {decision.get('message_id')!r}, not {item.message_id!r}")
    if decision.get("disposition") != disposition:
        errors.append(f"logged disposition {decision.get('disposition')!r} != returned {disposition!r}")
    rows = decision.get("recipients")
    if not isinstance(rows, list) or sorted(str(r.get("recipient")) for r in rows) != sorted(item.scenario.recipients):
        errors.append(f"recipients {rows!r} != {list(item.scenario.recipients)}")
    else:
        for row in rows:
            if row.get("verdict") not in ("accept", "reject"):
                errors.append(f"verdict {row.get('verdict')!r} for {row.get('recipient')}")
            if row.get("verdict") == "reject" and not row.get("reply"):
                errors.append(f"rejected {row.get('recipient')} without a reply")
    checks = decision.get("checks")
    if not isinstance(checks, dict) or set(checks) != {"iprev", "spf", "dkim"}:
        errors.append(f"checks {checks!r}")
    else:
        errors += [f"{m} result {c.get('result')!r}" for m, c in checks.items() if c.get("result") not in RESULTS]
    for note in decision.get("notes") or []:
        if str(note).startswith(BAD_NOTES):
            errors.append(f"note: {note}")
    return errors


# -- running the containers -------------------------------------------------------------------------------


def run_batches(
    spec: sam_template.FunctionSpec,
    env: dict[str, str],
    batches: Sequence[Sequence[Item]],
    *,
    workers: int,
    deadline: float,
    log: Any,
) -> Results:
    results = Results()
    queue: Iterator[tuple[int, Sequence[Item]]] = iter(enumerate(batches))
    take = threading.Lock()
    done = Counter[str]()

    def worker() -> None:
        while True:
            with take:
                nxt = next(queue, None)
            if nxt is None:
                return
            number, batch = nxt
            remaining = deadline - time.monotonic()
            if remaining < 5:
                with results.lock:
                    results.failures.append(f"batch {number}: not started, --max-seconds reached")
                continue
            events = [(item.message_id, item.event) for item in batch]
            try:
                run = sam_local.invoke(spec, env, events, timeout=remaining)
            except subprocess.TimeoutExpired:
                with results.lock:
                    results.failures.append(f"batch {number}: container killed at --max-seconds")
                continue
            except (RuntimeError, OSError, ValueError) as exc:
                with results.lock:
                    results.failures.append(f"batch {number}: container failed: {exc}")
                continue
            by_id = {item.message_id: item for item in batch}
            checked = [check(by_id[inv.name], inv) for inv in run.invocations]
            with results.lock:
                if run.init_error:
                    results.failures.append(f"batch {number}: cold start failed: {run.init_error.splitlines()[-1]}")
                if len(run.invocations) != len(batch):
                    results.failures.append(f"batch {number}: {len(run.invocations)} of {len(batch)} invocations")
                results.cold_starts_ms.append(run.init_ms)
                results.outcomes += checked
                done["decisions"] += len(checked)
                total = done["decisions"]
            log(f"  container {number + 1}/{len(batches)}: {len(checked)} decisions ({total} in all)")

    with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load-container") as pool:
        for future in [pool.submit(worker) for _ in range(workers)]:
            future.result()
    return results


# -- what the gate left behind ---------------------------------------------------------------------------------


def traced_message_ids(stack: MotoStack, table: str, message_ids: Sequence[str]) -> tuple[Counter[str], int]:
    """The ``sk = decision`` items found for ``message_ids`` (by key), and how many items the table holds.

    Read by key (BatchGetItem) rather than with a filtered Scan: moto's Scan re-reads the table from
    the start for every page, which takes minutes for the ~40,000 items of a run.
    """
    from ipv6gate.aws.items import plain, wire

    ddb = stack.client("dynamodb")
    found: Counter[str] = Counter()
    for start in range(0, len(message_ids), 100):  # BatchGetItem's limit
        keys = [wire({"pk": f"msg#{m}", "sk": "decision"}) for m in message_ids[start : start + 100]]
        request: dict[str, Any] = {table: {"Keys": keys, "ProjectionExpression": "pk, sk"}}
        while request:
            page = ddb.batch_get_item(RequestItems=request)
            for item in map(plain, page.get("Responses", {}).get(table, [])):
                if item["sk"] == "decision":
                    found[str(item["pk"]).removeprefix("msg#")] += 1
            request = page.get("UnprocessedKeys") or {}
    total = int(ddb.describe_table(TableName=table)["Table"]["ItemCount"])
    return found, total


def verify_trace(stack: MotoStack, table: str, decided: Sequence[Outcome]) -> tuple[list[str], dict[str, int]]:
    """What is wrong with the trace the decisions left (nothing: an empty list), and its counts."""
    problems: list[str] = []
    want_traced = Counter(o.item.message_id for o in decided if o.traced)
    traced, trace_total = traced_message_ids(stack, table, sorted(want_traced))
    if traced != want_traced:
        missing = want_traced - traced
        problems.append(f"trace table: {sum(missing.values())} of {len(want_traced)} decisions not recorded")
    days = domain_days(stack, table)
    want_domains = {d for o in decided if o.traced for d in recipient_domains(o.item)}
    if {domain for _, domain in days} != want_domains:
        problems.append(f"domain-per-day items list {len(days)} (day, domain), not the {len(want_domains)} domains")
    want_total = sum(trace_items_per_decision(o.item) for o in decided if o.traced) + len(days)
    if trace_total != want_total:
        problems.append(f"trace table holds {trace_total} items, the decisions made write {want_total}")
    counts = {
        "trace_decision_items": sum(traced.values()),
        "trace_decisions_expected": sum(want_traced.values()),
        "trace_items": trace_total,
        "trace_domain_day_items": len(days),
    }
    return problems, counts


def trace_items_per_decision(item: Item) -> int:
    """What DynamoTraceStore writes for one decision: the decision, by IP (IPv6 and IPv4 alike), by
    sender, and one per recipient domain (the domain-per-day items are shared: ``domain_days``)."""
    return 3 + len(recipient_domains(item))


def recipient_domains(item: Item) -> set[str]:
    return {address.rpartition("@")[2].lower() for address in item.scenario.recipients}


def domain_days(stack: MotoStack, table: str) -> set[tuple[str, str]]:
    """The trace's domain-per-day items, (day, domain): one Query of their partition, every page."""
    from ipv6gate.aws.items import plain, wire
    from ipv6gate.aws.trace import DAYS

    ddb = stack.client("dynamodb")
    query: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": wire({":pk": DAYS}),
    }
    found: set[tuple[str, str]] = set()
    while True:
        page = ddb.query(**query)
        for item in page.get("Items", []):
            day, _, domain = str(plain(item)["sk"]).partition("#")
            found.add((day, domain))
        if "LastEvaluatedKey" not in page:
            return found
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class QueueDrain:
    """Takes the bounce requests off the queue while the run goes on, as the bouncer would.

    Records the ``message_id`` of every request it receives (then deletes it), so the run can check
    that every bounce the gate queued reached the queue. Keeping the queue short also keeps moto's
    SQS fast: its ReceiveMessage and SendMessage slow down with every message the queue holds.
    """

    def __init__(self, stack: MotoStack, queue_url: str) -> None:
        self._sqs = stack.client("sqs")
        self._url = queue_url
        self.found: Counter[str] = Counter()
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="load-queue-drain", daemon=True)

    def start(self) -> QueueDrain:
        self._thread.start()
        return self

    def finish(self) -> Counter[str]:
        """Stop the background loop, then take what is left until the queue stays empty."""
        self._stop.set()
        self._thread.join(timeout=30)
        empty = 0
        while empty < 3 and self.error is None:
            empty = 0 if self._once() else empty + 1
        return self.found

    def _loop(self) -> None:
        while not self._stop.is_set() and self.error is None:
            if not self._once():
                self._stop.wait(0.2)

    def _once(self) -> int:
        try:
            page = self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10, VisibilityTimeout=3600)
            messages = page.get("Messages", [])
            for message in messages:
                self.found[str(json.loads(message["Body"]).get("message_id"))] += 1
            if messages:
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
                self._sqs.delete_message_batch(QueueUrl=self._url, Entries=entries)
            return len(messages)
        except Exception as exc:  # reported as an error of the run, not raised in a thread
            self.error = f"{exc.__class__.__name__}: {exc}"
            return 0


# -- report -----------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def report(
    results: Results, args: argparse.Namespace, wall: float, verification: list[str], proxy: DelayingDnsProxy
) -> dict[str, Any]:
    outcomes = results.outcomes
    latencies = [o.duration_ms for o in outcomes]
    errors = [f"{o.item.message_id} ({o.item.scenario.name}): {e}" for o in outcomes for e in o.errors]
    errors += results.failures + verification
    histogram = Counter(o.outcome or "(no decision)" for o in outcomes)
    per_scenario: dict[str, list[float]] = defaultdict(list)
    for o in outcomes:
        per_scenario[o.item.scenario.name].append(o.duration_ms)
    return {
        "decisions": len(outcomes),
        "wanted": args.decisions,
        "workers": args.workers,
        "batch": args.batch,
        "wall_seconds": round(wall, 1),
        "decisions_per_second": round(len(outcomes) / wall, 1) if wall > 0 else 0.0,
        "latency_ms": {p: round(percentile(latencies, float(p[1:])), 1) for p in ("p50", "p95", "p99")}
        | {"max": round(max(latencies, default=0.0), 1)},
        "cold_start_ms": round(sum(results.cold_starts_ms) / max(1, len(results.cold_starts_ms)), 1),
        "containers": len(results.cold_starts_ms),
        "histogram": dict(histogram.most_common()),
        "per_scenario_ms": {
            name: {"n": len(v), "p50": round(percentile(v, 50), 1), "p99": round(percentile(v, 99), 1)}
            for name, v in sorted(per_scenario.items())
        },
        "bounces_queued": sum(o.queued_bounce for o in outcomes),
        "dns": {"queries": proxy.queries, "dropped": proxy.dropped, "servfails": proxy.servfails},
        "error_count": len(errors),
        "errors": errors[:50],
    }


def print_report(data: dict[str, Any]) -> None:
    lat = data["latency_ms"]
    print(
        f"\n{data['decisions']}/{data['wanted']} decisions in {data['wall_seconds']} s = "
        f"{data['decisions_per_second']} decisions/s ({data['workers']} containers at a time, "
        f"{data['containers']} cold starts of {data['cold_start_ms']} ms on average)"
    )
    print(f"handler latency ms: p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  max {lat['max']}")
    print("outcomes:")
    for label, count in data["histogram"].items():
        print(f"  {count:>6}  {label}")
    print("per scenario (ms):")
    for name, row in data["per_scenario_ms"].items():
        print(f"  {name:<18} n={row['n']:<6} p50 {row['p50']:<8} p99 {row['p99']}")
    dns = data["dns"]
    print(f"DNS through the proxy: {dns['queries']} queries, {dns['dropped']} dropped, {dns['servfails']} SERVFAIL")
    print(f"bounces queued: {data['bounces_queued']}")
    for error in data["errors"]:
        print(f"ERROR {error}", file=sys.stderr)
    print(f"errors: {data['error_count']}")


# -- main -------------------------------------------------------------------------------------------------------


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Watchdog("hard time limit reached")


def chunks(seq: Sequence[Item], size: int) -> list[Sequence[Item]]:
    return [seq[i : i + size] for i in range(0, len(seq), size)]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--decisions", type=int, default=10_000, help="decisions to make (default 10000)")
    parser.add_argument("--workers", type=int, default=4, help="containers running at once (default 4)")
    parser.add_argument("--batch", type=int, default=500, help="events per container before a new one (default 500)")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="time limit of the whole run (default 900)")
    parser.add_argument("--dns-delay", type=float, default=0.005, help="added to every DNS query, s (default 0.005)")
    parser.add_argument("--dns-timeout", type=float, default=0.5, help="DNS_QUERY_TIMEOUT_SECONDS (default 0.5)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.decisions <= 1_000_000 or not 1 <= args.workers <= 16 or not 1 <= args.batch <= 5000:
        parser.error("--decisions 1..1000000, --workers 1..16, --batch 1..5000")
    if not 30 <= args.max_seconds <= 3600:
        parser.error("--max-seconds 30..3600")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    deadline = started + args.max_seconds
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(int(args.max_seconds) + 60)  # a last resort; the batches already stop at the deadline

    def log(text: str) -> None:
        print(text, flush=True)

    try:
        return _run(args, deadline, log)
    except Watchdog:
        print("load: hard time limit reached; everything started was stopped", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nload: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    finally:
        signal.alarm(0)


def _run(args: argparse.Namespace, deadline: float, log: Any) -> int:
    keys = world.make_keys()
    template = sam_template.load_template()
    spec = sam_template.function_spec(template, sam_template.GATE_FUNCTION)
    log(f"template.yaml: {spec.logical_id} Handler={spec.handler} CodeUri={spec.code_uri.relative_to(REPO)}")
    with tempfile.TemporaryDirectory(prefix="ipv6gate-load-") as tmp:
        zone_dir = world.write_zone_dir(Path(tmp) / "zones", keys)
        try:
            stack = MotoStack(zone_dir, template, log=lambda text: log(f"  {text}")).start()
        except (RuntimeError, OSError) as exc:
            print(f"load: could not start the local stack: {exc}", file=sys.stderr)
            return 2
        try:
            lifetime = max(60.0, deadline - time.monotonic() + 30)
            with DelayingDnsProxy.front(stack.knot, delay=args.dns_delay, lifetime=lifetime, max_inflight=512) as proxy:
                return _load(args, deadline=deadline, log=log, stack=stack, spec=spec, proxy=proxy, keys=keys)
        finally:
            stack.stop()


def _load(
    args: argparse.Namespace,
    *,
    deadline: float,
    log: Any,
    stack: MotoStack,
    spec: sam_template.FunctionSpec,
    proxy: DelayingDnsProxy,
    keys: world.Keys,
) -> int:
    proxy.servfail(scenarios.SERVFAIL_DOMAIN, subtree=True)
    proxy.drop(scenarios.DROPPED_PTR)
    log(f"  DNS proxy on {proxy.servers_env} -> knot {stack.knot.servers_env} (+{args.dns_delay * 1000:.0f} ms)")
    overrides = {
        **stack.overrides(),
        "DNS_SERVERS": proxy.servers_env,
        "DNS_QUERY_TIMEOUT_SECONDS": str(args.dns_timeout),
    }
    env = sam_template.container_environment(spec, overrides)
    for name in ("TENANTS_TABLE", "MESSAGE_BUCKET", "TRACE_TABLE", "BOUNCE_QUEUE_URL"):
        if not env.get(name):
            print(f"load: the function's environment has no {name}", file=sys.stderr)
            return 2
    stack.put_items(env["TENANTS_TABLE"], scenarios.TENANTS)
    chosen = list(scenarios.items(args.decisions, keys))
    stored = [item for item in chosen if item.raw is not None]

    s3 = stack.client("s3")  # one client: MotoStack.put_object makes a new one per call

    def store(item: Item) -> None:  # where SES's S3 action puts it: <prefix><messageId>
        key = f"{env.get('MESSAGE_PREFIX', '')}{item.message_id}"
        s3.put_object(Bucket=env["MESSAGE_BUCKET"], Key=key, Body=item.raw or b"")

    with cf.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(store, stored))
    log(f"  {len(scenarios.TENANTS)} tenants, {len(stored)} raw messages stored; {len(chosen)} events")

    drain = QueueDrain(stack, env["BOUNCE_QUEUE_URL"]).start()
    phase = time.monotonic()
    results = run_batches(spec, env, chunks(chosen, args.batch), workers=args.workers, deadline=deadline, log=log)
    wall = time.monotonic() - phase

    decided = [o for o in results.outcomes if o.outcome]
    verification, counts = verify_trace(stack, env["TRACE_TABLE"], decided)
    queued = drain.finish()
    if drain.error:
        verification.append(f"reading the bounce queue failed: {drain.error}")
    want_queued = Counter(o.item.message_id for o in decided if o.queued_bounce)
    if queued != want_queued:
        missing, extra = want_queued - queued, queued - want_queued
        verification.append(f"bounce queue: {len(missing)} queued bounces missing, {len(extra)} unexpected")
    if len(results.outcomes) < args.decisions:
        verification.append(f"only {len(results.outcomes)} of {args.decisions} decisions made")

    data = report(results, args, wall, verification, proxy) | counts
    data["bounce_queue_messages"] = sum(queued.values())
    print_report(data)
    print(
        f"trace table: {data['trace_decision_items']} of {data['trace_decisions_expected']} IPv6 decisions "
        f"(sk = decision), {data['trace_items']} items in all (IPv4 not recorded; "
        f"{data['trace_domain_day_items']} domain-per-day); "
        f"bounce queue: {data['bounce_queue_messages']} requests"
    )
    if args.json:
        args.json.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return 0 if data["error_count"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
