"""The chain an operator runs instead of ``ipv6gate milter``: OpenDKIM and pyspf-milter, as private processes.

Each is the Debian package's own program, started in the foreground with a configuration file of
its own in a temporary directory (a unix socket there, its PID file, ``UserID`` its package's
unprivileged user): no system service, nothing in /etc. The configuration lines come from the
caller (``bench/README.md`` shows them); only the per-run lines (socket, PID file, user) are added
here. Both read the system resolver: run them inside ``devstack.private_net.isolated``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Self

from devstack.service import Service, end_process

OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"
PYSPF_MILTER = shutil.which("pyspf-milter") or "/usr/bin/pyspf-milter"


class PeerMilter(Service):
    """A packaged milter run from ``config`` (+ socket, PID file, user) until ``stop``."""

    name = ""
    program = ""
    user = ""

    def __init__(self, config: str) -> None:
        self.config = config
        self.directory: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        assert self.directory is not None
        return self.directory / f"{self.name}.sock"

    @property
    def postfix_address(self) -> str:
        return f"unix:{self.socket_path}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def exit_code(self) -> int | None:
        """None while it runs; its exit status once it has ended by itself (before ``stop``)."""
        return self._proc.poll() if self._proc is not None else None

    def per_run_lines(self) -> str:
        raise NotImplementedError

    def command(self, conf: Path) -> list[str]:
        raise NotImplementedError

    def start(self) -> Self:
        if not Path(self.program).exists():
            raise RuntimeError(f"{self.name} is not installed (make smtp-deps installs it with apt-get)")
        self.directory = Path(tempfile.mkdtemp(prefix=f"ipv6gate-{self.name}-"))
        self.directory.chmod(0o777)  # the socket is made after the switch to the package's user
        conf = self.directory / f"{self.name}.conf"
        conf.write_text(self.config + self.per_run_lines(), encoding="ascii")
        conf.chmod(0o644)
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 - read by output(); closed with the process
        self._proc = subprocess.Popen(self.command(conf), stdout=self._out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not self.socket_path.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                said = self.output()
                self.stop()
                raise RuntimeError(f"{self.name} did not open its socket: {said[-600:]}")
            time.sleep(0.05)
        # Postfix's smtpd (the postfix user, in neither package's group) must connect: pyspf-milter makes
        # its socket 0770 whatever the umask (OpenDKIM's follows its UMask).
        self.socket_path.chmod(0o666)
        return self

    def output(self) -> str:
        if self._out is None:
            return ""
        self._out.seek(0)
        return self._out.read().decode(errors="replace")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        end_process(proc)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


class OpenDkim(PeerMilter):
    name = "opendkim"
    program = OPENDKIM
    user = "opendkim"

    def __init__(self, config: str, unbound: str = "") -> None:
        super().__init__(config)
        self.unbound = unbound  # libunbound's configuration (ResolverConfiguration), if any

    def per_run_lines(self) -> str:
        assert self.directory is not None
        lines = f"\nSocket local:{self.socket_path}\nPidFile {self.directory / 'opendkim.pid'}\nUserID {self.user}\n"
        if self.unbound:
            path = self.directory / "unbound.conf"
            path.write_text(self.unbound, encoding="ascii")
            path.chmod(0o644)
            lines += f"ResolverConfiguration {path}\n"
        return lines

    def command(self, conf: Path) -> list[str]:
        return [self.program, "-f", "-x", str(conf)]  # -f: in the foreground (the package's unit runs it so too)


class PySpfMilter(PeerMilter):
    name = "pyspf-milter"
    program = PYSPF_MILTER
    user = "pyspf-milter"

    def per_run_lines(self) -> str:
        assert self.directory is not None
        pid_file = self.directory / "pyspf-milter.pid"
        return f"\nSocket = local:{self.socket_path}\nPidFile = {pid_file}\nUserID = {self.user}\n"

    def command(self, conf: Path) -> list[str]:
        return [self.program, str(conf)]  # the package's unit: ExecStart=/usr/bin/pyspf-milter CONF
