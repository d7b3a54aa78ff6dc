"""The one shape of every server the tests and tools start themselves (Knot, moto, dockerd, ...)."""

from __future__ import annotations

import signal
import socket
import subprocess
from types import TracebackType
from typing import Any, Self


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (a server bound to it a moment later may still lose it: retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def end_process(proc: subprocess.Popen[Any] | None, grace: float = 10.0) -> None:
    """SIGTERM, and SIGKILL after ``grace`` seconds, for a process that still runs; None does nothing."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


class Service:
    """``start()`` returns the running service, ``stop()`` ends it (safe to call twice); ``with`` does both."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
