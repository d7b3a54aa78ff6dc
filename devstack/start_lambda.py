"""``sam local start-lambda`` with warm containers: one container per function for a whole run.

``sam local invoke`` starts a fresh container per event (under arm64 emulation a cold start of
10-40 s each); ``StartLambda`` runs SAM CLI's local Lambda endpoint once, with ``--warm-containers``
(``EAGER``: every function's container is created when the endpoint starts, and kept), and calls it
with boto3's ``lambda`` client. SAM CLI prints every container's output (log lines, EMF blobs, the
emulator's ``REPORT``) to its own output, which goes to a log file here; invocations are made one at
a time, so one invocation's output is what the log gained from the call until its ``REPORT`` line.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from devstack.docker_engine import EngineError
from devstack.service import Service, free_port

REPORT_LINE = "REPORT RequestId:"


class StartLambda(Service):
    """The local Lambda endpoint of ``sam local start-lambda <options>``; ``invoke`` returns
    (response text, that invocation's container output, seconds)."""

    def __init__(
        self,
        command: Sequence[str],
        options: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path,
        region: str,
        warm: str = "EAGER",
        startup_timeout: float = 180.0,
        output_timeout: float = 60.0,
    ) -> None:
        self.port = free_port()
        self.command = [*command, "local", "start-lambda", "--port", str(self.port), *options]
        self.command += ["--warm-containers", warm]
        self.cwd, self.env, self.log_path, self.region = cwd, dict(env), log_path, region
        self.startup_timeout, self.output_timeout = startup_timeout, output_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        import boto3
        from botocore.config import Config

        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                self.command, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            deadline = time.monotonic() + self.startup_timeout
            while "Running on" not in self._log():
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise EngineError(f"sam local start-lambda did not start: {tail(self._log())}")
                time.sleep(0.3)
            self._client = boto3.client(
                "lambda",
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=Config(read_timeout=900, connect_timeout=10, retries={"max_attempts": 0}),
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # SAM CLI stops and removes its warm containers on SIGTERM
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def invoke(self, function: str, event: Any) -> tuple[str, str, float]:
        """One invocation: the response payload, the container's output for it, and the wall seconds."""
        import botocore.exceptions

        if self._client is None:
            raise EngineError("sam local start-lambda is not running")
        offset = len(self._log())
        started = time.monotonic()
        try:
            answer = self._client.invoke(FunctionName=function, Payload=json.dumps(event).encode())
        except botocore.exceptions.BotoCoreError as exc:
            raise EngineError(f"start-lambda invoke of {function} failed: {exc}; {tail(self._log()[offset:])}") from exc
        except botocore.exceptions.ClientError as exc:
            raise EngineError(f"start-lambda refused {function}: {exc}") from exc
        payload = answer["Payload"].read().decode(errors="replace")
        seconds = time.monotonic() - started
        deadline = time.monotonic() + self.output_timeout
        while (end := _report_end(output := self._log()[offset:])) < 0:  # the output trails the response
            if time.monotonic() > deadline:
                raise EngineError(f"no REPORT line from {function} within {self.output_timeout:.0f} s: {tail(output)}")
            time.sleep(0.1)
        return payload, output[:end], seconds


def _report_end(output: str) -> int:
    """Where the first complete ``REPORT`` line of ``output`` ends, or -1."""
    at = output.find(REPORT_LINE)
    newline = output.find("\n", at) if at >= 0 else -1
    return newline + 1 if newline >= 0 else -1


def tail(text: str, lines: int = 6) -> str:
    """The last ``lines`` lines of ``text`` on one line (for a one-line error)."""
    return " | ".join(ln.strip() for ln in text.strip().splitlines()[-lines:])
