"""A local sandbox to try the ``ipv6gate`` CLI before deploying; stays up until Ctrl-C.

``make sandbox`` (or ``python -m scripts.sandbox [--scenarios DIR] [--empty]``) starts moto server on
loopback with ``template.yaml``'s tables, bucket and queues (``devstack.moto_stack.MotoStack``, as ``make demo`` does,
without Knot: the CLI answers DNS from the set's zone files), puts the scenario set's tenants and
raw messages where the function would find them (unless ``--empty``), and prints the ``export``
lines that point ``ipv6gate tenants``, ``evaluate --record`` and ``trace`` at it. Nothing in it
outlives it: moto keeps everything in memory. Exit status 0 after Ctrl-C (or SIGTERM), 2 with one
line when the sandbox cannot start.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devstack.scenarios import ScenarioSet

# What the CLI needs from the function's environment; the rest (queues, settings) stays as deployed.
EXPORTED = ("TENANTS_TABLE", "TRACE_TABLE", "MESSAGE_BUCKET", "MESSAGE_PREFIX")
CREDENTIALS = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
READY = "Ctrl-C stops the sandbox"  # the last line printed once it is up (tests wait for it)


def exports(environment: Mapping[str, str], zones: Path) -> list[str]:
    """The shell lines that point the CLI at the sandbox (fake credentials: moto accepts any)."""
    values = {name: environment[name] for name in (*CREDENTIALS, *EXPORTED)}
    values["DNS_ZONE_DIR"] = str(zones.resolve())
    return [f"export {name}={shlex.quote(value)}" for name, value in values.items()]


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path.resolve())


def _examples(chosen: ScenarioSet) -> list[str]:
    events = _shown(chosen.directory)
    ipv6 = [n for n in chosen.events if ":" in str(chosen.expected.get(n, {}).get("client_ip"))]
    # The venv's own command, so the lines work as printed in a shell that never activated the venv.
    cli = _shown(Path(sys.executable).with_name("ipv6gate"))
    lines = [
        f"{cli} tenants list",
        f"{cli} evaluate {events}/ipv*.json --record   # IPv6 decisions go to TRACE_TABLE",
        f"{cli} trace --domain example.com",
    ]
    if ipv6:
        lines.append(f"{cli} trace {chosen.event(ipv6[0])['Records'][0]['ses']['mail']['messageId']}")
    return [*lines, f"{cli} tenants enable example.com --monitor"]


def main(argv: list[str] | None = None) -> int:
    from devstack import sam_template, scenarios
    from devstack.moto_stack import MotoStack

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenarios", type=Path, default=scenarios.EVENTS_DIR, help="scenario set (like events/)")
    parser.add_argument("--empty", action="store_true", help="create the tables only: no tenants, no messages")
    args = parser.parse_args(argv)

    try:
        template, spec, chosen = sam_template.function_and_scenarios(args.scenarios)
    except (scenarios.ScenarioError, sam_template.TemplateError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        with MotoStack(None, template, region=chosen.region, log=lambda t: print(f"  {t}")) as stack:
            env = sam_template.container_environment(spec, stack.overrides(), region=chosen.region)
            if not args.empty:
                for line in stack.seed(env, chosen.directory):
                    print(f"  put {line}")
            print("\nIn another shell, point ipv6gate at the sandbox:\n")
            print("\n".join(exports(env, chosen.zones)))
            print("\nthen, for example:\n\n" + "\n".join(f"  {line}" for line in _examples(chosen)))
            print(f"\n{READY} (everything in it is gone then).", flush=True)
            stop.wait()
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"sandbox: could not start: {exc}", file=sys.stderr)
        return 2
    print("sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
