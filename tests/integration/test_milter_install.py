"""docs/smtp-time.md as an operator follows it: every copyable block taken from the page and run.

- ``make dist`` and the install lines: the wheel and its wheelhouse, installed into a fresh venv with
  ``--no-index`` (nothing from a registry), then ``ipv6gate milter --help`` from that venv.
- The unit (the page shows packaging/'s file verbatim): ``systemd-analyze verify``.
- main.cf: a private Postfix whose smtpd is chrooted (as Debian's master.cf has it) reads exactly the
  page's lines; ``postconf -n`` shows exactly the page's values.
- The unit's ``ExecStartPre`` and ``ExecStart`` commands, run with the unit's umask and the page's
  environment file: the installed milter, behind that Postfix, gives ``450 4.7.25``, ``550 5.2.1``,
  ``450 4.7.26`` and accepts a message; Postfix's smtpd (user postfix) reaches the socket through
  its group alone.

What the test changes in the page's lines, so that a private instance runs on a shared machine (and
nothing else): ``/opt/ipv6gate`` -> a temporary venv; ``python3.13`` -> this machine's Python 3.13;
``/var/spool/postfix`` -> the private Postfix's queue directory; ``install -d -o ipv6gate`` -> ``-o
root`` and the commands run as root (no ``ipv6gate`` user is created here, and this machine's Python
lives under /root); the environment file's values stay, plus moto's endpoint and test credentials
and ``DNS_SERVERS`` pointing at Knot. The private Postfix adds its own ports, queue, logging, XCLIENT
for the test client and relay-to-discard (``devstack/postfix.py``), never a milter setting.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import pytest

from devstack import page, world
from devstack.json_lines import json_records
from devstack.moto_stack import MotoStack
from devstack.postfix import PostfixInstance, send

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = page.blocks()
UNIT = page.unit_file(BLOCKS["ipv6gate-milter.service"])
ENV_FILE = page.env_file(BLOCKS["milter.env"])
TENANTS = [
    {"domain": "tenant.test", "ipv6_inbound": True},
    {"domain": "optout.test", "ipv6_inbound": False},
]


def substituted(argv: Sequence[str], replacements: Mapping[str, str]) -> list[str]:
    out = []
    for arg in argv:
        changed = arg
        for old, new in replacements.items():
            changed = changed.replace(old, new)
        out.append(changed)
    return out


def run(argv: Sequence[str], env: Mapping[str, str] | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=300, check=False, env=env, **kw)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page's build line, then its install lines into a fresh venv (offline: --no-index)."""
    built = run(page.commands(BLOCKS["build"])[0], cwd=ROOT)
    assert built.returncode == 0, built.stdout[-1500:] + built.stderr[-1500:]
    target = tmp_path_factory.mktemp("opt") / "ipv6gate"
    python = run([str(ROOT / "scripts" / "find-python313.sh")]).stdout.strip()
    swap = {"/opt/ipv6gate": str(target)}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))}
    for line in page.commands(BLOCKS["install"]):
        argv = substituted(line, swap)
        if argv[0] == "python3.13":
            argv[0] = python
        done = run(argv, env=env, cwd=ROOT)
        assert done.returncode == 0, f"{argv}: {done.stdout[-1500:]}{done.stderr[-1500:]}"
    return target


def test_the_wheel_installs_offline_and_runs(venv: Path) -> None:
    help_text = " ".join(run([str(venv / "bin" / "ipv6gate"), "milter", "--help"]).stdout.split())
    assert "--socket-group GROUP" in help_text and "--check" in help_text
    frozen = run([str(venv / "bin" / "pip"), "freeze"]).stdout
    # From the wheel built in dist/, not this checkout (an editable install would name the repository).
    assert re.search(r"^ipv6gate @ file://\S*/dist/ipv6gate-[\d.]+-py3-none-any\.whl#sha256=\w+$", frozen, re.M), frozen
    assert re.search(r"^pymilter==", frozen, re.M)


def test_the_unit_verifies_and_a_broken_one_does_not(venv: Path, tmp_path: Path) -> None:
    """``systemd-analyze verify`` wants ExecStart's program to exist: the installed venv's, as on the host."""
    text = BLOCKS["ipv6gate-milter.service"].replace("/opt/ipv6gate", str(venv))
    good = tmp_path / "good" / "ipv6gate-milter.service"
    good.parent.mkdir()
    good.write_text(text)
    done = run(["systemd-analyze", "verify", str(good)])
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr
    broken = tmp_path / "broken" / "ipv6gate-milter.service"
    broken.parent.mkdir()
    broken.write_text(text.replace("UMask=0007", "UMask=0o007"))
    said = run(["systemd-analyze", "verify", str(broken)])
    assert "Failed to parse mode value" in said.stdout + said.stderr


class UnitProcess:
    """The unit's ExecStart, as systemd would run it: its umask, the environment file; output kept."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self._out: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        umask = int(UNIT["Service.UMask"][0], 8)
        self.proc = subprocess.Popen(list(argv), env=dict(env), stdout=self._out, stderr=subprocess.STDOUT, umask=umask)

    def output(self) -> str:
        self._out.seek(0)
        return self._out.read().decode(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        return json_records(self.output())

    def wait_for(self, message: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in self.records() if r.get("message") == message]
            if found:
                return found[0]
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {message!r} line: {self.output()[-1500:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


class Stack:
    def __init__(self, venv: Path, local: MotoStack, postfix: PostfixInstance) -> None:
        self.local = local
        self.postfix = postfix
        self.swap = {"/opt/ipv6gate": str(venv), "/var/spool/postfix": str(postfix.queue_directory)}
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **ENV_FILE,
            **{k: v for k, v in local.overrides().items() if k not in ENV_FILE},
        }
        self.milter: UnitProcess | None = None

    def command(self, line: str, **swap: str) -> list[str]:
        _, argv = page.exec_line(line)
        return substituted(argv, self.swap | swap)

    @property
    def socket(self) -> Path:
        _, argv = page.exec_line(UNIT["Service.ExecStart"][0])
        return Path(substituted([argv[argv.index("--listen") + 1]], self.swap)[0].removeprefix("unix:"))

    def send(self, ip: str, recipients: tuple[str, ...], mail_from: str = "alice@good.test") -> Any:
        return send(
            self.postfix.port,
            client_ip=ip,
            helo="mail.good.test",
            mail_from=mail_from,
            recipients=recipients,
            message=world.message(to=recipients[0]),
        )


@pytest.fixture(scope="module")
def stack(venv: Path, keys: world.Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    zones = world.write_zone_dir(tmp_path_factory.mktemp("zones"), keys)
    local = MotoStack(zones)
    local.names |= {"TenantsTable": ENV_FILE["TENANTS_TABLE"], "TraceTable": ENV_FILE["TRACE_TABLE"]}
    with (
        local,
        PostfixInstance("", main_cf_lines=BLOCKS["main.cf"], chroot=True) as postfix,
    ):
        local.put_items(ENV_FILE["TENANTS_TABLE"], TENANTS)
        s = Stack(venv, local, postfix)
        make_dir, check = UNIT["Service.ExecStartPre"]
        made = run(_install_as_root(s, make_dir))
        assert made.returncode == 0, made.stderr
        checked = run(s.command(check), env=s.env)
        assert checked.returncode == 0 and "start-time checks passed" in checked.stdout, checked.stderr
        s.milter = UnitProcess(s.command(UNIT["Service.ExecStart"][0]), s.env)
        try:
            s.milter.wait_for("milter listening")
            yield s
        finally:
            s.milter.stop()


def _install_as_root(s: Stack, line: str) -> list[str]:
    argv = s.command(line)
    owner = argv.index("-o") + 1
    assert argv[owner] == UNIT["Service.User"][0]
    argv[owner] = "root"  # no ipv6gate user on this machine; the milter runs as root here
    return argv


def test_postfix_reads_exactly_the_pages_main_cf_values(stack: Stack) -> None:
    shown = stack.postfix.postconf("-n")
    assert shown.returncode == 0 and not shown.stderr.strip(), shown.stderr
    pairs = (line.partition("=") for line in shown.stdout.splitlines())
    values = {name.strip(): value.strip() for name, _, value in pairs}
    for name, value in page.main_cf(BLOCKS["main.cf"]).items():
        assert values[name] == value, name
    assert "postconf: warning" not in stack.postfix.postconf().stderr


def test_an_end_of_line_comment_is_what_postfix_would_take_as_the_value() -> None:
    """The trap the page's reader refuses, shown on this Postfix: the comment becomes part of the value."""
    directory = Path(tempfile.mkdtemp(prefix="ipv6gate-maincf-"))
    try:
        (directory / "main.cf").write_text("milter_default_action = accept   # = TEMPERROR_ACTION\n")
        shown = run(["postconf", "-c", str(directory), "-h", "milter_default_action"])
        assert shown.stdout.split() == ["accept", "#", "=", "TEMPERROR_ACTION"]
    finally:
        shutil.rmtree(directory)
    with pytest.raises(ValueError, match="no end-of-line comments"):
        page.main_cf("milter_default_action = accept   # = TEMPERROR_ACTION\n")


def test_the_socket_has_the_units_mode_and_postfixs_group(stack: Stack) -> None:
    import grp

    info = stack.socket.stat()
    assert oct(info.st_mode & 0o777) == "0o660" and grp.getgrgid(info.st_gid).gr_name == "postfix"
    assert stack.socket.parent.parent == stack.postfix.queue_directory


def test_the_three_replies_and_an_accepted_message(stack: Stack) -> None:
    """Through the chrooted smtpd (user postfix, connecting by group) to the installed milter."""
    no_ptr = stack.send(world.NO_PTR_IP, ("bob@tenant.test",))
    assert no_ptr.rcpt["bob@tenant.test"][0] == 450 and no_ptr.rcpt["bob@tenant.test"][1].startswith("4.7.25 ")
    optout = stack.send(world.GOOD_IP, ("b@optout.test",))
    assert optout.rcpt["b@optout.test"][0] == 550 and optout.rcpt["b@optout.test"][1].startswith("5.2.1 ")
    unauthenticated = stack.send(world.OTHER_IP, ("bob@tenant.test",))
    assert unauthenticated.data is not None and unauthenticated.data[0] == 450
    assert unauthenticated.data[1].startswith("4.7.26 ")
    accepted = stack.send(world.GOOD_IP, ("bob@tenant.test",))
    assert accepted.data is not None and accepted.data[0] == 250
    assert "Permission denied" not in stack.postfix.maillog()


def test_a_second_milter_is_refused_and_the_first_keeps_serving(stack: Stack) -> None:
    second = run(stack.command(UNIT["Service.ExecStart"][0]), env=stack.env)
    assert second.returncode == 2 and second.stderr.count("\n") == 1
    assert "another milter is serving this socket; not replaced" in second.stderr
    assert stack.send(world.NO_PTR_IP, ("bob@tenant.test",)).rcpt["bob@tenant.test"][0] == 450


def test_a_misspelt_tenants_table_stops_the_start(stack: Stack, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    (spool / "ipv6gate").mkdir(parents=True)
    command = stack.command(UNIT["Service.ExecStart"][0], **{str(stack.postfix.queue_directory): str(spool)})
    env = stack.env | {"TENANTS_TABLE": "nosuchtable"}
    started = run(command, env=env)
    assert started.returncode == 2 and started.stderr.count("\n") == 1, started.stderr
    assert "TENANTS_TABLE: DynamoDB nosuchtable: ResourceNotFoundException" in started.stderr
    assert not (spool / "ipv6gate" / "milter.sock").exists() and "milter listening" not in started.stdout
    check = run(stack.command(UNIT["Service.ExecStartPre"][1]), env=env)
    assert check.returncode == 2 and "ResourceNotFoundException" in check.stderr
    trace = run(stack.command(UNIT["Service.ExecStartPre"][1]), env=stack.env | {"TRACE_TABLE": "nosuchtrace"})
    assert trace.returncode == 2 and "TRACE_TABLE: DynamoDB nosuchtrace: ResourceNotFoundException" in trace.stderr
    assert "TENANTS_TABLE" not in trace.stderr
    degraded = UnitProcess([*command, "--degraded-start"], env)
    try:
        warning = degraded.wait_for("DEGRADED START: a start-time check failed; mail it concerns passes unjudged")
        assert "nosuchtable" in warning["problem"] and warning["level"] == "WARNING"
        degraded.wait_for("milter listening")
    finally:
        assert degraded.stop() == 0
    assert not (spool / "ipv6gate" / "milter.sock").exists()  # removed at the stop


def test_sigterm_removes_the_socket_at_once_and_lets_the_open_session_finish(stack: Stack) -> None:
    """Last in the module: it stops the milter."""
    assert stack.milter is not None
    with smtplib.SMTP("127.0.0.1", stack.postfix.port, timeout=60) as smtp:
        smtp.ehlo("client.ipv6gate.test")
        assert smtp.docmd("XCLIENT", f"ADDR=IPV6:{world.GOOD_IP} HELO=mail.good.test")[0] == 220
        smtp.ehlo_resp = None
        smtp.ehlo("mail.good.test")
        assert smtp.mail("alice@good.test")[0] == 250 and smtp.rcpt("bob@tenant.test")[0] == 250
        stack.milter.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while stack.socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not stack.socket.exists()  # new sessions now get milter_default_action
        time.sleep(1)
        code, _ = smtp.data(world.message(to="bob@tenant.test"))
        assert code == 250
    assert stack.milter.proc.wait(timeout=30) == 0
    stopped = stack.milter.wait_for("milter stopped")
    assert stopped["sessions_cut_off"] == 0
    assert [d for d in (r.get("decision") for r in stack.milter.records()) if d and d["client_ip"] == world.GOOD_IP]
