"""One message as an MTA hands it over (header by header, then body chunks), fed to the DKIM check as it streams.

The header block is kept (bounded) until the end of the headers, since only then is it known
whether DKIM is needed and the message signed; from then on every chunk goes straight to the check's
thread through a ``BodyPipe``. Over a limit, the answer is DKIM ``permerror`` without asking the
check, as for a stored message over ``MESSAGE_MAX_BYTES``.
"""

from __future__ import annotations

from ipv6gate.checks.results import CheckResult, Result
from ipv6gate.dns import DnsSession
from ipv6gate.evaluation.body_pipe import BodyPipe
from ipv6gate.evaluation.runner import Check, until_cancelled


class MessageFeed:
    def __init__(self, *, max_header_bytes: int, max_message_bytes: int) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_message_bytes = max_message_bytes
        self.dkim_signed = False
        self.result: CheckResult | None = None  # set when a limit already decided DKIM
        self._head = bytearray()
        self._body_bytes = 0
        self._pipe: BodyPipe | None = None

    def header(self, name: bytes, value: bytes) -> None:
        if name.strip().lower() == b"dkim-signature":
            self.dkim_signed = True
        if self.result is not None:
            return
        # The MTA hands folded lines over with bare LF; DKIM's canonicalisation needs CRLF.
        line = name + b":" + value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n"
        if len(self._head) + len(line) > self.max_header_bytes:
            self.result = CheckResult("dkim", Result.PERMERROR, f"header block over {self.max_header_bytes} bytes")
            self._head.clear()
            return
        self._head += line

    def dkim_check(self, max_signatures: int) -> Check | None:
        """At the end of the headers: the DKIM check reading this message as it arrives, if it is to run."""
        if not self.dkim_signed or self.result is not None:
            return None
        from ipv6gate.checks.dkim import check_dkim_stream

        pipe = self._pipe = BodyPipe()
        pipe.write(bytes(self._head) + b"\r\n")
        self._head.clear()

        def check(session: DnsSession) -> CheckResult:
            try:
                # Stops reading once the verdict no longer needs it (the session is cancelled).
                return check_dkim_stream(session, until_cancelled(pipe, session), max_signatures=max_signatures)
            finally:
                pipe.reader_done()

        return check

    def body(self, chunk: bytes) -> None:
        self._body_bytes += len(chunk)
        if self._pipe is None or self.result is not None:
            return
        if self._body_bytes > self.max_message_bytes:
            limit = self.max_message_bytes
            self.result = CheckResult("dkim", Result.PERMERROR, f"message over {limit} bytes (MESSAGE_MAX_BYTES)")
            self._pipe.fail("message over its size limit")
            return
        self._pipe.write(chunk)

    def end(self) -> None:
        if self._pipe is not None:
            self._pipe.close()

    def abort(self) -> None:
        if self._pipe is not None:
            self._pipe.fail("transaction aborted")
