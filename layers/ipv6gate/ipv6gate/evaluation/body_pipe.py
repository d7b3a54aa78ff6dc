"""Bytes handed from an MTA's callbacks to the DKIM check's thread, so the body is hashed as it arrives.

Bounded: a writer waits while ``max_chunks`` chunks are unread (back-pressure on the SMTP session,
never the whole message in memory), and never waits once the reader has gone (the check finished
early, e.g. a missing key) or the pipe was failed (the message is over its size limit).
"""

from __future__ import annotations

import queue
import threading

_POLL_SECONDS = 0.5  # how often a blocked side re-checks whether the other side has gone


class BodyPipe:
    def __init__(self, max_chunks: int = 32) -> None:
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=max_chunks)
        self._leftover = b""
        self._eof = False
        self._reader_gone = threading.Event()
        self._failed: str | None = None

    # ------------------------------------------------------------------ the MTA's side
    def write(self, data: bytes) -> None:
        while data and not self._reader_gone.is_set() and self._failed is None:
            try:
                self._chunks.put(data, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """End of message: the reader sees end of file once it has read what was written."""
        while not self._reader_gone.is_set():
            try:
                self._chunks.put(None, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def fail(self, reason: str) -> None:
        """Stop the reader: its next read raises ``OSError(reason)`` (an aborted or oversized message)."""
        self._failed = reason

    # ------------------------------------------------------------------ the check's side
    def read(self, size: int = -1) -> bytes:
        while not self._leftover and not self._eof:
            if self._failed is not None:
                raise OSError(self._failed)
            try:
                chunk = self._chunks.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            if chunk is None:
                self._eof = True
            else:
                self._leftover = chunk
        if self._failed is not None:
            raise OSError(self._failed)
        if size < 0 or size >= len(self._leftover):
            out, self._leftover = self._leftover, b""
        else:
            out, self._leftover = self._leftover[:size], self._leftover[size:]
        return out

    def reader_done(self) -> None:
        """The check has returned: writes from now on are dropped instead of waiting."""
        self._reader_gone.set()
