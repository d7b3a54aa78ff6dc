"""A private Docker engine for ``make local`` and its CI test: our own dockerd, stopped by its pid.

``DockerEngine`` starts ``dockerd`` with its own socket, exec root and pidfile under a project-local
state directory (``.local-lambda/``) and a data root in a machine-wide cache (so the Lambda base image
is built once per machine, not once per clone), waits until it answers, and stops it by the pid it
started. Only one engine uses a data root at a time (an ``flock`` on ``<data root>.lock``; a second
user waits). ``ensure_arm64_emulation`` registers qemu-aarch64 with binfmt_misc on an x86_64 host.

Nothing here installs packages: ``make local-deps`` does (apt-get), and a missing tool is reported
with one line naming it (``EngineError``).
"""

from __future__ import annotations

import fcntl
import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Self

from devstack.service import Service

REPO = Path(__file__).resolve().parents[1]
STATE_DIR = REPO / ".local-lambda"
# Machine-wide: the docker data root with the cached base image. Override with IPV6GATE_LOCAL_CACHE.
DEFAULT_CACHE = Path("/var/cache/ipv6gate-local-lambda")
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
QEMU_AARCH64_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; containerd appends to the exec root


class EngineError(RuntimeError):
    """The local Lambda engine could not be set up; the message says what to do (one line)."""


def cache_dir() -> Path:
    return Path(os.environ.get("IPV6GATE_LOCAL_CACHE") or DEFAULT_CACHE)


def needs_emulation(arch: str) -> bool:
    """True when containers of ``arch`` (``arm64``/``x86_64``) do not run natively here."""
    machine = platform.machine().lower()
    native = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return native != arch


def ensure_arm64_emulation() -> str:
    """Register qemu-aarch64 with binfmt_misc (``F`` flag: usable inside containers) if needed.

    Returns what was done, for the log.
    """
    if not needs_emulation("arm64"):
        return "arm64 is native"
    if (BINFMT_DIR / "qemu-aarch64").exists():
        return "qemu-aarch64 already registered"
    if not QEMU_AARCH64_CONF.exists():
        raise EngineError(f"{QEMU_AARCH64_CONF} missing: install qemu-user-static (make local-deps)")
    if not (BINFMT_DIR / "register").exists():
        proc = subprocess.run(
            ["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise EngineError(f"cannot mount binfmt_misc on {BINFMT_DIR}: {proc.stderr.strip()} (needs root)")
    line = next(
        (ln for ln in QEMU_AARCH64_CONF.read_text(encoding="utf-8").splitlines() if ln.startswith(":qemu-aarch64:")),
        None,
    )
    if line is None:
        raise EngineError(f"{QEMU_AARCH64_CONF} has no :qemu-aarch64: line")
    try:
        (BINFMT_DIR / "register").write_text(line, encoding="utf-8")
    except OSError as exc:
        raise EngineError(f"cannot register qemu-aarch64 with binfmt_misc: {exc}") from exc
    return "registered qemu-aarch64 with binfmt_misc"


def require_tools(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None and not Path("/usr/sbin", n).exists()]
    if missing:
        raise EngineError(f"not installed: {', '.join(missing)} (run `make local-deps` as root)")


class DockerEngine(Service):
    """``dockerd`` on a private unix socket; ``with DockerEngine() as engine: engine.host``."""

    def __init__(
        self,
        state_dir: Path = STATE_DIR,
        data_root: Path | None = None,
        *,
        startup_timeout: float = 60.0,
        lock_timeout: float = 1800.0,
    ) -> None:
        self.state_dir = state_dir
        self.data_root = data_root or cache_dir() / "docker"
        self.startup_timeout = startup_timeout
        self.lock_timeout = lock_timeout
        self.pid: int | None = None
        self._lock: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._short: str | None = None  # a short exec root when the state dir's path is too long

    @property
    def socket(self) -> Path:
        return self._runtime_dir() / "docker.sock"

    @property
    def host(self) -> str:
        """The ``DOCKER_HOST`` value for this engine."""
        return f"unix://{self.socket}"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "dockerd.log"

    def _runtime_dir(self) -> Path:
        return Path(self._short) if self._short else self.state_dir

    def env(self) -> dict[str, str]:
        """Environment for docker clients (SAM CLI, docker-py) talking to this engine only."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.host
        return env

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.host, timeout=600)

    def bridge_ip(self) -> str:
        """The default bridge network's gateway: this host as SAM CLI's and LocalStack's containers reach it."""
        client = self.client()
        try:
            config = client.networks.get("bridge").attrs["IPAM"]["Config"]
        finally:
            client.close()
        gateway = next((c.get("Gateway") for c in config if c.get("Gateway")), None)
        if not gateway:
            raise EngineError("the docker bridge network has no gateway address")
        return str(gateway)

    def start(self) -> Self:
        require_tools("dockerd")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            self._stop_leftover()
            if len(str(self.state_dir / "exec" / "containerd" / "containerd.sock.ttrpc")) > _SOCKET_PATH_MAX:
                self._short = tempfile.mkdtemp(prefix="ipv6gate-dockerd-")
            run = self._runtime_dir()
            pidfile = self.state_dir / "dockerd.pid"
            pidfile.unlink(missing_ok=True)
            self.socket.unlink(missing_ok=True)
            with self.log_path.open("wb") as log:
                self._proc = subprocess.Popen(
                    [
                        shutil.which("dockerd") or "/usr/sbin/dockerd",
                        "-H",
                        self.host,
                        "--data-root",
                        str(self.data_root),
                        "--exec-root",
                        str(run / "exec"),
                        "--pidfile",
                        str(pidfile),
                        # Containers reach nothing but the host's loopback (see README): no NAT rules
                        # in the host's iptables; published ports still work through docker-proxy.
                        "--iptables=false",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.pid = self._proc.pid
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _acquire_lock(self) -> None:
        lock_path = self.data_root.with_name(self.data_root.name + ".lock")
        self._lock = lock_path.open("wb")
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EngineError(  # noqa: B904 - waiting, not failing, is what the exception means
                        f"another local Lambda engine holds {lock_path} (waited {self.lock_timeout:.0f} s)"
                    )
                time.sleep(1)

    def _stop_leftover(self) -> None:
        """A dockerd of ours left by a killed run (its pidfile names a live dockerd): stop it."""
        pidfile = self.state_dir / "dockerd.pid"
        try:
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return
        if cmdline and cmdline[0].endswith(b"dockerd") and str(self.data_root).encode() in cmdline:
            _terminate(pid, 30.0)

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EngineError(f"dockerd exited with status {self._proc.returncode}; log: {self._log_tail()}")
            if self.socket.exists() and _ping(self.socket):
                return
            time.sleep(0.2)
        raise EngineError(f"dockerd did not answer on {self.socket} within {self.startup_timeout:.0f} s")

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-5:])

    def stop(self) -> None:
        """Stop the dockerd this object started (by its pid), then release the data root."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                self._remove_containers()
            finally:
                _terminate(proc.pid, 30.0)
                proc.wait(timeout=10)
        self.pid = None
        _unmount_netns(self._runtime_dir() / "exec" / "netns")
        if self._short:
            shutil.rmtree(self._short, ignore_errors=True)
            self._short = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _remove_containers(self) -> None:
        """Containers SAM left (an interrupted invoke): removed before the engine stops."""
        try:
            client = self.client()
            for container in client.containers.list(all=True):
                container.remove(force=True)
            client.close()
        except Exception:
            pass


def _unmount_netns(netns_dir: Path) -> None:
    """dockerd bind-mounts its network namespaces under ``<exec-root>/netns`` and leaves them mounted
    when it exits; unmounted here, so a stopped engine leaves no mount (nor a folder that cannot be removed)."""
    if not netns_dir.is_dir():
        return
    for entry in netns_dir.iterdir():
        subprocess.run(["umount", "--lazy", str(entry)], capture_output=True, check=False)


def _ping(sock_path: Path) -> bool:
    """``GET /_ping`` on the engine's socket answers ``OK`` once dockerd serves its API."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(sock_path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            answer = sock.recv(4096)
    except OSError:
        return False
    return answer.startswith(b"HTTP/1.") and answer.rstrip().endswith(b"OK")


def _terminate(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return  # exited, not yet reaped by its parent (us)
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
