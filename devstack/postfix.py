"""A private Postfix instance on loopback, and the milter in front of it, for tests and ``make smtp-demo``.

``PostfixInstance`` writes its own main.cf/master.cf into a temporary directory (own queue, data
and log; smtpd on ``127.0.0.1:PORT`` and ``[::1]:PORT``; no chroot; every accepted message goes to
``discard:``), starts it with ``postfix -c DIR start`` and stops it again: no system service is
touched. XCLIENT is allowed from loopback, so a client here can present any IPv6 address; Postfix
then reconnects to the milter with that address (Postfix's XCLIENT_README: the milter sees the
client's presented address, not loopback).

``MilterProcess`` runs ``ipv6gate milter`` in a subprocess with a given environment and keeps its
stdout (the decision log lines) for the caller to read.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

from devstack.json_lines import json_records
from devstack.page import main_cf
from devstack.service import Service, end_process

ROOT = Path(__file__).resolve().parents[1]
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"

_SERVICES = """\
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
showq     unix  n - n - - showq
postlog   unix-dgram n - n - 1 postlogd
"""


def free_port() -> int:
    """A TCP port free on both 127.0.0.1 and [::1] (Postfix listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock6:
                sock6.bind(("::1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no TCP port free on both 127.0.0.1 and [::1]")


def wait_for_port(host: str, port: int, timeout: float, what: str, alive: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"{what} exited before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {host}:{port} within {timeout:.0f} s")


class PostfixInstance(Service):
    """``postfix -c DIR``, listening on 127.0.0.1 and [::1] at ``port``, with ``milter`` as its smtpd milter."""

    def __init__(
        self,
        milter: str,
        *,
        extra: Mapping[str, str] | None = None,
        hostname: str = "mx.ipv6gate.test",
        capture: bool = False,
        main_cf_lines: str = "",
        chroot: bool = False,
    ) -> None:
        self.milter = milter  # Postfix's form: inet:127.0.0.1:PORT or unix:/path
        # Lines appended to main.cf verbatim (a docs page's); the parameters they set are not written above them.
        self.main_cf_lines = main_cf_lines
        self.chroot = chroot  # smtpd chrooted to the queue directory, as Debian's master.cf has it
        self.extra = dict(extra or {})
        # True: accepted messages are written to captured/<queue id> (as delivered, with the
        # milter's header changes) instead of being discarded.
        self.capture = capture
        self.hostname = hostname
        self.port = 0
        self.directory: Path | None = None

    def start(self) -> Self:
        if not Path(POSTFIX).exists():
            raise RuntimeError("Postfix is not installed (make smtp-deps installs it with apt-get)")
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="ipv6gate-postfix-"))
        self.directory.chmod(0o755)  # Postfix's daemons run as the postfix user
        for sub in ("queue", "data"):
            (self.directory / sub).mkdir()
        shutil.chown(self.directory / "data", "postfix")
        (self.directory / "main.cf").write_text(self._main_cf(), encoding="ascii")
        chroot = "y" if self.chroot else "n"
        listen = f"127.0.0.1:{self.port} inet n - {chroot} - - smtpd\n[::1]:{self.port} inet n - {chroot} - - smtpd\n"
        captured = self.directory / "captured"
        captured.mkdir(mode=0o1777)
        captured.chmod(0o1777)
        capture = f"capture unix - n n - - pipe\n  flags=q user=nobody argv=/usr/bin/tee {captured}/${{queue_id}}\n"
        (self.directory / "master.cf").write_text(listen + _SERVICES + capture, encoding="ascii")
        try:
            self._postfix("check")
            self._postfix("start")
            wait_for_port("127.0.0.1", self.port, 20, "postfix")
        except BaseException:
            self.stop()
            raise
        return self

    def _main_cf(self) -> str:
        assert self.directory is not None
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.directory / "queue"),
            "data_directory": str(self.directory / "data"),
            "maillog_file": str(self.directory / "maillog"),
            "maillog_file_prefixes": str(self.directory),
            "mail_owner": "postfix",
            "myhostname": self.hostname,
            "mydestination": "",
            "inet_protocols": "all",
            "alias_maps": "",
            "alias_database": "",
            # Every domain is relayed and every relayed message is thrown away: nothing leaves.
            "relay_domains": "static:all",
            "smtpd_relay_restrictions": "reject_unauth_destination",
            "default_transport": "capture:" if self.capture else "discard:",
            "relay_transport": "capture:" if self.capture else "discard:",
            "smtpd_authorized_xclient_hosts": "127.0.0.0/8, [::1]/128",
            "smtpd_peername_lookup": "no",
            "smtpd_milters": self.milter,
            "milter_default_action": "accept",  # README "At SMTP time": fail open, as the Lambda does
            "milter_protocol": "6",
            "smtpd_banner": "$myhostname ESMTP",
            "biff": "no",
            "smtputf8_enable": "no",
        }
        settings.update(self.extra)
        for name in main_cf(self.main_cf_lines):
            settings.pop(name, None)
        return "".join(f"{k} = {v}\n" for k, v in settings.items()) + self.main_cf_lines

    @property
    def queue_directory(self) -> Path:
        assert self.directory is not None
        return self.directory / "queue"

    @property
    def master_pid(self) -> int | None:
        """The master daemon's process id (its children are the instance's other processes)."""
        try:
            return int((self.queue_directory / "pid" / "master.pid").read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None

    def postconf(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``postconf -c DIR ARGS``: what this instance's Postfix reads from its main.cf."""
        assert self.directory is not None
        return subprocess.run(
            ["postconf", "-c", str(self.directory), *args], capture_output=True, text=True, timeout=30, check=False
        )

    def _postfix(self, *command: str) -> None:
        assert self.directory is not None
        done = subprocess.run(
            [POSTFIX, "-c", str(self.directory), *command], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            said = (done.stderr or done.stdout or self.maillog()).strip()
            raise RuntimeError(f"postfix {' '.join(command)} failed: {said[-600:]}")

    def delivered(self, queue_id: str, timeout: float = 10.0) -> bytes:
        """The message as delivered (``capture=True``), waiting for the queue manager to get to it."""
        assert self.directory is not None
        path = self.directory / "captured" / queue_id
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and path.stat().st_size and (data := path.read_bytes()).endswith(b"\n"):
                time.sleep(0.1)  # let tee finish
                return path.read_bytes() if path.stat().st_size >= len(data) else data
            time.sleep(0.05)
        raise AssertionError(
            f"message {queue_id} was not delivered within {timeout} s; maillog: {self.maillog()[-600:]}"
        )

    def maillog(self) -> str:
        path = self.directory / "maillog" if self.directory else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def stop(self) -> None:
        directory, self.directory = self.directory, None
        if directory is None:
            return
        subprocess.run([POSTFIX, "-c", str(directory), "stop"], capture_output=True, timeout=60, check=False)
        shutil.rmtree(directory, ignore_errors=True)


class MilterProcess(Service):
    """``python -m ipv6gate.entrypoints.cli milter --listen 127.0.0.1:PORT`` with ``env``; its log lines kept."""

    def __init__(self, env: Mapping[str, str], args: Sequence[str] = (), *, unix: bool = False) -> None:
        self.env = dict(env)
        self.args = list(args)
        self.unix = unix  # a unix socket instead of TCP on 127.0.0.1
        self.port = 0
        self._socket_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    @property
    def postfix_address(self) -> str:
        if self._socket_dir is not None:
            return f"unix:{self._socket_dir / 'milter.sock'}"
        return f"inet:127.0.0.1:{self.port}"

    def start(self) -> Self:
        socket_args: list[str] = []
        if self.unix:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="ipv6gate-milter-"))
            self._socket_dir.chmod(0o755)
            listen = f"unix:{self._socket_dir / 'milter.sock'}"
            socket_args = ["--socket-group", "postfix"]  # Postfix's smtpd runs as the postfix user
        else:
            self.port = free_port()
            listen = f"127.0.0.1:{self.port}"
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 - read after the process stops; closed with it
        env = {**os.environ, **self.env, "PYTHONPATH": f"{ROOT / 'layers' / 'ipv6gate'}:{ROOT}"}
        command = [sys.executable, "-m", "ipv6gate.entrypoints.cli", "milter", "--listen", listen, *socket_args]
        self._proc = subprocess.Popen([*command, *self.args], env=env, stdout=self._out, stderr=subprocess.STDOUT)
        try:
            if self._socket_dir is not None:
                self._wait_for_listening()
            else:
                wait_for_port("127.0.0.1", self.port, 30, "ipv6gate milter", alive=lambda: self._proc.poll() is None)
        except BaseException:
            output = self.output()
            self.stop()
            raise RuntimeError(f"ipv6gate milter did not start: {output[-800:]}") from None
        return self

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _wait_for_listening(self, timeout: float = 30.0) -> None:
        """Until the milter logs "milter listening": only after the socket is bound and given its group."""
        deadline = time.monotonic() + timeout
        while not any(r.get("message") == "milter listening" for r in self.records()):
            if self._proc is None or self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ipv6gate milter did not log 'milter listening'")
            time.sleep(0.05)

    def output(self) -> str:
        if self._out is None:
            return ""
        self._out.seek(0)
        return self._out.read().decode(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        return json_records(self.output())

    def decisions(self) -> list[dict[str, Any]]:
        return [r["decision"] for r in self.records() if r.get("message") == "decision"]

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        end_process(proc)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)


@dataclass
class SmtpResult:
    rcpt: dict[str, tuple[int, str]]  # recipient -> (code, text) at RCPT TO
    data: tuple[int, str] | None  # the reply to the end of data; None when no recipient was accepted
    mail: tuple[int, str] = (0, "")

    @property
    def queue_id(self) -> str:
        text = self.data[1] if self.data else ""
        return text.rsplit("queued as ", 1)[1].strip() if "queued as " in text else ""


def send(
    port: int,
    *,
    client_ip: str,
    helo: str,
    mail_from: str,
    recipients: Sequence[str],
    message: bytes,
    host: str = "127.0.0.1",
    client_name: str = "[UNAVAILABLE]",
) -> SmtpResult:
    """One SMTP session: XCLIENT as ``client_ip``, then the envelope and the message; every reply kept."""
    with smtplib.SMTP(host, port, timeout=60) as smtp:
        smtp.ehlo("client.ipv6gate.test")
        addr = f"IPV6:{client_ip}" if ":" in client_ip else client_ip
        code, text = smtp.docmd("XCLIENT", f"ADDR={addr} NAME={client_name} HELO={helo}")
        if code != 220:
            raise RuntimeError(f"XCLIENT refused: {code} {text.decode(errors='replace')}")
        smtp.ehlo_resp = None
        smtp.ehlo(helo)
        code, text = smtp.mail(mail_from)
        if code != 250:
            return SmtpResult({}, None, (code, text.decode(errors="replace")))
        replies = {r: _pair(smtp.rcpt(r)) for r in recipients}
        if not any(200 <= c < 300 for c, _ in replies.values()):
            smtp.rset()
            return SmtpResult(replies, None)
        data = _pair(smtp.data(message))
        return SmtpResult(replies, data)


def _pair(reply: tuple[int, bytes]) -> tuple[int, str]:
    return reply[0], reply[1].decode(errors="replace").replace("\n", " ")
