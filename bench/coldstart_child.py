"""One cold start, in a fresh process: import the gate's handler module, then decide an IPv4 and an IPv6 event.

Run by ``bench/coldstart.py`` as ``python bench/coldstart_child.py lazy|eager REQUEST.json RESULT.json``.
``eager`` first imports every library the function can use (and every ``ipv6gate`` module), which is
what a handler without lazy imports would pay at init. Only the standard library is imported at
module level, so nothing is preloaded before the clock starts.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()


@dataclass
class Context:
    """The attributes of the runtime's LambdaContext that Powertools reads."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 25_000


def _eager(modules: list[str]) -> list[str]:
    failed: list[str] = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a missing optional library: note it, keep going
            failed.append(f"{name}: {exc.__class__.__name__}")
    package = importlib.import_module("ipv6gate")
    for info in pkgutil.walk_packages(package.__path__, "ipv6gate."):
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failed.append(f"{info.name}: {exc.__class__.__name__}")
    return failed


def main(argv: list[str]) -> int:
    variant, request_path, result_path = argv
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    here = str(Path(__file__).resolve().parent)
    # sys.path as in the Lambda runtime: the function's code, the layer, the runtime's boto3; then the
    # standard library (run with -S: no site-packages); not this folder.
    sys.path[:] = [*request["sys_path"], *(p for p in sys.path if p not in ("", here, request["repo"]))]
    failed = _eager(request["eager"]) if variant == "eager" else []
    eager_done = time.perf_counter()
    module_name, _, attribute = str(request["handler"]).rpartition(".")
    handler: Any = getattr(importlib.import_module(module_name), attribute)
    init_done = time.perf_counter()
    arn = f"arn:aws:lambda:{os.environ.get('AWS_REGION', 'eu-west-1')}:123456789012:function:{request['function']}"
    results: list[Any] = []
    marks: list[float] = []
    for item in request["events"]:
        context = Context(request["function"], int(request["memory_mb"]), arn, str(uuid.uuid4()))
        results.append(handler(item, context))
        marks.append(time.perf_counter())
    out = {
        "variant": variant,
        "eager_s": eager_done - STARTED,
        "init_s": init_done - eager_done,
        "ipv4_s": marks[0] - init_done,
        "ipv6_s": marks[1] - marks[0],
        "total_s": marks[1] - STARTED,
        "modules": len(sys.modules),
        "ipv6gate_file": str(sys.modules["ipv6gate"].__file__),  # the built layer's, not the repo's
        "results": results,
        "eager_failures": failed,
    }
    Path(result_path).write_text(json.dumps(out), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
