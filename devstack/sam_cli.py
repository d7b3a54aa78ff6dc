"""SAM CLI with ``--docker-network host`` doing what it says: the function container on the host's network.

SAM CLI 1.170 accepts ``--docker-network host`` for ``sam local invoke`` but only *skips* connecting
the container to a network named ``host``: the container stays on Docker's default bridge, where
``127.0.0.1`` is the container itself, so the function cannot reach moto server and Knot on the
host's loopback. Run as ``python -m devstack.sam_cli local invoke ... --docker-network host``,
this starts the unchanged SAM CLI with one adjustment to the container it creates (only when
``--docker-network host`` was given): ``network_mode="host"``, no published ports, and the runtime
interface emulator told to listen on the loopback port SAM CLI picked for it (and to serve the
Runtime API on a free loopback port, so two containers never share one). Everything else, from
template resolution to the REPORT line, is SAM CLI's own code.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

RIE = "/var/rapid/aws-lambda-rie"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def host_network_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The ``containers.create`` options of a SAM container, moved onto the host's network."""
    out = dict(kwargs)
    ports = out.pop("ports", None) or {}
    binding = ports.get("8080")  # the emulator's port: ("127.0.0.1", <host port SAM will call>)
    if binding is None:
        raise RuntimeError("SAM CLI created a container without the emulator port 8080: unsupported SAM CLI version")
    _interface, rie_port = binding
    entrypoint = list(out.get("entrypoint") or [])
    if not entrypoint or entrypoint[0] != RIE:
        raise RuntimeError(f"SAM CLI's container entrypoint is not {RIE}: unsupported SAM CLI version")
    out["entrypoint"] = [
        *entrypoint,
        "--runtime-interface-emulator-address",
        f"127.0.0.1:{rie_port}",
        "--runtime-api-address",
        f"127.0.0.1:{free_port()}",
    ]
    out["network_mode"] = "host"
    return out


def main(argv: list[str]) -> int:
    from docker.models.containers import ContainerCollection
    from samcli.cli.main import cli

    if "--docker-network" in argv and argv[argv.index("--docker-network") + 1 :][:1] == ["host"]:
        original = ContainerCollection.create

        def create(self: ContainerCollection, image: Any, command: Any = None, **kwargs: Any) -> Any:
            return original(self, image, command, **host_network_options(kwargs))

        ContainerCollection.create = create
    sys.argv = ["sam", *argv]
    try:
        cli()
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
