"""A raw message read as a stream for DKIM: its header block, then one pass over the body, a chunk at a time.

Only the header block (at most ``max_header_bytes``) and one chunk are ever held, so a 30 MB message
costs what a small one does; a message held whole is read through ``io.BytesIO`` the same way.

- ``read_header_block`` reads up to the first empty line (lines end in CRLF or bare LF, as dkimpy
  splits them).
- ``hash_body`` reads the rest once: bare LF becomes CRLF (a CR at a chunk's end waits for the next
  chunk), then one incremental canonicalizer per needed canonicalization feeds a ``hashlib`` object
  per needed (hash, ``l=``). simple: runs of CRLF at the end are held back as a count and written only
  when more content follows, then exactly one CRLF closes the body. relaxed: runs of SP/HTAB become one
  SP, and that SP is dropped when a CRLF follows (a run at a chunk's end is held back as one pending
  SP); trailing CRLFs as for simple, and a body with no content hashes as empty. This reproduces
  dkimpy's ``Simple``/``Relaxed.canonicalize_body`` (tested against it), including its quirk of
  keeping whitespace at the very end of a body with no final line break. ``l=`` truncates the
  canonical body (a body shorter than ``l=`` gets no hash); reading stops early once every needed
  hash has its ``l=`` octets.

A failure to read the stream raises ``Unreadable`` (the caller reports it as temporary).
"""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

CHUNK_SIZE = 64 * 1024
MAX_HEADER_BYTES = 1024 * 1024

#: A body hash some signature needs: (body canonicalization "simple"/"relaxed", hashlib name, l= or None).
BodyKey = tuple[str, str, int | None]

_HEADER_END = re.compile(rb"\n\r?\n")  # a line break, then an empty line (CRLF or bare LF)
_CRLFS = b"\r\n" * 32768


class ByteStream(Protocol):
    def read(self, size: int, /) -> bytes: ...


class Unreadable(Exception):
    pass


class Reader:
    def __init__(self, stream: ByteStream, chunk_size: int) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self._stream = stream
        self._size = chunk_size
        self.eof = False

    def read(self) -> bytes:
        if self.eof:
            return b""
        try:
            chunk = self._stream.read(self._size)
        except Exception as exc:  # S3 read timeouts, truncated bodies, ...: all temporary
            raise Unreadable(str(exc)) from exc
        if not chunk:
            self.eof = True
            return b""
        return chunk


def read_header_block(reader: Reader, limit: int) -> tuple[bytes, bytes] | None:
    """(header block including its empty line, the body octets read with it); None when over ``limit``."""
    buf = bytearray()
    while True:
        searched = max(0, len(buf) - 2)  # a terminator found now may start in the previous chunk
        buf += reader.read()
        end = _body_offset(buf, searched)
        if end is not None:
            return (bytes(buf[:end]), bytes(buf[end:])) if end <= limit else None
        if len(buf) > limit:
            return None
        if reader.eof:
            return bytes(buf), b""  # no empty line: all header, no body


def _body_offset(buf: bytearray, searched: int) -> int | None:
    # An empty first line, or the first line break followed by an empty line (checked again as
    # the buffer grows, so a CR read alone at the start finds its LF later).
    if buf.startswith(b"\n"):
        return 1
    if buf.startswith(b"\r\n"):
        return 2
    match = _HEADER_END.search(buf, searched)
    return match.end() if match else None


def hash_body(reader: Reader, first: bytes, wanted: set[BodyKey]) -> dict[BodyKey, bytes | None]:
    sinks = {key: _Sink(key[1], key[2]) for key in wanted}
    canonicalizers = [
        _BodyCanonicalizer(name == "relaxed", [sink for key, sink in sinks.items() if key[0] == name])
        for name in sorted({key[0] for key in wanted})
    ]
    active = [c for c in canonicalizers if c.needed]
    line_ends = _LineEnds()
    piece = first
    while active:
        if piece:
            normalized = line_ends.feed(piece)
            for canonicalizer in active:
                canonicalizer.feed(normalized)
            active = [c for c in active if c.needed]
        if reader.eof or not active:
            break
        piece = reader.read()
    if active:  # the whole body was read
        rest = line_ends.finish()
        for canonicalizer in active:
            canonicalizer.feed(rest)
            canonicalizer.finish()
    return {key: sink.digest() for key, sink in sinks.items()}


class _LineEnds:
    """Bare LF -> CRLF, as dkimpy's line split and rejoin does; a lone CR stays as it is."""

    def __init__(self) -> None:
        self._cr = False  # the previous piece ended in CR, which may pair with a leading LF

    def feed(self, piece: bytes) -> bytes:
        if self._cr:
            piece = b"\r" + piece
        self._cr = piece.endswith(b"\r")
        if self._cr:
            piece = piece[:-1]
        if piece.count(b"\n") != piece.count(b"\r\n"):  # some LF is bare
            piece = piece.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        return piece

    def finish(self) -> bytes:
        rest, self._cr = (b"\r" if self._cr else b""), False
        return rest


class _Sink:
    """One hash of the canonical body, optionally truncated to ``l=`` octets."""

    def __init__(self, hash_name: str, limit: int | None) -> None:
        self._hash = hashlib.new(hash_name)
        self._left = limit

    @property
    def full(self) -> bool:
        return self._left is not None and self._left <= 0

    def update(self, data: bytes) -> None:
        if self._left is None:
            self._hash.update(data)
        elif self._left > 0:
            part = data[: self._left]
            self._hash.update(part)
            self._left -= len(part)

    def digest(self) -> bytes | None:
        """The hash; None when ``l=`` asked for more octets than the canonical body has (RFC 6376 §3.5)."""
        return None if self._left else self._hash.digest()


class _BodyCanonicalizer:
    """simple or relaxed body canonicalization (RFC 6376 3.4.3/3.4.4, as dkimpy does it), incrementally.

    Fed CRLF-normalized pieces in which no CRLF is split between pieces.
    """

    def __init__(self, relaxed: bool, sinks: list[_Sink]) -> None:
        self._relaxed = relaxed
        self._sinks = sinks
        self._held_crlfs = 0  # CRLFs seen at the end so far: written only if content follows
        self._pending_space = False  # relaxed: a SP/HTAB run at the end of the last piece
        self._content = False  # anything but trailing CRLFs written yet

    @property
    def needed(self) -> bool:
        return not all(sink.full for sink in self._sinks)

    def feed(self, piece: bytes) -> None:
        if self._relaxed:
            piece = self._squeeze(piece)
        self._write_holding_crlfs(piece)

    def finish(self) -> None:
        if self._pending_space:  # whitespace at the very end, with no line break after it: kept
            self._pending_space = False
            self._write_holding_crlfs(b" ")
        if self._content or not self._relaxed:  # relaxed hashes a body with no content as empty
            self._write(b"\r\n")

    def _squeeze(self, piece: bytes) -> bytes:
        if self._pending_space:
            piece = b" " + piece
        if b"\t" in piece:
            piece = piece.replace(b"\t", b" ")
        while b"  " in piece:  # each pass halves every run of spaces
            piece = piece.replace(b"  ", b" ")
        self._pending_space = piece.endswith(b" ")
        if self._pending_space:
            piece = piece[:-1]
        if b" \r\n" in piece:
            piece = piece.replace(b" \r\n", b"\r\n")
        return piece

    def _write_holding_crlfs(self, piece: bytes) -> None:
        piece, pairs = _split_trailing_crlfs(piece)
        if piece:
            while self._held_crlfs:
                n = min(self._held_crlfs, len(_CRLFS) // 2)
                self._write(_CRLFS[: 2 * n])
                self._held_crlfs -= n
            self._write(piece)
            self._content = True
        self._held_crlfs += pairs

    def _write(self, data: bytes) -> None:
        for sink in self._sinks:
            sink.update(data)


def _split_trailing_crlfs(piece: bytes) -> tuple[bytes, int]:
    """``piece`` without the CRLFs it ends with, and how many there were (found by halving, not per octet)."""
    pairs = 0
    while piece.endswith(_CRLFS):  # a very long run: a block at a time
        piece = piece[: -len(_CRLFS)]
        pairs += len(_CRLFS) // 2
    if piece.endswith(b"\r\n"):
        low, high = 1, min(len(piece), len(_CRLFS) - 2) // 2  # piece ends with `low` CRLFs, not with more than `high`
        while low < high:
            mid = (low + high + 1) // 2
            if piece.endswith(_CRLFS[: 2 * mid]):
                low = mid
            else:
                high = mid - 1
        piece = piece[: -2 * low]
        pairs += low
    return piece, pairs
