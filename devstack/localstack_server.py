"""LocalStack on this host (no container registry): the AWS emulator ``make deploy-rehearsal`` deploys into.

``LocalStackServer`` runs ``python -m localstack.runtime.main`` from its own venv (``.venv-localstack``,
``make localstack-deps``: localstack-core pins cryptography/pyopenssl the dev venv cannot share, and
the rehearsal's plugin, ``devstack/localstack_plugin``, is installed next to it) with:

- ``OVERRIDE_IN_DOCKER=0`` and the gateway on loopback plus the docker bridge's gateway address
  (function containers call LocalStack back there), nothing on other interfaces: the hypercorn
  gateway (twisted, the default, binds every IPv4 address whatever ``GATEWAY_LISTEN`` says), checked
  at start from ``/proc`` (``unexpected_listeners``);
- state under ``.local-lambda/localstack`` (``FILESYSTEM_ROOT``), no TLS certificate download, no
  analytics events;
- Lambda on the project's private dockerd (``DOCKER_HOST``), in the project's runtime image
  (``LAMBDA_RUNTIME_IMAGE_MAPPING``; ``LAMBDA_IGNORE_ARCHITECTURE=1``: the arm64 function runs in
  the image built for the chosen architecture), with ``lambda_init.py`` and AWS's emulator from SAM
  CLI's wheel in place of LocalStack's init download; under arm64 emulation the init gives the
  function ``timeout_scale`` times its Timeout (as ``make local`` does);
- DynamoDB by moto and SES with the rehearsal's additions (``PROVIDER_OVERRIDE_*``).

It is stopped by the pid it started; its containers go with the engine (``DockerEngine.stop``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import IO, Self

from devstack.docker_engine import STATE_DIR, EngineError
from devstack.service import Service, free_port

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv-localstack"
PLUGIN_DIR = Path(__file__).resolve().parent / "localstack_plugin"
# LocalStack's default init release: its install folder is where LocalStack looks for /var/rapid/init.
INIT_VERSION = "v0.1.41-pre"
_RIE = {"arm64": "aws-lambda-rie-arm64", "x86_64": "aws-lambda-rie-x86_64"}


def host_arch() -> str:
    machine = os.uname().machine
    return {"aarch64": "arm64", "amd64": "x86_64"}.get(machine, machine)


class LocalStackServer(Service):
    """``with LocalStackServer(docker_host, bridge_ip, image, arch) as ls: ls.endpoint_url``."""

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        docker_host: str,
        bridge_ip: str,
        image: str,
        arch: str,
        timeout_scale: int = 1,
        state_dir: Path = STATE_DIR / "localstack",
        startup_timeout: float = 120.0,
    ) -> None:
        self.docker_host = docker_host
        self.bridge_ip = bridge_ip
        self.image = image
        self.arch = arch
        self.timeout_scale = timeout_scale
        self.state_dir = state_dir
        self.startup_timeout = startup_timeout
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "localstack.log"

    @property
    def bounce_log(self) -> Path:
        """SendBounce calls the SES stand-in recorded (JSON lines)."""
        return self.state_dir / "send-bounce.jsonl"

    def start(self) -> Self:
        python = VENV / "bin" / "python"
        if not python.exists():
            raise EngineError(f"{python} missing: run `make localstack-deps`")
        shutil.rmtree(self.state_dir, ignore_errors=True)  # every rehearsal starts from an empty account
        self.state_dir.mkdir(parents=True)
        self._install_init()
        self.port = free_port(self.host)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DOCKER_", "LOCALSTACK_"))}
        env.update(
            {
                "OVERRIDE_IN_DOCKER": "0",
                # Twisted, the default, binds every IPv4 interface whatever GATEWAY_LISTEN names.
                "GATEWAY_SERVER": "hypercorn",
                "GATEWAY_LISTEN": f"{self.host}:{self.port},{self.bridge_ip}:{self.port}",
                "FILESYSTEM_ROOT": str(self.state_dir / "fs"),
                "SKIP_SSL_CERT_DOWNLOAD": "1",
                "DISABLE_EVENTS": "1",
                "DNS_ADDRESS": "0",  # no DNS server of LocalStack's on this host's port 53
                "DOCKER_HOST": self.docker_host,
                "LAMBDA_DOCKER_NETWORK": "bridge",
                "HOSTNAME_FROM_LAMBDA": self.bridge_ip,
                "LAMBDA_RUNTIME_IMAGE_MAPPING": json.dumps({"python3.13": self.image}),
                "LAMBDA_IGNORE_ARCHITECTURE": "1",
                # Read by lambda_init.py: an emulated CPU gets more time (the deployed Timeout is unchanged).
                "LAMBDA_DOCKER_FLAGS": f"-e IPV6GATE_REHEARSAL_TIMEOUT_SCALE={self.timeout_scale}",
                "PROVIDER_OVERRIDE_DYNAMODB": "moto",
                "PROVIDER_OVERRIDE_SES": "rehearsal",
                "IPV6GATE_REHEARSAL_BOUNCE_LOG": str(self.bounce_log),
            }
        )
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(
            [str(python), "-m", "localstack.runtime.main"],
            env=env,
            cwd=self.state_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready()
            if unexpected := self.unexpected_listeners():
                raise EngineError(f"LocalStack listens beyond loopback and the docker bridge: {unexpected}")
        except BaseException:
            self.stop()
            raise
        return self

    def _install_init(self) -> None:
        """LocalStack copies ``<lib>/lambda-runtime/<version>/<host arch>/`` into each function container's root."""
        from samcli.local import rapid  # the emulator binaries SAM CLI's wheel ships

        root = self.state_dir / "fs" / "var" / "lib" / "localstack" / "lib" / "lambda-runtime" / INIT_VERSION
        rapid_dir = root / host_arch() / "var" / "rapid"
        rapid_dir.mkdir(parents=True)
        shutil.copy(PLUGIN_DIR / "lambda_init.py", rapid_dir / "init")
        shutil.copy(Path(rapid.__path__[0]) / _RIE[self.arch], rapid_dir / "aws-lambda-rie")
        for binary in ("init", "aws-lambda-rie"):
            (rapid_dir / binary).chmod(0o755)

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EngineError(f"LocalStack exited with status {self._proc.returncode}; log: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/_localstack/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise EngineError(f"LocalStack did not answer on {self.endpoint_url} within {self.startup_timeout:.0f} s")

    def listening(self) -> list[str]:
        """``address:port`` of every TCP socket LocalStack (its process group) listens on (IPv4 and IPv6)."""
        if self.pid is None:
            return []
        inodes: set[str] = set()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if os.getpgid(int(proc.name)) != self.pid:
                    continue
                links = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
            except OSError:
                continue
            inodes |= {link[8:-1] for link in links if link.startswith("socket:[")}
        found = []
        for table in ("tcp", "tcp6"):
            for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    address, port = fields[1].split(":")
                    found.append(f"{_address(address)}:{int(port, 16)}")
        return sorted(found)

    def unexpected_listeners(self) -> list[str]:
        """Listening sockets on any address but loopback and the bridge's (none, when all is well)."""
        return [a for a in self.listening() if a.rpartition(":")[0] not in (self.host, self.bridge_ip)]

    def faked_resources(self) -> list[str]:
        """Resource types LocalStack "deployed as a fallback" (it cannot model them; nothing was created).

        Its switch to refuse them instead needs LocalStack's online support catalog, so the rehearsal
        reads its log and fails on any: every type of the template has a provider (or a stand-in).
        """
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return sorted(set(re.findall(r'No resource provider found for "([^"]+)"', text)))

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


def _address(hex_address: str) -> str:
    """An address of /proc/net/tcp{,6}: 32-bit words in host (little-endian) byte order."""
    raw = bytes.fromhex(hex_address)
    return str(ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))))
