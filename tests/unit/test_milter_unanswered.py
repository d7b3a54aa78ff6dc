"""Header and body callbacks Postfix does not wait for: a failure is logged once and the rest skipped."""

from __future__ import annotations

from typing import Any

from ipv6gate.entrypoints.milter import SMFIS_CONTINUE, _unanswered


class Connection:
    def __init__(self) -> None:
        self._broken = False
        self.calls = 0
        self.failures: list[str] = []

    def failed(self, where: str, exc: BaseException) -> None:
        self.failures.append(f"{where}: {exc}")


@_unanswered
def body(self: Any, chunk: bytes) -> None:
    self.calls += 1
    raise ValueError("boom")


def test_after_one_failure_the_remaining_chunks_are_neither_run_nor_logged() -> None:
    connection = Connection()
    assert [body(connection, b"x" * 65536) for _ in range(300)] == [SMFIS_CONTINUE] * 300
    assert connection._broken
    assert connection.calls == 1
    assert connection.failures == ["body: boom"]
