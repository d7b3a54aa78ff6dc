"""The one shape of every server the tests and tools start themselves (Knot, moto, dockerd, ...)."""

from __future__ import annotations

from types import TracebackType
from typing import Self


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
