"""Run moto's standalone server in a subprocess for integration tests.

A real HTTP endpoint (rather than in-process `mock_aws`) lets the code under
test, or a subprocess of it, reach "AWS" purely via AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any, Self

from devstack.service import Service, free_port

__all__ = ["MotoServer", "aws_env"]

REGION = "eu-west-1"


def aws_env(endpoint_url: str) -> dict[str, str]:
    """Environment pointing boto3 (>= 1.28, honours AWS_ENDPOINT_URL) at moto."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


class MotoServer(Service):
    """Context manager running `python -m moto.server` on a free port of ``host`` (loopback unless told)."""

    def __init__(self, *, host: str = "127.0.0.1", startup_timeout: float = 20.0) -> None:
        self.host = host
        self.startup_timeout = startup_timeout
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """Shorthand for `aws_env(self.endpoint_url)`."""
        return aws_env(self.endpoint_url)

    def client(self, service: str, region: str = "eu-west-1") -> Any:
        """A boto3 client for this server, whatever the caller's environment says."""
        import boto3

        make: Any = boto3.client
        return make(
            service,
            region_name=region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def log_tail(self, lines: int = 40) -> str:
        if self._log is None:
            return "<no moto log>"
        text = Path(self._log.name).read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def start(self) -> Self:
        # Flask's output goes to a temp file, not a pipe nobody drains
        # (a full pipe would eventually block the server).
        self._log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log")  # noqa: SIM115
        try:
            # The port may be grabbed between probing and binding; retry.
            for _attempt in range(3):
                self.port = free_port(self.host)
                self._proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "moto.server",
                        "-H",
                        self.host,
                        "-p",
                        str(self.port),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                )
                if self._wait_ready():
                    return self
                self._stop_process()
            raise RuntimeError(
                f"moto server did not come up on {self.endpoint_url} within "
                f"{self.startup_timeout}s; log tail:\n{self.log_tail()}"
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self._stop_process()
        if self._log is not None:
            self._log.close()  # also deletes the temp file
            self._log = None

    def _wait_ready(self) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                # moto's own dashboard/reset API; any HTTP answer means "up".
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/data.json", timeout=1) as resp:
                    if resp.status == 200:
                        return True
            except urllib.error.HTTPError:
                return True  # it answered, just not with 200
            except OSError:  # refused / reset / timeout: not listening yet
                pass
            time.sleep(0.1)
        return False

    def _stop_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
