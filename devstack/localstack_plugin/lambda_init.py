#!/usr/bin/python3.13
"""LocalStack's ``/var/rapid/init`` for the rehearsal: AWS's runtime interface emulator behind LocalStack's protocol.

Stand-in (README "Deploy rehearsal"): LocalStack starts every function container with
``/var/rapid/init``, its own fork of the runtime interface emulator, which it downloads from GitHub
(unreachable here). This script takes its place inside the container (it runs on the image's
python3.13) and does only what LocalStack's side of that fork expects:

- starts AWS's emulator (``/var/rapid/aws-lambda-rie``, the binary SAM CLI's wheel ships), which
  runs ``/var/runtime/bootstrap`` (awslambdaric and the function) as ``sam local invoke`` does,
  with the function's Timeout times ``IPV6GATE_REHEARSAL_TIMEOUT_SCALE`` (an emulated CPU);
- tells LocalStack it is ready (``POST <LOCALSTACK_RUNTIME_ENDPOINT>/status/<id>/ready``);
- takes each ``POST :9563/invoke``, passes the payload to the emulator, and posts back the logs and
  then the response (or, for a handler error, the error) under ``/invocations/<request id>/``.

What it does not prove: anything about LocalStack's own init (it never runs here) nor about
Lambda's real runtime: the function code, layer, handler and environment are those deployed.
"""

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

RIE = "/var/rapid/aws-lambda-rie"
RIE_URL = "http://127.0.0.1:8080/2015-03-31/functions/function/invocations"
INVOKE_PORT = 9563
ENDPOINT = os.environ.get("LOCALSTACK_RUNTIME_ENDPOINT", "")
RUNTIME_ID = os.environ.get("LOCALSTACK_RUNTIME_ID", "")

_lines: list[str] = []
_lines_lock = threading.Lock()


def _post(path: str, body: bytes) -> None:
    request = urllib.request.Request(ENDPOINT + path, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()


def _pump(stream: Any) -> None:
    """Every line the emulator and the function print: kept for the invoke's logs, echoed for docker logs."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace")
        sys.stdout.write(line)
        sys.stdout.flush()
        with _lines_lock:
            _lines.append(line)


def _logs_since(mark: int, wait: float = 3.0) -> str:
    """The lines printed since ``mark``, once the emulator's REPORT line for this invoke is among them."""
    deadline = time.monotonic() + wait
    while True:
        with _lines_lock:
            lines = _lines[mark:]
        if any(line.startswith("REPORT ") for line in lines) or time.monotonic() > deadline:
            return "".join(lines)
        time.sleep(0.05)


def _invoke(payload: dict[str, Any]) -> None:
    request_id = payload["invoke-id"]
    with _lines_lock:
        mark = len(_lines)
    request = urllib.request.Request(RIE_URL, data=payload["payload"].encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=960) as answer:
            body = answer.read()
    except Exception as exc:  # the emulator itself failed: say so as a function error
        body = json.dumps({"errorType": "Rehearsal.InitError", "errorMessage": str(exc)}).encode()
    _post(f"/invocations/{request_id}/logs", json.dumps({"logs": _logs_since(mark)}).encode())
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    failed = isinstance(parsed, dict) and {"errorType", "errorMessage"} <= set(parsed)
    _post(f"/invocations/{request_id}/{'error' if failed else 'response'}", body)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = json.loads(self.rfile.read(length))
        self.send_response(200)
        self.end_headers()
        threading.Thread(target=_invoke, args=(payload,), daemon=True).start()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _chmod() -> None:
    for entry in json.loads(os.environ.get("LOCALSTACK_CHMOD_PATHS") or "[]"):
        with contextlib.suppress(OSError):
            os.chmod(entry["path"], int(entry["mode"], 8))


def main() -> None:
    _chmod()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCALSTACK_", "IPV6GATE_REHEARSAL_"))}
    # An emulated CPU is 10-30x slower: the emulator gets the deployed Timeout times this factor.
    scale = int(os.environ.get("IPV6GATE_REHEARSAL_TIMEOUT_SCALE") or 1)
    if scale > 1 and env.get("AWS_LAMBDA_FUNCTION_TIMEOUT"):
        env["AWS_LAMBDA_FUNCTION_TIMEOUT"] = str(int(env["AWS_LAMBDA_FUNCTION_TIMEOUT"]) * scale)
    proc = subprocess.Popen([RIE], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    threading.Thread(target=_pump, args=(proc.stdout,), daemon=True).start()
    server = ThreadingHTTPServer(("0.0.0.0", INVOKE_PORT), _Handler)
    for _ in range(600):  # the emulator listens within a second, natively or emulated
        try:
            urllib.request.urlopen("http://127.0.0.1:8080/", timeout=1)
            break
        except urllib.error.HTTPError:
            break  # it answers (404): it is up
        except OSError:
            time.sleep(0.1)
    _post(f"/status/{RUNTIME_ID}/ready", b"{}")
    server.serve_forever()


if __name__ == "__main__":
    main()
