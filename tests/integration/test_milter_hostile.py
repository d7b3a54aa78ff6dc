"""Hostile milter clients: OpenDKIM's ``miltertest`` (a client nobody here wrote) drives ``ipv6gate milter``
over its unix socket with the Lua scripts in ``tests/hostile/``.

Each script abuses the protocol in one way (aborts, several messages per connection, missing connect
information and macros, limits, repeated and out-of-order commands, clients that vanish), asserts
the reply the milter gives, and ends with fresh sessions that must be judged as usual
(``lib.lua``'s ``judged_normally``). Here: the script's exit status, the milter still running, no
``milter callback failed`` in its log, and its decision lines.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack import world
from devstack.knot import KnotServer
from devstack.postfix import MilterProcess
from ipv6gate.dns import DnsResolver

pytestmark = pytest.mark.integration

SCRIPTS = Path(__file__).resolve().parents[1] / "hostile"
MILTERTEST = shutil.which("miltertest") or "/usr/bin/miltertest"
TENANTS = [{"domain": "tenant.test", "ipv6_inbound": True}, {"domain": "optout.test", "ipv6_inbound": False}]


def lua_message(raw: bytes) -> str:
    """A message as the Lua table the scripts send: its headers as the MTA passes them (value with its
    leading space, folding kept) and its body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    headers: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            name, value = headers[-1]
            headers[-1] = (name, value + b"\r\n" + line)
        else:
            name, _, value = line.partition(b":")
            headers.append((name, value))
    entries = ",\n".join(f"{{{_lua(n)}, {_lua(v)}}}" for n, v in headers)
    return f"return {{headers = {{\n{entries}\n}}, body = {_lua(body)}}}\n"


def _lua(data: bytes) -> str:
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\{b:03d}" for b in data) + '"'


class Hostile:
    def __init__(self, milter: MilterProcess, messages: dict[str, Path]) -> None:
        self.milter = milter
        self.messages = messages

    def run(self, script: str, timeout: float = 120) -> str:
        socket = self.milter.postfix_address.removeprefix("unix:")
        env = {**os.environ, "MILTER_SOCKET": socket} | {f"MT_{k.upper()}": str(v) for k, v in self.messages.items()}
        done = subprocess.run(
            [MILTERTEST, "-s", script],
            check=False,
            cwd=SCRIPTS,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        said = done.stdout + done.stderr
        assert done.returncode == 0, f"{script}: {said[-2000:]}\nmilter: {self.milter.output()[-2000:]}"
        assert self.milter._proc is not None and self.milter._proc.poll() is None, self.milter.output()[-2000:]
        failed = [r for r in self.milter.records() if r.get("message") == "milter callback failed; message accepted"]
        assert not failed, failed
        self._settle()
        return said

    def _settle(self) -> None:
        """Decisions are logged after the reply, off the session's path: wait until none has come for 0.5 s."""
        deadline = time.monotonic() + 10
        seen = -1
        while (count := len(self.milter.decisions())) != seen and time.monotonic() < deadline:
            seen = count
            time.sleep(0.5)

    def threads(self) -> int:
        assert self.milter._proc is not None
        return len(os.listdir(f"/proc/{self.milter._proc.pid}/task"))

    def decisions_for(self, ip: str, since: int = 0) -> list[dict[str, Any]]:
        return [d for d in self.milter.decisions()[since:] if d["client_ip"] == ip]


@pytest.fixture(scope="module")
def messages(keys: world.Keys, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("messages")
    body = "Hello.\r\n\r\n" + "A line of the body that the DKIM check hashes as it streams in.\r\n" * 20
    plain = world.message(body=body)
    signed = world.sign(plain, keys)
    small = world.sign(world.message(), keys)  # under the limits of the `limited` milter
    paths = {}
    for name, raw in {"plain": plain, "signed": signed, "small": small}.items():
        paths[name] = directory / f"{name}.lua"
        paths[name].write_text(lua_message(raw))
    return paths


@pytest.fixture(scope="module")
def tenants_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tenants") / "tenants.json"
    path.write_text(json.dumps(TENANTS))
    return path


def _hostile(knot: KnotServer, tenants_file: Path, messages: dict[str, Path], **env: str) -> Iterator[Hostile]:
    if not Path(MILTERTEST).exists():
        pytest.fail("miltertest not found: make smtp-deps installs it (Debian package miltertest)", pytrace=False)
    base = {"AWS_REGION": "eu-west-1", "DNS_SERVERS": knot.servers_env, "MILTER_AUTHSERV_ID": "mx.ipv6gate.test"}
    with MilterProcess(base | env, ["--tenants", str(tenants_file)], unix=True) as milter:
        yield Hostile(milter, messages)


@pytest.fixture(scope="module")
def hostile(knot: KnotServer, tenants_file: Path, messages: dict[str, Path]) -> Iterator[Hostile]:
    yield from _hostile(knot, tenants_file, messages)


@pytest.fixture(scope="module")
def limited(knot: KnotServer, tenants_file: Path, messages: dict[str, Path]) -> Iterator[Hostile]:
    limits = {"MILTER_MAX_HEADER_BYTES": "1024", "MESSAGE_MAX_BYTES": "1024", "MILTER_MAX_RECIPIENTS": "3"}
    yield from _hostile(knot, tenants_file, messages, **limits)


def normally_judged(hostile: Hostile, since: int) -> None:
    """The decisions of ``lib.lua``'s ``judged_normally``: accepted, 450 4.7.26, 450 4.7.25 (with their texts)."""
    good = hostile.decisions_for(world.GOOD_IP, since)[-1]["recipients"][0]
    assert good["verdict"] == "accept"
    [other] = hostile.decisions_for(world.OTHER_IP, since)[-1]["recipients"]
    assert other["reply"].startswith("450 4.7.26 Service unavailable, message sent over IPv6 [2001:db8:6::25]")
    [no_ptr] = hostile.decisions_for(world.NO_PTR_IP, since)[-1]["recipients"]
    assert no_ptr["reply"] == (
        "450 4.7.25 Service unavailable, sending IPv6 address [2001:db8:2::25] must have reverse DNS record."
    )


def test_abort_mid_transaction(hostile: Hostile) -> None:
    since = len(hostile.milter.decisions())
    hostile.run("abort.lua")
    other = hostile.decisions_for(world.OTHER_IP, since)
    # The aborted transactions had no refused recipient: nothing to record; then the two messages after them.
    assert [d["checks"]["dkim"]["result"] for d in other[:2]] == ["pass", "none"]
    assert [d["recipients"][0]["verdict"] for d in other[:2]] == ["accept", "reject"]
    normally_judged(hostile, since)


def test_several_messages_on_one_connection(hostile: Hostile) -> None:
    since = len(hostile.milter.decisions())
    hostile.run("several.lua")
    # The script checks each message's reply in order; decision lines are written after the reply, by
    # the recorder's threads, so they may arrive in another order: compared as sets here.
    good = [d["recipients"][0] for d in hostile.decisions_for(world.GOOD_IP, since)[:3]]
    assert sorted((r["recipient"], r["verdict"]) for r in good) == [
        ("bob@tenant.test", "accept"),
        ("carol@optout.test", "reject"),
        ("dave@tenant.test", "accept"),
    ]
    [carol] = [r for r in good if r["recipient"] == "carol@optout.test"]
    assert carol["reply"] == "550 5.2.1 Service unavailable, [optout.test] does not accept email over IPv6."
    other = hostile.decisions_for(world.OTHER_IP, since)[:3]
    assert sorted(d["checks"]["dkim"]["result"] for d in other) == ["none", "none", "pass"]
    normally_judged(hostile, since)


def test_missing_connect_information_and_macros(hostile: Hostile) -> None:
    since = len(hostile.milter.decisions())
    hostile.run("missing.lua")
    fresh = hostile.milter.decisions()[since:]
    [unspec] = [d["recipients"][0] for d in fresh if d["client_ip"] is None]
    assert unspec["verdict"] == "accept" and "MTA gave no IP client address" in unspec["reason"]
    [default] = [d["recipients"][0] for d in fresh if d["client_ip"] == "12.34.56.78"]  # miltertest's own
    assert default["recipient"] == "erin@tenant.test" and default["reason"] == "IPv4 client: outside the IPv6 rule"
    assert all(d["message_id"].startswith("smtp-") for d in fresh)  # no queue id macro: one of our own
    normally_judged(hostile, since)


def test_repeated_and_out_of_order_commands(hostile: Hostile) -> None:
    since = len(hostile.milter.decisions())
    hostile.run("disorder.lua")
    [first, *_] = hostile.decisions_for(world.NO_PTR_IP, since)
    assert first["recipients"][0]["reply"].startswith("450 4.7.25")
    twice = next(d for d in hostile.decisions_for(world.GOOD_IP, since) if d["helo"] == "mail.good.test")
    assert twice["checks"]["spf"]["properties"]["smtp.mailfrom"] == "alice@good.test"
    normally_judged(hostile, since)


def test_clients_that_vanish(hostile: Hostile) -> None:
    since = len(hostile.milter.decisions())
    hostile.run("vanish.lua")
    normally_judged(hostile, since)
    # The DKIM checks whose clients went away mid-body stopped reading and gave their readers back:
    # the same abuse twice more needs (about) no new thread. Pools keep idle threads and create them
    # lazily up to their settings, so a few may be added; five stuck readers a round would add ten.
    time.sleep(1)
    after_first = hostile.threads()
    hostile.run("vanish.lua")
    hostile.run("vanish.lua")
    time.sleep(1)
    assert hostile.threads() <= after_first + 8


def test_past_the_limits(limited: Hostile) -> None:
    limited.run("limits.lua")
    other = limited.decisions_for(world.OTHER_IP)[:3]
    assert [d["checks"]["dkim"]["result"] for d in other] == ["pass", "permerror", "permerror"]
    assert [d["recipients"][0]["verdict"] for d in other] == ["accept", "reject", "reject"]
    [four] = [d for d in limited.decisions_for(world.GOOD_IP) if len(d["recipients"]) == 3]
    assert {r["recipient"] for r in four["recipients"]} == {"r1@tenant.test", "r2@tenant.test", "r3@tenant.test"}
    normally_judged(limited, 0)


@pytest.fixture(scope="module")
def scarce(knot: KnotServer, tenants_file: Path, messages: dict[str, Path]) -> Iterator[Hostile]:
    yield from _hostile(knot, tenants_file, messages, MILTER_DKIM_READERS="1", MILTER_MAX_SESSIONS="4")


def test_past_the_session_and_reader_ceilings_replies_are_temporary(scarce: Hostile) -> None:
    scarce.run("busy.lua")
    other = scarce.decisions_for(world.OTHER_IP)
    assert [d["checks"]["dkim"]["result"] for d in other[:2]] == ["pass", "pass"]
    normally_judged(scarce, 0)


def test_the_server_owns_its_threads(resolver: DnsResolver, messages: dict[str, Path], tmp_path: Path) -> None:
    """``serve`` owns its pools: started in this process, used and stopped, its threads are gone (the
    check pool is the gate's, which outlives the server). The pools themselves start and end more than
    once in one process (tests/unit/test_milter_resources.py); libmilter's own loop keeps its stop in
    static state and is not restarted in one process (a service manager restarts the process)."""
    from ipv6gate.decision.tenants import Tenant
    from ipv6gate.entrypoints.milter import serve
    from ipv6gate.entrypoints.milter_socket import UnixSocket
    from ipv6gate.ports.memory import InMemoryTenants
    from ipv6gate.settings import Settings
    from ipv6gate.wiring import assemble_smtp_gate

    tenants = InMemoryTenants([Tenant("tenant.test", ipv6_inbound=True), Tenant("optout.test", ipv6_inbound=False)])
    gate = assemble_smtp_gate(Settings.from_env({"AWS_REGION": "eu-west-1"}), resolver, tenants)
    path = tmp_path / "milter.sock"

    def servers_threads() -> list[str]:
        names = ("ipv6gate-smtp", "ipv6gate-record", "libmilter")
        return [t.name for t in threading.enumerate() if t.name.startswith(names)]

    published: list[Any] = []
    errors: list[BaseException] = []
    stop, listening = threading.Event(), threading.Event()

    def run() -> None:
        try:
            serve(
                gate,
                f"unix:{path}",
                "mx.ipv6gate.test",
                published.append,
                lambda _stage, exc: errors.append(exc),
                unix=UnixSocket(path, 0o600),
                listening=listening.set,
                drain_seconds=1,
                stop=stop,
            )
        except BaseException as exc:
            errors.append(exc)

    server = threading.Thread(target=run)
    server.start()
    assert listening.wait(10)
    env = {**os.environ, "MILTER_SOCKET": str(path)} | {f"MT_{k.upper()}": str(v) for k, v in messages.items()}
    done = subprocess.run(
        [MILTERTEST, "-s", "judged.lua"], check=False, cwd=SCRIPTS, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stdout[-1500:]
    assert servers_threads()
    stop.set()
    server.join(timeout=30)
    assert not server.is_alive() and not errors, errors
    replies = {d.verdicts[0].reply.status if d.verdicts[0].reply else "accept" for d in published}
    assert replies == {"accept", "4.7.26", "4.7.25"}
    assert not path.exists()  # removed at the stop
    deadline = time.monotonic() + 10
    while servers_threads() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not servers_threads()
