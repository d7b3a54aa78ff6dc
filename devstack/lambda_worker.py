"""The fresh process ``sam_local.invoke`` starts: one Lambda container's life, in this Python.

``python -c "from devstack.lambda_worker import main; ..." REQUEST.json RESULT.json`` puts the
function's code and layer directories first on ``sys.path`` (and takes the repository off it),
imports the handler (the init), then calls it once per event (a cold start, then warm calls),
capturing what each call printed on file descriptors 1 and 2.

Only the standard library is imported: this module is loaded before the handler, and must not
preload anything the function's cold start would load itself.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What the parent sets only to start this module; the function's environment must not show them.
LAUNCH_ENV = ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "_SAM_LOCAL_REPO")


@dataclass
class LocalLambdaContext:
    """A stand-in for the runtime's ``LambdaContext`` with the attributes Powertools reads."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    timeout_s: int
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "$LATEST"
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.started + self.timeout_s - time.monotonic()) * 1000))


@dataclass
class _Captured:
    stdout: str = ""
    stderr: str = ""


@contextlib.contextmanager
def _capture_fds() -> Iterator[_Captured]:
    """Capture file descriptors 1 and 2 (so also loggers that hold on to ``sys.stdout``)."""
    captured = _Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            out.seek(0)
            err.seek(0)
            captured.stdout = out.read().decode("utf-8", "replace")
            captured.stderr = err.read().decode("utf-8", "replace")


def _call(handler: Any, event: Any, context: LocalLambdaContext) -> dict[str, Any]:
    value: Any = None
    error: str | None = None
    started = time.perf_counter()
    with _capture_fds() as out:
        if handler is None:
            error = "init failed: the handler could not be imported"
        else:
            try:
                value = handler(event, context)
            except Exception:
                error = traceback.format_exc()
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        error, value = error or f"handler returned a value that is not JSON: {value!r}", None
    elapsed = (time.perf_counter() - started) * 1000
    return {"result": value, "error": error, "stdout": out.stdout, "stderr": out.stderr, "duration_ms": elapsed}


def main(argv: Sequence[str]) -> int:
    """Import the handler the request names, call it per event, write what happened to the result file."""
    request_path, result_path = argv
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    # sys.path as in the Lambda runtime: the function's code, then the layers; not the repo root.
    repo = os.environ.get("_SAM_LOCAL_REPO", "")
    for name in LAUNCH_ENV:
        os.environ.pop(name, None)
    sys.path[:] = [*request["sys_path"], *(p for p in sys.path if p not in ("", repo, os.getcwd()))]
    module_name, _, attribute = str(request["handler"]).rpartition(".")

    handler: Any = None
    init_error: str | None = None
    started = time.perf_counter()
    with _capture_fds() as init:
        try:
            handler = getattr(importlib.import_module(module_name), attribute)
        except BaseException:
            init_error = traceback.format_exc()
    result: dict[str, Any] = {
        "init": {
            "stdout": init.stdout,
            "stderr": init.stderr,
            "error": init_error,
            "duration_ms": (time.perf_counter() - started) * 1000,
        },
        "invocations": [],
    }
    name = request["function_name"]
    for item in request["events"]:
        context = LocalLambdaContext(
            function_name=name,
            memory_limit_in_mb=int(request["memory_mb"]),
            invoked_function_arn=request["function_arn"],
            aws_request_id=str(uuid.uuid4()),
            timeout_s=int(request["timeout_s"]),
            log_group_name=f"aws/lambda/{name}",
        )
        result["invocations"].append({"name": item["name"], **_call(handler, item["event"], context)})
    Path(result_path).write_text(json.dumps(result), encoding="utf-8")
    return 0
