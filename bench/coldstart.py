"""Cold start: the gate's handler module imported in a fresh process, which then decides two events.

The process gets the environment ``sam local invoke`` would give the function (``template.yaml``'s
variables, resolved by ``devstack/sam_template.py``) pointed at the local stack: moto server for
the tenants table (and the trace table, bounce queue and bucket the template names) and Knot for DNS
(directly: no injected delay, this measures imports and set-up, not DNS). Each run decides one IPv4
event, then one IPv6 event (PTR + SPF through an include; unsigned, so no message is fetched).

Two variants, run alternately (after one discarded run of each, which warms the OS file cache):

- ``lazy``: the handler module as it is;
- ``eager``: first imports every library the function may use and every ``ipv6gate`` module.

"cold start" is the time inside the process from its first statement until both decisions are
made (Python's own start-up, the same for both, is left out; ``process_wall_s`` includes it).
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.scenarios import COLD_START_SENDER, COLD_START_V4_SENDER
from bench.world import TENANT, event, message
from devstack import sam_template, world
from devstack.moto_stack import MotoStack

CHILD = Path(__file__).resolve().parent / "coldstart_child.py"
REPO = Path(__file__).resolve().parents[1]

EAGER_MODULES = [
    "boto3",
    "botocore.session",
    "botocore.client",
    "aws_lambda_powertools",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.utilities.data_classes",
    "aws_lambda_powertools.utilities.data_classes.ses_event",
    "dns.resolver",
    "dns.message",
    "dns.query",
    "dns.reversename",
    "dns.zone",
    "spf",
    "dkim",
    "dkim.crypto",
    "dkim.dnsplug",
    "nacl.signing",
    "nacl.bindings",
]


def _import_times(stderr: str, top: int = 8) -> list[dict[str, Any]]:
    """Where import time goes, by top-level package (``botocore``, ``dns``, ...), slowest first.

    From ``python -X importtime``: the *self* time of every module imported, summed per first dotted
    component, so nested imports are counted once, with the package that owns the code.
    """
    totals: dict[str, int] = {}
    for line in stderr.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| +(\S+)$", line)
        if found:
            package = found.group(3).split(".")[0]
            totals[package] = totals.get(package, 0) + int(found.group(1))
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return [{"package": name, "ms": us / 1000} for name, us in ranked]


def measure_cold_start(stack: MotoStack, keys: world.Keys, runs: int, workdir: Path) -> dict[str, Any]:
    spec = sam_template.function_spec(stack.template, names=stack.names)
    env = sam_template.container_environment(spec, stack.overrides())
    env.pop("DNS_ZONE_DIR", None)
    stack.put_items(env["TENANTS_TABLE"], [{"domain": TENANT, "ipv6_inbound": True, "mode": "enforce"}])
    events = [
        event(COLD_START_V4_SENDER, message(COLD_START_V4_SENDER, keys), "cold-v4"),
        event(COLD_START_SENDER, message(COLD_START_SENDER, keys), "cold-v6"),
    ]
    request = {
        "sys_path": [str(spec.code_uri), *(str(p) for p in spec.layers)],
        "repo": str(REPO),
        "handler": spec.handler,
        "function": spec.logical_id,
        "memory_mb": spec.memory_mb,
        "events": events,
        "eager": EAGER_MODULES,
    }
    request_path = workdir / "coldstart-request.json"
    request_path.write_text(json.dumps(request), encoding="utf-8")

    def one(variant: str, *, importtime: bool = False) -> dict[str, Any]:
        result_path = workdir / f"coldstart-{variant}.json"
        result_path.unlink(missing_ok=True)
        flags = ["-X", "importtime"] if importtime else []
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, *flags, str(CHILD), variant, str(request_path), str(result_path)],
            cwd=spec.code_uri,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
        wall = time.perf_counter() - started
        if proc.returncode != 0 or not result_path.exists():
            raise RuntimeError(f"cold-start child ({variant}) failed with {proc.returncode}:\n{proc.stderr[-3000:]}")
        data: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
        data["process_wall_s"] = wall
        if importtime:
            data["import_times"] = _import_times(proc.stderr)
        return data

    one("lazy")
    one("eager")
    samples: dict[str, list[dict[str, Any]]] = {"lazy": [], "eager": []}
    for i in range(runs):
        for variant in ("lazy", "eager") if i % 2 == 0 else ("eager", "lazy"):
            samples[variant].append(one(variant))
    profile = one("lazy", importtime=True)

    def med(variant: str, key: str) -> float:
        return statistics.median(float(s[key]) for s in samples[variant])

    out: dict[str, Any] = {"runs": runs, "memory_mb": spec.memory_mb}
    for variant in ("lazy", "eager"):
        out[variant] = {
            key: round(med(variant, key), 4)
            for key in ("total_s", "eager_s", "init_s", "ipv4_s", "ipv6_s", "process_wall_s", "modules")
        }
        out[variant]["samples_total_s"] = [round(float(s["total_s"]), 4) for s in samples[variant]]
        out[variant]["results"] = samples[variant][0]["results"]
        out[variant]["eager_failures"] = samples[variant][0]["eager_failures"]
    out["ratio_lazy_to_eager"] = round(out["lazy"]["total_s"] / out["eager"]["total_s"], 3)
    # The module's init, what Lambda bills as Init Duration: the handler as is against a handler that
    # imports everything first. The target is on this one: an IPv4 message, or any message in a warm
    # container, never pays for the libraries only an IPv6 decision needs; the first IPv6 decision
    # still imports them (the whole-cold-start ratio above says how much that costs).
    eager_init = out["eager"]["eager_s"] + out["eager"]["init_s"]
    out["init_ratio_lazy_to_eager"] = round(out["lazy"]["init_s"] / eager_init, 3)
    out["lazy_import_profile"] = profile["import_times"]
    return out
