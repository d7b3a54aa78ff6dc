"""The in-process Lambda runner: a function of template.yaml in this Python, as one warm container.

The real runner is SAM CLI's (``local_lambda``: ``sam build``, then ``sam local start-lambda`` in the
arm64 image). This one exists for speed: ``make demo`` runs a scenario set in seconds where ``make
local`` needs minutes (a private dockerd, the image, ``sam build``, emulated arm64), and the load
test, the benchmarks and the handler tests call the function thousands of times. What the function
is (CodeUri, Handler, layers, environment) comes from SAM CLI's own template resolution
(``sam_template.function_spec``); the servers it talks to are ``moto_stack.MotoStack``.

``invoke`` runs the handler in a fresh Python process (``devstack/lambda_worker.py``) with the code
and layer directories first on ``sys.path`` and the environment SAM would give the container, and
calls it once per event (a cold start, then warm invocations), capturing what each call printed:
Powertools' JSON log lines and EMF metric blobs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.json_lines import emf_blobs, json_records, log_records, metric_totals
from devstack.sam_template import ACCOUNT_ID, REGION, REPO, FunctionSpec
from devstack.scenarios import Outcome

# -- invocation ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invocation:
    """One call of the handler and everything it printed."""

    name: str
    result: Any
    error: str | None
    stdout: str
    stderr: str
    duration_ms: float

    def records(self) -> list[dict[str, Any]]:
        """The JSON objects printed on stdout, one per line (Powertools logs and EMF blobs)."""
        return json_records(self.stdout)

    def logs(self, message: str | None = None) -> list[dict[str, Any]]:
        """Structured log lines (those with a ``level``), optionally only those with ``message``."""
        return log_records(self.records(), message)

    def emf(self) -> list[dict[str, Any]]:
        return emf_blobs(self.records())

    def metrics(self) -> dict[str, float]:
        """Metric name -> sum of its values over every EMF blob of this invocation."""
        return metric_totals(self.records())

    def outcome(self) -> Outcome:
        """For the scenario table (the gate's decision line), as ``local_lambda.LocalInvoke.outcome``."""
        return Outcome(self.name, self.result, self.logs("decision"), self.error, self.records())

    def metric_namespaces(self) -> set[str]:
        return {d.get("Namespace", "") for b in self.emf() for d in b["_aws"].get("CloudWatchMetrics", [])}


@dataclass(frozen=True)
class Run:
    """A container's life: its init (module import) and the invocations that followed."""

    init_stdout: str
    init_stderr: str
    init_error: str | None
    init_ms: float
    invocations: list[Invocation] = field(default_factory=list)

    def by_name(self) -> dict[str, Invocation]:
        return {i.name: i for i in self.invocations}


def invoke(
    spec: FunctionSpec,
    environment: Mapping[str, str],
    events: Sequence[tuple[str, Any]],
    *,
    timeout: float | None = None,
) -> Run:
    """Import ``spec.handler`` in a fresh process and call it with each event in turn.

    The first call follows the cold start (module-level code runs on import, Powertools records a
    cold start); the others are warm, as in one Lambda container. ``sam local invoke`` itself
    starts a container per event: pass a single event for exactly that.
    """
    region = environment.get("AWS_REGION", REGION)
    request = {
        "sys_path": [str(spec.code_uri), *(str(p) for p in spec.layers)],
        "handler": spec.handler,
        "function_name": spec.logical_id,
        "function_arn": f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{spec.logical_id}",
        "memory_mb": spec.memory_mb,
        "timeout_s": spec.timeout_s,
        "events": [{"name": name, "event": event} for name, event in events],
    }
    limit = timeout if timeout is not None else 60.0 + spec.timeout_s * max(1, len(events))
    with tempfile.TemporaryDirectory(prefix="sam-local-") as tmp:
        request_path, result_path = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request_path.write_text(json.dumps(request), encoding="utf-8")
        env = {
            **environment,
            "PYTHONPATH": str(REPO),  # only to import the worker; it takes REPO off sys.path again
            "PYTHONDONTWRITEBYTECODE": "1",
            "_SAM_LOCAL_REPO": str(REPO),
        }
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from devstack.lambda_worker import main; sys.exit(main(sys.argv[1:]))",
                str(request_path),
                str(result_path),
            ],
            cwd=spec.code_uri,
            env=env,
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
        if not result_path.exists():
            raise RuntimeError(
                f"the local Lambda worker died (exit {proc.returncode}):\n{proc.stderr[-4000:]}{proc.stdout[-2000:]}"
            )
        data = json.loads(result_path.read_text(encoding="utf-8"))
    return Run(
        init_stdout=data["init"]["stdout"],
        init_stderr=data["init"]["stderr"],
        init_error=data["init"]["error"],
        init_ms=data["init"]["duration_ms"],
        invocations=[Invocation(**item) for item in data["invocations"]],
    )
