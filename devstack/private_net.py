"""A private network and resolver for programs that cannot be pointed at the test DNS or given a client address.

Postfix's own client lookups (``reject_unknown_client_hostname``), OpenDKIM and pyspf-milter read
the system resolver, ``/etc/resolv.conf`` (OpenDKIM's ``Nameservers`` takes addresses, no port),
and Postfix looks up the name of the address a client *connects from*: XCLIENT replaces that
lookup (without ``NAME=`` Postfix keeps the old name). ``isolated`` runs a command, as root, in a
network and mount namespace of its own (``unshare -n -m``): its loopback interface is up and also
carries the given IPv6 addresses (a client there can connect *from* them), and a private file is
bind-mounted over ``/etc/resolv.conf`` naming ``127.0.0.1`` (port 53, free in the new namespace).
Nothing outside changes; everything the command starts lives and dies in the namespace.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

NAMESERVER = "127.0.0.1"  # inside the namespace: the test DNS listens here on port 53


def isolated(command: Sequence[str], addresses: Sequence[str], scratch: Path) -> list[str]:
    """``command`` in a private network (loopback + ``addresses``) with a private resolv.conf (in ``scratch``)."""
    if os.geteuid() != 0:
        raise RuntimeError("a private network and resolv.conf need root (unshare -n -m, ip, mount)")
    conf = scratch / "resolv.conf"
    conf.write_text(f"nameserver {NAMESERVER}\noptions attempts:2 timeout:5\n", encoding="ascii")
    conf.chmod(0o644)
    setup = ["ip link set lo up"]
    setup += [f"ip -6 addr add {shlex.quote(a)}/128 dev lo nodad" for a in addresses]
    setup.append(f"mount --bind {shlex.quote(str(conf))} /etc/resolv.conf")
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    script = " && ".join(setup) + ' && exec "$@"'
    return [unshare, "-n", "-m", "--propagation", "private", "sh", "-c", script, "sh", *command]
