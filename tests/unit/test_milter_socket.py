"""`ipv6gate milter`'s socket and start-time checks, without libmilter: what is refused, what is removed, why."""

from __future__ import annotations

import contextlib
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.message
import pytest

from devstack.postfix import free_port
from ipv6gate.entrypoints import milter_cli
from ipv6gate.entrypoints.cli import main
from ipv6gate.entrypoints.milter_socket import SocketError, check_free, parse_group, parse_mode, umask_for


def test_socket_mode_is_octal_with_the_owner_able_to_use_it() -> None:
    assert parse_mode("0660") == 0o660 and parse_mode("660") == 0o660
    for bad, why in [("0960", "not an octal mode"), ("1777", "outside"), ("0066", "own user needs")]:
        with pytest.raises(ValueError, match=why):
            parse_mode(bad)


def test_socket_group_by_name_or_number() -> None:
    assert parse_group("root") == 0 and parse_group("4242") == 4242
    with pytest.raises(ValueError, match="no such group"):
        parse_group("no-such-group-here")


def test_a_socket_someone_serves_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "milter.sock"
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen()
        with pytest.raises(SocketError, match="another milter is serving this socket; not replaced"):
            check_free(f"unix:{path}")
        assert stat.S_ISSOCK(path.lstat().st_mode)


def test_a_stale_socket_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "milter.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # bound, never listening: what a killed milter leaves behind
    check_free(f"unix:{path}")
    assert not path.exists()


def test_a_file_that_is_not_a_socket_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "milter.sock"
    path.write_text("keep me")
    with pytest.raises(SocketError, match="exists and is not a socket"):
        check_free(f"unix:{path}")
    assert path.read_text() == "keep me"


def test_a_missing_directory_and_a_port_in_use_say_why(tmp_path: Path) -> None:
    with pytest.raises(SocketError, match=r"No such file or directory \(directory .*/nodir\)"):
        check_free(f"unix:{tmp_path}/nodir/milter.sock")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SocketError, match="Address already in use"):
            check_free(f"inet:{port}@127.0.0.1")


def test_the_umask_gives_the_socket_its_mode_when_it_is_created(tmp_path: Path) -> None:
    path = tmp_path / "milter.sock"
    with umask_for(0o660), socket.socket(socket.AF_UNIX) as made:
        made.bind(str(path))
        assert stat.S_IMODE(path.stat().st_mode) == 0o660


def test_authserv_id_is_the_hostname_when_the_fqdn_lookup_says_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "vm")
    monkeypatch.setattr(socket, "getfqdn", lambda: "localhost")
    assert milter_cli.host_name() == "vm"
    monkeypatch.setattr(socket, "getfqdn", lambda: "mx1.example.net")
    assert milter_cli.host_name() == "mx1.example.net"


def test_socket_options_need_a_unix_socket(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["milter", "--listen", "127.0.0.1:8894", "--socket-group", "root"]) == 2
    assert "apply to a unix: socket only" in capsys.readouterr().err


@contextlib.contextmanager
def _dns_server() -> Iterator[str]:
    """A UDP server on loopback that answers every query (REFUSED, as an authoritative server would the root)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            reply = dns.message.make_response(dns.message.from_wire(data))
            reply.set_rcode(dns.rcode.REFUSED)
            sock.sendto(reply.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        sock.close()


@pytest.fixture
def tenants_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("TRACE_TABLE", "DNS_ZONE_DIR", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("DNS_QUERY_TIMEOUT_SECONDS", "0.2")
    path = tmp_path / "tenants.json"
    path.write_text('[{"domain": "example.com", "ipv6_inbound": true}]')  # one tenant: "[]" is warned about
    return path


def test_check_passes_when_the_dns_server_answers(
    tenants_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with _dns_server() as server:
        monkeypatch.setenv("DNS_SERVERS", server)
        assert main(["milter", "--check", "--tenants", str(tenants_file)]) == 0
    assert "start-time checks passed" in capsys.readouterr().out


def test_a_dns_server_that_does_not_answer_stops_the_start(
    tenants_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with _dns_server() as server:
        monkeypatch.setenv("DNS_SERVERS", f"{server},127.0.0.1:{free_port()}")  # the second one is silent
        for command in (["--check"], ["--listen", f"unix:{tmp_path}/milter.sock"]):
            assert main(["milter", *command, "--tenants", str(tenants_file)]) == 2
            err = capsys.readouterr().err
            assert err.startswith(
                "ipv6gate milter: start-time check failed: DNS_SERVERS: DNS server not answering: 127.0.0.1:"
            )
            assert server not in err and err.count("\n") == 1
    assert not (tmp_path / "milter.sock").exists()  # never bound


def test_a_region_without_an_endpoint_stops_the_start(
    tenants_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_REGION", "xx-nowhere-1")  # a well-formed name; no such region, so no such host
    monkeypatch.setenv("TENANTS_TABLE", "tenants")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with _dns_server() as server:
        monkeypatch.setenv("DNS_SERVERS", server)
        assert main(["milter", "--check"]) == 2
    err = capsys.readouterr().err
    assert "AWS_REGION xx-nowhere-1: the DynamoDB endpoint dynamodb.xx-nowhere-1.amazonaws.com does not resolve" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("setgid", [True, False])
def test_a_user_outside_postfixs_group_gives_its_socket_that_group_only_in_a_setgid_directory(setgid: bool) -> None:
    """The unit's least-privilege way: the milter's user is not in group postfix; the socket directory
    (``install -d -g postfix -m 2750``) is set-group-ID, so the socket is created with group postfix and
    ``--socket-group postfix`` holds. Without the bit the same user is refused with one line."""
    import grp
    import os
    import shutil
    import tempfile

    from ipv6gate.entrypoints.milter_socket import UnixSocket, own

    assert os.geteuid() == 0, "run as root (as make test does): the test switches to user nobody"
    postfix, nobody = grp.getgrnam("postfix").gr_gid, 65534
    top = Path(tempfile.mkdtemp(prefix="ipv6gate-sgid-"))
    try:
        top.chmod(0o755)
        directory = top / "ipv6gate"
        directory.mkdir()
        os.chown(directory, nobody, postfix)
        directory.chmod(0o2750 if setgid else 0o750)
        path = directory / "milter.sock"
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the milter's user: its own group, no supplementary group
            code = 1
            try:
                os.close(read)
                os.setgroups([])
                os.setgid(nobody)
                os.setuid(nobody)
                with umask_for(0o660), socket.socket(socket.AF_UNIX) as server:
                    server.bind(str(path))
                    own(UnixSocket(path, 0o660, postfix))
                code = 0
            except SocketError as exc:
                os.write(write, str(exc).encode())
            finally:
                os._exit(code)
        os.close(write)
        _, status = os.waitpid(child, 0)
        said = os.read(read, 4096).decode()
        os.close(read)
        if setgid:
            assert os.waitstatus_to_exitcode(status) == 0, said
            info = path.stat()
            assert info.st_gid == postfix and stat.S_IMODE(info.st_mode) == 0o660
        else:
            assert os.waitstatus_to_exitcode(status) == 1
            assert said == f"unix:{path}: cannot set group/mode: Operation not permitted"
    finally:
        shutil.rmtree(top)
