"""The bounded hand-over of a message from the MTA's callbacks to the DKIM check's thread."""

from __future__ import annotations

import threading
import time

import pytest

from ipv6gate.evaluation.body_pipe import BodyPipe


def test_reader_gets_every_byte_in_order_across_threads() -> None:
    pipe = BodyPipe(max_chunks=2)
    data = bytes(range(256)) * 40
    got = bytearray()

    def read() -> None:
        while chunk := pipe.read(33):
            got.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(0, len(data), 100):
        pipe.write(data[i : i + 100])  # more chunks than the pipe holds: the writer waits its turn
    pipe.close()
    reader.join(5)
    assert bytes(got) == data


def test_a_writer_never_waits_once_the_reader_is_done() -> None:
    pipe = BodyPipe(max_chunks=1)
    pipe.reader_done()
    started = time.monotonic()
    for _ in range(10):
        pipe.write(b"x" * 1000)
    pipe.close()
    assert time.monotonic() - started < 0.4


def test_a_failed_pipe_stops_the_reader() -> None:
    pipe = BodyPipe()
    pipe.write(b"abc")
    pipe.fail("message over its size limit")
    with pytest.raises(OSError, match="size limit"):
        pipe.read(10)
