"""Cold start: the gate's handler module imported in a fresh process, which then decides two events.

The process gets the environment ``sam local invoke`` would give the function (``template.yaml``'s
variables, resolved by ``devstack/sam_template.py``) pointed at the local stack: moto server for
the tenants table (and the trace table, bounce queue and bucket the template names) and Knot for DNS
(directly: no injected delay, this measures imports and set-up, not DNS). Each run decides one IPv4
event, then one IPv6 event (PTR + SPF through an include; unsigned, so no message is fetched).

The code is the function and the layer as ``sam build`` makes them (``bench/built_code.py``: their
Makefiles, for this machine's CPU), imported read-only (``PYTHONDONTWRITEBYTECODE=1``), in four
variants run alternately (after one discarded run of each, which warms the OS file cache):

- ``lazy``: the handler module as it is, with the build's byte code (what ships);
- ``eager``: first imports every library the function may use and every ``ipv6gate`` module;
- ``lazy_source`` and ``eager_source``: the same without byte code (the layer before it shipped any:
  every module imported is compiled, in every cold start).

"cold start" is the time inside the process from its first statement until both decisions are
made (Python's own start-up, the same for all, is left out; ``process_wall_s`` includes it).
boto3 and botocore are the runtime's (``built_code.runtime_sdk``); nothing else of this venv is on sys.path.
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

from bench import built_code
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


VARIANTS = ("lazy", "eager", "lazy_source", "eager_source")


def measure_cold_start(stack: MotoStack, keys: world.Keys, runs: int, workdir: Path) -> dict[str, Any]:
    spec = sam_template.function_spec(stack.template, names=stack.names)
    env = sam_template.container_environment(spec, stack.overrides())
    env.pop("DNS_ZONE_DIR", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # /opt and /var/task are read-only in Lambda
    stack.put_items(env["TENANTS_TABLE"], [{"domain": TENANT, "ipv6_inbound": True, "mode": "enforce"}])
    with_pyc, without_pyc = built_code.build(spec.code_uri, spec.logical_id, workdir / "coldstart-build")
    events = [
        event(COLD_START_V4_SENDER, message(COLD_START_V4_SENDER, keys), "cold-v4"),
        event(COLD_START_SENDER, message(COLD_START_SENDER, keys), "cold-v6"),
    ]
    requests: dict[str, Path] = {}
    for name, code in (("pyc", with_pyc), ("source", without_pyc)):
        request = {
            "sys_path": code.sys_path,
            "repo": str(REPO),
            "handler": spec.handler,
            "function": spec.logical_id,
            "memory_mb": spec.memory_mb,
            "events": events,
            "eager": EAGER_MODULES,
        }
        requests[name] = workdir / f"coldstart-request-{name}.json"
        requests[name].write_text(json.dumps(request), encoding="utf-8")

    def one(variant: str, *, importtime: bool = False) -> dict[str, Any]:
        mode, _, source = variant.partition("_")
        code = without_pyc if source else with_pyc
        result_path = workdir / f"coldstart-{variant}.json"
        result_path.unlink(missing_ok=True)
        flags = ["-X", "importtime"] if importtime else []
        request_path = requests["source" if source else "pyc"]
        started = time.perf_counter()
        proc = subprocess.run(
            # -S: no site-packages of this venv; the child's sys.path is the build's and the runtime's.
            [sys.executable, "-S", *flags, str(CHILD), mode, str(request_path), str(result_path)],
            cwd=code.function,
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
        if not Path(data["ipv6gate_file"]).is_relative_to(code.layer):
            raise RuntimeError(f"cold-start child ({variant}) imported ipv6gate from {data['ipv6gate_file']}")
        data["process_wall_s"] = wall
        if importtime:
            data["import_times"] = _import_times(proc.stderr)
        return data

    for variant in VARIANTS:
        one(variant)
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for i in range(runs):
        for variant in VARIANTS if i % 2 == 0 else tuple(reversed(VARIANTS)):
            samples[variant].append(one(variant))
    profile = one("lazy", importtime=True)

    def med(variant: str, key: str) -> float:
        return statistics.median(float(s[key]) for s in samples[variant])

    out: dict[str, Any] = {"runs": runs, "memory_mb": spec.memory_mb}
    for variant in VARIANTS:
        out[variant] = {
            key: round(med(variant, key), 4)
            for key in ("total_s", "eager_s", "init_s", "ipv4_s", "ipv6_s", "process_wall_s", "modules")
        }
        out[variant]["samples_total_s"] = [round(float(s["total_s"]), 4) for s in samples[variant]]
        out[variant]["results"] = samples[variant][0]["results"]
        out[variant]["eager_failures"] = samples[variant][0]["eager_failures"]

    def ratio(a: str, b: str) -> float:
        return round(float(out[a]["total_s"]) / float(out[b]["total_s"]), 3)

    # The target: the whole cold start (init + first IPv4 + first IPv6 decision) as shipped (byte code,
    # lazy imports) against the eager handler on the layer as it was (no byte code). The other ratios
    # split it: lazy imports alone (both with byte code, or both without) and byte code alone.
    out["ratio_shipped_to_eager_source"] = ratio("lazy", "eager_source")
    out["ratio_lazy_to_eager"] = ratio("lazy", "eager")
    out["ratio_lazy_to_eager_source_only"] = ratio("lazy_source", "eager_source")
    out["ratio_bytecode"] = ratio("lazy", "lazy_source")
    # The module's init, what Lambda bills as Init Duration: the handler as is against a handler that
    # imports everything first (both with byte code). An IPv4 message, or any message in a warm
    # container, never pays for the libraries only an IPv6 decision needs.
    eager_init = out["eager"]["eager_s"] + out["eager"]["init_s"]
    out["init_ratio_lazy_to_eager"] = round(out["lazy"]["init_s"] / eager_init, 3)
    out["lazy_import_profile"] = profile["import_times"]
    return out
