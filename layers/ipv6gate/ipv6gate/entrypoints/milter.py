"""``ipv6gate milter``: the rule at SMTP time, so the sending server hears 450/550 in its own session.

pymilter wraps Sendmail's libmilter, the reference implementation of the protocol that Postfix
implements against: libmilter negotiates the protocol and runs each SMTP session on a thread of
its own, calling one ``GateMilter`` per connection. Each callback feeds one stage of
``evaluation.staged.SmtpSession``; nothing here decides.

An unexpected error in a callback accepts (as the Lambda continues its rule set): a bug must not
turn away mail that nobody has judged. An error log line names the stage it happened in.

``serve`` binds the socket itself before libmilter's loop starts (``milter_socket``: checked first,
then mode and group), runs that loop on a thread of its own, and keeps the main thread for the
stop: SIGTERM removes a unix socket, waits (bounded) for the sessions in progress, then ends the loop.
"""

from __future__ import annotations

import functools
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

import Milter

from ipv6gate.checks.auth_results import HEADER, claims_to_be, header_value
from ipv6gate.decision.replies import Reply
from ipv6gate.entrypoints import milter_socket
from ipv6gate.entrypoints.milter_resources import Resources, Sessions
from ipv6gate.entrypoints.milter_socket import UnixSocket
from ipv6gate.evaluation.record import Decision
from ipv6gate.evaluation.runner import RunnerBusy
from ipv6gate.evaluation.staged import SmtpGate, SmtpSession

# libmilter's callback answers, under libmilter's own names (SES's CONTINUE is another thing).
SMFIS_CONTINUE: int = Milter.CONTINUE
SMFIS_ACCEPT: int = Milter.ACCEPT
SMFIS_REJECT: int = Milter.REJECT
SMFIS_TEMPFAIL: int = Milter.TEMPFAIL
# pymilter's decorator: the MTA is told not to wait for that callback's reply (it must return CONTINUE).
_noreply: Callable[[Callable[..., Any]], Callable[..., Any]] = Milter.noreply


class ListenError(Exception):
    """The socket cannot be opened (in use, served by another milter, no such directory or host)."""


#: What the milter does with each finished decision once it is recorded: log it, count it.
Publish = Callable[[Decision], None]

# libmilter calls back on threads Python did not create, and awscrt crashed the process on them: the
# one step that calls AWS, RCPT (its tenant lookup), runs on the server's own step threads
# (``milter_resources``), the bookkeeping after a reply (trace write, log, metrics) on its recorder.
# Every other step (connect, MAIL FROM, the message, abort, close) calls no AWS and runs on
# libmilter's thread: no thread hop on its way, none between the last DNS answer and the reply.

BUSY = Reply(421, "4.3.2", "Service not available, too many SMTP sessions in progress; try again later")
READERS_BUSY = Reply(451, "4.3.2", "Service busy, too many messages being checked; try again later")


def _guarded(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def wrapper(self: GateMilter, *args: Any) -> Any:
        try:
            return callback(self, *args)
        except Exception as exc:
            self.failed(callback.__name__, exc)
            return SMFIS_ACCEPT  # stop filtering this message; the MTA delivers it

    return wrapper


def _unanswered(callback: Callable[..., Any]) -> Callable[..., Any]:
    """A header or body callback Postfix is told not to wait for (pymilter's ``noreply``: a round trip
    less per header and body chunk). It cannot answer, so a failure is kept and the end of the
    message accepts, as an error in any callback does."""

    @functools.wraps(callback)
    def wrapper(self: GateMilter, *args: Any) -> int:
        if self._broken:  # the message is let through unjudged anyway: one failure logged, not one per chunk
            return SMFIS_CONTINUE
        try:
            callback(self, *args)
        except Exception as exc:
            self._broken = True
            self.failed(callback.__name__, exc)
        return SMFIS_CONTINUE

    return wrapper


class GateMilter(Milter.Base):  # type: ignore[misc]
    """One SMTP connection. ``serve`` sets the class attributes before libmilter starts."""

    gate: SmtpGate
    authserv_id: str
    publish: Publish
    on_error: Callable[[str, BaseException], None]
    resources: Resources

    def __init__(self) -> None:
        self._admitted = self.resources.sessions.opened()  # libmilter calls close() at the connection's end
        self._session: SmtpSession | None = None
        self._results_headers = 0  # Authentication-Results headers seen so far in this message
        self._forged: list[int] = []  # their 1-based positions among themselves, when they claim our id
        self._broken = False  # a header or body callback of this message failed: the end of it accepts

    def failed(self, stage: str, exc: BaseException) -> None:
        type(self).on_error(stage, exc)

    @_guarded
    def connect(self, hostname: str, family: int, hostaddr: Any) -> int:
        # Postfix gives the client address here; after XCLIENT it calls connect again with the new one.
        if not self._admitted:  # past MILTER_MAX_SESSIONS: refused before anything starts for it
            self.resources.busy("MILTER_MAX_SESSIONS", BUSY)
            return self._answer(BUSY)
        address = hostaddr[0] if family in (socket.AF_INET, socket.AF_INET6) and hostaddr else None
        self._session = self.gate.connect(address, self.getsymval("j") or "")
        return SMFIS_CONTINUE

    @_guarded
    def hello(self, name: str) -> int:
        self._live().helo(name)
        return SMFIS_CONTINUE

    @_guarded
    def envfrom(self, sender: str, *params: str) -> int:
        self._results_headers, self._forged, self._broken = 0, [], False
        self._finish(self._live().mail_from(sender))
        return SMFIS_CONTINUE

    @_guarded
    def envrcpt(self, recipient: str, *params: str) -> int:
        return self._answer(self.resources.hop(self._live().rcpt, recipient))

    def header(self, name: str, value: bytes) -> None:
        if name.lower() == HEADER.lower():
            self._results_headers += 1
            if claims_to_be(value.decode("utf-8", "replace"), self.authserv_id):
                self._forged.append(self._results_headers)
        self._live().header(name.encode("ascii", "replace"), value)

    header.error_strategy = "bytes"  # type: ignore[attr-defined]  # pymilter: hand the value over undecoded
    header = _noreply(_unanswered(header))  # wraps() keeps error_strategy

    @_guarded
    def eoh(self) -> int:
        try:
            self._live().end_of_headers()
        except RunnerBusy:  # every DKIM reader is taken (MILTER_DKIM_READERS): the client retries later
            self.resources.busy("MILTER_DKIM_READERS", READERS_BUSY)
            self._finish(self._live().reset())
            return self._answer(READERS_BUSY)
        return SMFIS_CONTINUE

    @_noreply
    @_unanswered
    def body(self, chunk: bytes) -> None:
        self._live().body(chunk)

    @_guarded
    def eom(self) -> int:
        # RFC 8601 §5: a header claiming our authserv-id is not ours. Removed before anything else can
        # fail (an error below still accepts the message); last first, so the others' positions stay put.
        for position in reversed(self._forged):
            self.chgheader(HEADER, position, "")
        if self._broken:  # a header or body callback failed (logged): the message goes on unjudged
            self._finish(self._live().reset())
            return SMFIS_ACCEPT
        outcome = self._live().end_of_message(self.getsymval("i") or "")
        checks = outcome.decision.checks
        if outcome.reply is None and checks.ran():
            # At the top (RFC 8601 §5); with leading space negotiated, the space after the colon is ours.
            self.addheader(HEADER, " " + header_value(self.authserv_id, tuple(checks)), 0)
        self._finish(outcome.decision)
        return self._answer(outcome.reply)

    def abort(self) -> int:
        try:
            if self._session is not None:
                self._finish(self._session.reset())
        except Exception as exc:
            self.failed("abort", exc)
        return SMFIS_CONTINUE

    def close(self) -> int:
        try:
            if self._session is not None:
                self._finish(self._session.close())
        except Exception as exc:
            self.failed("close", exc)
        finally:
            self.resources.sessions.closed()
        self._session = None
        return SMFIS_CONTINUE

    def _live(self) -> SmtpSession:
        if self._session is None:  # no connect event (a protocol the MTA did not follow)
            self._session = self.gate.connect(None)
        return self._session

    def _answer(self, reply: Reply | None) -> int:
        if reply is None:
            return SMFIS_CONTINUE
        self.setreply(str(reply.code), reply.status, reply.text.replace("%", "%%"))
        return SMFIS_REJECT if reply.permanent else SMFIS_TEMPFAIL

    def _finish(self, decision: Decision | None) -> None:  # recorded, logged, counted after the reply
        if decision is not None:
            self.resources.after_reply(_record, type(self), decision)


def _record(milter: type[GateMilter], decision: Decision) -> None:
    try:
        milter.publish(milter.gate.record(decision))
    except Exception as exc:
        milter.on_error("record", exc)


def serve(
    gate: SmtpGate,
    socket_spec: str,
    authserv_id: str,
    publish: Publish,
    on_error: Callable[[str, BaseException], None],
    *,
    unix: UnixSocket | None = None,
    listening: Callable[[], None] = lambda: None,
    drain_seconds: float = 30.0,
    timeout: int = 600,
    max_sessions: int = 500,
    stop: threading.Event | None = None,
    on_busy: Callable[[str, Reply], None] = lambda _setting, _reply: None,
    on_unrecorded: Callable[[Decision], None] = lambda _decision: None,
) -> int:
    """Run until SIGTERM/SIGINT, then wait up to ``drain_seconds`` for open sessions; how many were cut off.

    ``socket_spec`` is libmilter's: inet:PORT@HOST, inet6:PORT@HOST, unix:PATH (``unix`` then names
    its mode and group). ``listening`` is called once the socket is bound, owned and listening.
    ``stop``, when given, stops it as SIGTERM does (a caller that is not the main thread). ``on_busy``
    hears of each temporary refusal at a ceiling (the setting's name and the reply); ``on_unrecorded``
    of each decision the full recorder queue did not take (its reply was given all the same).
    """
    resources = Resources(
        max_sessions=max_sessions, on_busy=on_busy, on_unrecorded=lambda args: on_unrecorded(args[-1])
    )
    GateMilter.resources = resources
    GateMilter.gate = gate
    GateMilter.authserv_id = authserv_id
    GateMilter.publish = staticmethod(publish)
    GateMilter.on_error = staticmethod(on_error)
    milter_class = Milter.header_leading_space(GateMilter)  # folded headers byte for byte, for DKIM
    Milter.factory = milter_class
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS)
    ours = _bind(socket_spec, unix)
    try:
        listening()
        return _run_until_stopped(socket_spec, timeout, drain_seconds, unix, ours, resources.sessions, stop)
    finally:
        if unix is not None:
            # libmilter removes its socket at exit only when not root: do it here, if it is still ours.
            milter_socket.remove_if_ours(unix.path, ours)
        resources.close()


def _run_until_stopped(  # noqa: PLR0917 - the one caller is serve
    socket_spec: str,
    timeout: int,
    drain_seconds: float,
    unix: UnixSocket | None,
    ours: tuple[int, int] | None,
    sessions: Sessions,
    stop: threading.Event | None,
) -> int:
    """libmilter on a thread of its own; SIGTERM/SIGINT/SIGHUP reach this (main) thread instead, which drains.

    libmilter's own stop (its signal thread, or ``smfi_stop``) also stops serving the sessions in
    progress: Debian's libmilter polls idle sessions from a worker pool that ends with the stop
    (measured: the next command of an open session got no reply). So the stop is asked for only
    after the drain. libmilter blocks those signals in the thread that calls its main loop and in
    the threads it starts; Linux gives a signal sent to the process to the main thread, which
    does not block them.
    """
    failure: list[BaseException] = []
    wake = stop or threading.Event()

    def run() -> None:
        try:
            # The socket bound in _bind stays: smfi_opensocket returns at once when one is open.
            Milter.runmilter("ipv6gate", socket_spec, timeout, rmsock=False)
        except BaseException as exc:
            failure.append(exc)
        finally:
            wake.set()

    # Python lets only the main thread set signal handlers (the CLI runs the milter there).
    on_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, lambda *_: wake.set()) for sig in _STOP_SIGNALS} if on_main else {}
    libmilter = threading.Thread(target=run, name="libmilter", daemon=True)
    libmilter.start()
    try:
        wake.wait()
        cut_off = 0
        asked_to_stop = libmilter.is_alive()  # a signal or ``stop``, not the loop ending
        if asked_to_stop:
            if unix is not None:  # new SMTP sessions now get Postfix's milter_default_action
                milter_socket.remove_if_ours(unix.path, ours)
            cut_off = sessions.drain(drain_seconds)
            Milter.milter.stop()  # closes the listening socket; the main loop notices within seconds
            libmilter.join(timeout=15)
        if failure:
            raise ListenError(f"cannot serve on {socket_spec}: {failure[0]}")
        if not asked_to_stop:
            # e.g. libmilter's stop kept in static state from an earlier serve in this process
            raise ListenError(f"cannot serve on {socket_spec}: libmilter's loop ended by itself")
        return cut_off
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _bind(socket_spec: str, unix: UnixSocket | None) -> tuple[int, int] | None:
    """Bind and listen before any session can start; the socket's identity, to remove only our own."""
    try:
        milter_socket.check_free(socket_spec)
        Milter.milter.setconn(socket_spec)
        Milter.milter.register("ipv6gate")  # libmilter opens a socket only for a registered filter
        if unix is None:
            Milter.milter.opensocket(False)
            return None
        with milter_socket.umask_for(unix.mode):
            Milter.milter.opensocket(False)  # never True: that would take over a live milter's socket
        ours = milter_socket.identity(unix.path)
        try:
            milter_socket.own(unix)
        except milter_socket.SocketError:
            milter_socket.remove_if_ours(unix.path, ours)
            raise
        return ours
    except milter_socket.SocketError as exc:
        raise ListenError(f"cannot listen on {exc}") from None
    except (Milter.milter.error, OSError) as exc:  # a race after the checks: libmilter gives no reason
        raise ListenError(f"cannot listen on {socket_spec}: {exc}") from None
