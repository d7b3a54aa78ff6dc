"""Run a throw-away Knot DNS server (knotd) for integration tests.

Everything knotd writes (config, rundir, LMDB databases, log) lives in a
private temp dir, and knotd runs as the invoking user, so no root-owned
system paths (/run/knot, /var/lib/knot) are touched.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from devstack.service import Service

__all__ = ["KnotServer", "find_knotc", "find_knotd"]

# Debian puts the daemons in /usr/sbin, which is often not on a normal user's PATH.
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def _find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in _SBIN_DIRS:
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def find_knotd() -> str | None:
    """Path of the knotd binary, or None if Knot DNS is not installed."""
    return _find_binary("knotd")


def find_knotc() -> str | None:
    """Path of the knotc binary (used for `conf-check`), or None."""
    return _find_binary("knotc")


def _port_is_free(port: int) -> bool:
    """True if `port` can be bound for UDP and TCP on both 127.0.0.1 and ::1."""
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(family, kind) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    return False
    return True


def _free_port() -> int:
    """A port free on both loopback addresses (racy, so callers retry)."""
    for _ in range(50):
        # Let the kernel pick an ephemeral port on ::1, then check the rest.
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
            port: int = sock.getsockname()[1]
        if _port_is_free(port):
            return port
    raise RuntimeError("could not find a port free on both 127.0.0.1 and ::1")


def _quote(value: str | Path) -> str:
    # knot.conf is YAML-like; double quotes keep paths with odd chars intact.
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class KnotServer(Service):
    """Context manager running knotd for every `<origin>.zone` in `zone_dir`.

    Usage::

        with KnotServer(zone_dir) as knot:
            resolver.nameservers = [Do53Nameserver(knot.host, knot.port)]
    """

    host = "127.0.0.1"
    host6 = "::1"

    def __init__(
        self,
        zone_dir: str | Path,
        *,
        startup_timeout: float = 10.0,
        knotd: str | None = None,
        also_listen: tuple[str, ...] = (),
    ) -> None:
        # Further IPv4 addresses of this host to answer on (the deploy rehearsal's docker bridge).
        self.also_listen = also_listen
        self.zone_dir = Path(zone_dir).resolve()
        self.startup_timeout = startup_timeout
        self._knotd = knotd or find_knotd()
        self.port = 0
        self.zones: list[dns.name.Name] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._identity = f"knot-test-{secrets.token_hex(8)}"

    # -- public helpers -------------------------------------------------
    @property
    def servers_env(self) -> str:
        """`HOST:PORT`, the form our code reads from its DNS-servers env var."""
        return f"{self.host}:{self.port}"

    @property
    def workdir(self) -> Path:
        """Private temp dir holding knot.conf, rundir, storage and the log."""
        if self._tmp is None:
            raise RuntimeError("KnotServer is not running")
        return Path(self._tmp.name)

    def log_tail(self, lines: int = 40) -> str:
        """Last `lines` lines of knotd's combined stdout/stderr log."""
        if self._log_path is None or not self._log_path.exists():
            return "<no knotd log>"
        text = self._log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    # -- lifecycle ------------------------------------------------------
    def start(self) -> Self:
        if self._knotd is None:
            raise RuntimeError(
                "knotd (Knot DNS) not found on PATH or in /usr/sbin; "
                "install it (e.g. `apt-get install knot`) to run integration tests"
            )
        zone_files = sorted(self.zone_dir.glob("*.zone"))
        if not zone_files:
            raise RuntimeError(f"no *.zone files in {self.zone_dir}")
        self.zones = [dns.name.from_text(f.name.removesuffix(".zone")) for f in zone_files]
        self._tmp = tempfile.TemporaryDirectory(prefix="knot-")
        self._log_path = self.workdir / "knotd.log"
        try:
            # Free-port picking is racy; a lost race shows up as knotd
            # exiting on a bind error, so retry that with a fresh port.
            # A timeout (e.g. a broken zone file) is not retried.
            for attempt in range(3):
                self.port = _free_port()
                conf = self._write_config(zone_files)
                self._check_config(conf)
                failure, retryable = self._launch(conf)
                if failure is None:
                    return self
                self._stop_process()
                if not retryable or attempt == 2:
                    raise RuntimeError(f"{failure}; knotd log tail:\n{self.log_tail()}")
            raise AssertionError("unreachable")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self._stop_process()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- internals ------------------------------------------------------
    def _write_config(self, zone_files: list[Path]) -> Path:
        work = self.workdir
        rundir = work / "run"
        storage = work / "storage"
        rundir.mkdir(exist_ok=True)
        storage.mkdir(exist_ok=True)
        lines = [
            "server:",
            f"    rundir: {_quote(rundir)}",
            # No `user:` on purpose (the packaged /etc/knot/knot.conf has
            # knot:knot): without it knotd keeps the invoking uid/gid, as
            # root or not.  `user:` would also need names, not numeric ids.
            f"    listen: [ {', '.join(f'{a}@{self.port}' for a in ('127.0.0.1', '::1', *self.also_listen))} ]",
            "    udp-workers: 1",
            "    tcp-workers: 1",
            "    background-workers: 1",
            # Unique token answered to `id.server. CH TXT`: lets the readiness
            # probe tell our knotd from anything else on the port.
            f"    identity: {_quote(self._identity)}",
            '    version: ""',
            "",
            "log:",
            "  - target: stdout",
            "    any: info",
            "",
            # Journal/KASP/timer/catalog LMDBs default to /var/lib/knot; keep
            # them (and the control socket, via rundir) in our temp dir.
            "database:",
            f"    storage: {_quote(storage)}",
            "",
            "template:",
            "  - id: default",
            f"    storage: {_quote(self.zone_dir)}",
            # Serve the zone files as-is: never write back to them or
            # keep zone history in the journal.
            "    zonefile-sync: -1",
            "    zonefile-load: whole",
            "    journal-content: none",
            "",
            "zone:",
        ]
        for origin, path in zip(self.zones, zone_files, strict=True):
            lines.append(f"  - domain: {_quote(origin.to_text())}")
            lines.append(f"    file: {_quote(path)}")
        conf = work / "knot.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def _check_config(self, conf: Path) -> None:
        knotc = find_knotc()
        if knotc is None:  # conf-check is a nicety; knotd validates too
            return
        result = subprocess.run(
            [knotc, "-c", str(conf), "conf-check"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"knotc conf-check failed for {conf}:\n{result.stdout}{result.stderr}\nconfig:\n{conf.read_text()}"
            )

    def _launch(self, conf: Path) -> tuple[str | None, bool]:
        """Start knotd and wait until it serves every zone on both addresses.

        Returns (None, _) when ready, else (what went wrong, worth retrying).
        """
        assert self._knotd is not None and self._log_path is not None
        with self._log_path.open("ab") as log:
            try:
                self._proc = subprocess.Popen(
                    [self._knotd, "-c", str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            except OSError as exc:
                raise RuntimeError(f"cannot run knotd {self._knotd!r}: {exc}") from exc
        deadline = time.monotonic() + self.startup_timeout
        hosts = [self.host, self.host6]
        pending = [(z, h) for z in self.zones for h in hosts]
        while time.monotonic() < deadline:
            if (code := self._proc.poll()) is not None:
                # Typically "address already in use"; the caller retries.
                return f"knotd exited with status {code} (port {self.port})", True
            # knotd binds UDP with SO_REUSEPORT (not configurable), so a UDP
            # answer may come from another knotd that raced us to the port.
            # TCP is bound exclusively (tcp-reuseport defaults to off), so
            # first prove over TCP that our instance owns the port.
            hosts = [h for h in hosts if not self._is_ours(h)]
            if not hosts:
                pending = [(z, h) for z, h in pending if not self._serves(z, h)]
                if not pending:
                    return None, False
            time.sleep(0.05)
        waiting = [f"{z.to_text()}@{h}" for z, h in pending]
        return (
            f"knotd on port {self.port} not ready after {self.startup_timeout}s "
            f"(unconfirmed TCP ownership on {hosts}; no SOA answer for {waiting})"
        ), False

    def _is_ours(self, host: str) -> bool:
        """True if `id.server. CH TXT` over TCP returns our identity token."""
        query = dns.message.make_query("id.server.", dns.rdatatype.TXT, dns.rdataclass.CH)
        try:
            resp = dns.query.tcp(query, host, port=self.port, timeout=0.5)
        except (dns.exception.DNSException, OSError):
            return False
        return any(rd.to_text() == f'"{self._identity}"' for rrset in resp.answer for rd in rrset)

    def _serves(self, zone: dns.name.Name, host: str) -> bool:
        """True if knotd answers authoritatively with the zone's SOA."""
        query = dns.message.make_query(zone, dns.rdatatype.SOA)
        try:
            resp = dns.query.udp(query, host, port=self.port, timeout=0.5)
        except (dns.exception.DNSException, OSError):
            # Timeout / ECONNREFUSED: knotd hasn't bound or loaded yet.
            return False
        return (
            resp.rcode() == dns.rcode.NOERROR
            and bool(resp.flags & dns.flags.AA)
            and any(rrset.rdtype == dns.rdatatype.SOA for rrset in resp.answer)
        )

    def _stop_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # SIGTERM: knotd shuts down cleanly
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
