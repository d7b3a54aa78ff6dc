"""Where the milter listens: checked before libmilter binds, owned as asked once it has.

libmilter (``smfi_opensocket``) binds and listens but says nothing about a failure beyond its
syslog, creates a unix socket with the process umask and never sets its group, and, asked to
remove an old socket first, removes it even while another milter is serving it. So the checks
that can say *why* happen here first (a live socket is refused, a stale one removed, a TCP
address test-bound for its errno), then libmilter binds under a umask that gives the socket
``mode`` at once, and the group is set before the MTA is told anything.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODE = 0o660  # Postfix's smtpd (user postfix) connects with its group's rights


class SocketError(Exception):
    """The socket cannot be used; the message says why (one line)."""


@dataclass(frozen=True)
class UnixSocket:
    path: Path
    mode: int = DEFAULT_MODE
    gid: int | None = None  # None: the process's group (or the directory's, when it is setgid)


def parse_mode(text: str) -> int:
    """``--socket-mode``: octal permission bits such as ``0660``; ``ValueError`` says why not."""
    try:
        mode = int(text, 8)
    except ValueError:
        raise ValueError(f"--socket-mode {text!r} is not an octal mode such as 0660") from None
    if not 0 <= mode <= 0o777:
        raise ValueError(f"--socket-mode {text!r} is outside 0000..0777")
    if not mode & 0o600 == 0o600:
        raise ValueError(f"--socket-mode {text!r}: the milter's own user needs read and write (0600)")
    return mode


def parse_group(text: str) -> int:
    """``--socket-group``: a group name or number that exists on this host."""
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        if text.isdigit():
            return int(text)
        raise ValueError(f"--socket-group {text!r}: no such group") from None


def unix_path(spec: str) -> Path | None:
    """The socket file of a libmilter spec ``unix:PATH`` (or ``local:PATH``); None for TCP."""
    kind, _, rest = spec.partition(":")
    return Path(rest) if kind in ("unix", "local") else None


def check_free(spec: str) -> None:
    """Raise ``SocketError`` unless libmilter can bind ``spec``; a stale unix socket is removed."""
    path = unix_path(spec)
    if path is not None:
        _check_unix(path)
    else:
        _check_tcp(spec)


def _check_unix(path: Path) -> None:
    if len(os.fsencode(path)) > 107:  # sun_path holds 108 bytes with the terminating NUL
        raise SocketError(f"unix:{path}: path too long for a unix socket (108 bytes at most)")
    directory = path.parent
    if not directory.is_dir():
        raise SocketError(f"unix:{path}: {os.strerror(errno.ENOENT)} (directory {directory})")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise SocketError(f"unix:{path}: {os.strerror(errno.EACCES)} (cannot create files in {directory})")
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise SocketError(f"unix:{path}: exists and is not a socket; not replaced")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:  # nobody accepts on it: left over from a milter that died
            path.unlink()
            return
        except OSError as exc:
            raise SocketError(f"unix:{path}: cannot tell whether a milter serves it: {exc.strerror or exc}") from None
    raise SocketError(f"unix:{path}: another milter is serving this socket; not replaced (stop it first)")


def _check_tcp(spec: str) -> None:
    # inet:PORT@HOST or inet6:PORT@[ADDR]: bind as libmilter will (SO_REUSEADDR), then let go.
    kind, _, rest = spec.partition(":")
    port, _, host = rest.partition("@")
    family = socket.AF_INET6 if kind == "inet6" else socket.AF_INET
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, int(port), family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise SocketError(f"{spec}: {exc.strerror}") from None
    with socket.socket(family, socket.SOCK_STREAM) as trial:
        trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            trial.bind(infos[0][4])
        except OSError as exc:
            raise SocketError(f"{spec}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def umask_for(mode: int) -> Iterator[None]:
    """The process umask that makes a new socket ``mode`` from the moment it exists (restored after)."""
    old = os.umask(0o777 & ~mode)
    try:
        yield
    finally:
        os.umask(old)


def own(target: UnixSocket) -> None:
    """Group and mode as asked, on the socket libmilter has just bound; ``SocketError`` names a refusal."""
    try:
        if target.gid is not None:
            os.chown(target.path, -1, target.gid)
        target.path.chmod(target.mode)
    except OSError as exc:
        raise SocketError(f"unix:{target.path}: cannot set group/mode: {exc.strerror or exc}") from None


def identity(path: Path) -> tuple[int, int] | None:
    try:
        info = path.lstat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


def remove_if_ours(path: Path, ours: tuple[int, int] | None) -> None:
    """Remove the socket at shutdown, unless another process has put its own there since."""
    if ours is not None and identity(path) == ours:
        with contextlib.suppress(OSError):
            path.unlink()
