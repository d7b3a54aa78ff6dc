"""`ipv6gate milter` behind a real Postfix: every reply as the sending server hears it in its SMTP session.

One private Postfix instance (loopback, own config and queue) per milter configuration; XCLIENT
presents each test's client address; Knot serves the test world's zones; tenants from a file.
"""

from __future__ import annotations

import json
import signal
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack import world
from devstack.knot import KnotServer
from devstack.postfix import MilterProcess, PostfixInstance, SmtpResult, free_port, send

pytestmark = pytest.mark.integration

AUTHSERV_ID = "mx.ipv6gate.test"
TENANTS = [
    {"domain": "tenant.test", "ipv6_inbound": True},
    {"domain": "optout.test", "ipv6_inbound": False},
    {"domain": "watch.test", "ipv6_inbound": True, "mode": "monitor"},
]


class Stack:
    def __init__(self, milter: MilterProcess, postfix: PostfixInstance) -> None:
        self.milter = milter
        self.postfix = postfix

    def send(self, ip: str, recipients: tuple[str, ...], raw: bytes | None = None, **kw: Any) -> SmtpResult:
        message = raw if raw is not None else world.message(to=recipients[0])
        return send(
            self.postfix.port,
            client_ip=ip,
            helo="mail.good.test",
            mail_from=kw.pop("mail_from", "alice@good.test"),
            recipients=recipients,
            message=message,
            **kw,
        )

    def decision_for(self, ip: str, timeout: float = 5.0) -> dict[str, Any]:
        """The latest decision for ``ip``: one without DATA is logged when the client has gone (QUIT)."""
        deadline = time.monotonic() + timeout
        while not (found := [d for d in self.milter.decisions() if d["client_ip"] == ip]):
            assert time.monotonic() < deadline, self.milter.output()[-2000:]
            time.sleep(0.05)
        return found[-1]


@pytest.fixture(scope="module")
def knot(keys: world.Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnotServer]:
    zones = world.write_zone_dir(tmp_path_factory.mktemp("zones"), keys)
    with KnotServer(zones) as server:
        yield server


@pytest.fixture(scope="module")
def tenants_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tenants") / "tenants.json"
    path.write_text(json.dumps(TENANTS))
    return path


def _stack(env: dict[str, str], tenants_file: Path, *args: str) -> Iterator[Stack]:
    base = {"AWS_REGION": "eu-west-1", "MILTER_AUTHSERV_ID": AUTHSERV_ID}
    with (
        MilterProcess(base | env, ["--tenants", str(tenants_file), *args]) as milter,
        PostfixInstance(milter.postfix_address, capture=True) as postfix,
    ):
        yield Stack(milter, postfix)


@pytest.fixture(scope="module")
def stack(knot: KnotServer, tenants_file: Path) -> Iterator[Stack]:
    yield from _stack({"DNS_SERVERS": knot.servers_env}, tenants_file)


@pytest.fixture(scope="module", params=["accept", "reject"])
def dns_down(request: pytest.FixtureRequest, tenants_file: Path) -> Iterator[tuple[str, Stack]]:
    """A milter whose DNS server does not answer at all: every lookup is a temporary error.

    The start-time check sees that and would stop the start: ``--degraded-start`` is the operator's
    choice to run anyway (the case these tests are about).
    """
    env = {
        "DNS_SERVERS": f"127.0.0.1:{free_port()}",
        "DNS_QUERY_TIMEOUT_SECONDS": "0.3",
        "DECISION_BUDGET_SECONDS": "1",
        "TEMPERROR_ACTION": request.param,
    }
    for s in _stack(env, tenants_file, "--degraded-start"):
        yield request.param, s


def test_no_ptr_gets_4_7_25_at_rcpt(stack: Stack) -> None:
    result = stack.send(world.NO_PTR_IP, ("bob@tenant.test",))
    assert result.rcpt["bob@tenant.test"] == (
        450,
        "4.7.25 Service unavailable, sending IPv6 address [2001:db8:2::25] must have reverse DNS record.",
    )
    assert result.data is None
    decision = stack.decision_for(world.NO_PTR_IP)
    assert decision["front_door"] == "milter" and decision["checks"]["iprev"]["result"] == "permerror"


def test_not_opted_in_gets_5_2_1_and_the_others_go_on(stack: Stack) -> None:
    result = stack.send(world.GOOD_IP, ("b@optout.test", "a@tenant.test", "c@tenant.test"))
    assert result.rcpt["b@optout.test"] == (
        550,
        "5.2.1 Service unavailable, [optout.test] does not accept email over IPv6.",
    )
    assert result.rcpt["a@tenant.test"][0] == result.rcpt["c@tenant.test"][0] == 250
    assert result.data is not None and result.data[0] == 250
    verdicts = {v["recipient"]: v["verdict"] for v in stack.decision_for(world.GOOD_IP)["recipients"]}
    assert verdicts == {"b@optout.test": "reject", "a@tenant.test": "accept", "c@tenant.test": "accept"}


def test_not_authenticated_gets_4_7_26_at_end_of_data(stack: Stack) -> None:
    result = stack.send(world.OTHER_IP, ("bob@tenant.test",))
    assert result.rcpt["bob@tenant.test"][0] == 250
    assert result.data == (
        450,
        "4.7.26 Service unavailable, message sent over IPv6 [2001:db8:6::25] must pass either SPF or DKIM validation.",
    )


def test_dkim_pass_is_accepted_with_our_header_and_a_forged_one_removed(stack: Stack, keys: world.Keys) -> None:
    signed = world.sign(
        world.message(body="Hello.\r\n\r\nSigned, streamed.\r\n"), keys, selector="ed", algorithm="ed25519"
    )
    forged = (
        f"Authentication-Results: {AUTHSERV_ID}; spf=pass smtp.mailfrom=alice@good.test\r\n"
        "Authentication-Results: other.example; dkim=fail\r\n"
    ).encode()
    result = stack.send(world.OTHER_IP, ("bob@tenant.test",), raw=forged + signed)
    assert result.data is not None and result.data[0] == 250, result
    delivered = stack.postfix.delivered(result.queue_id).decode()
    ours = [line for line in delivered.split("\n") if line.lower().startswith(f"authentication-results: {AUTHSERV_ID}")]
    assert len(ours) == 1, delivered[:1500]
    assert "dkim=pass" in ours[0] and "iprev=pass" in ours[0] and "spf=fail" in ours[0]
    assert "Authentication-Results: other.example; dkim=fail" in delivered  # not ours to remove


def test_spf_pass_and_ipv4_are_accepted(stack: Stack) -> None:
    assert stack.send(world.GOOD_IP, ("bob@tenant.test",)).data[0] == 250  # type: ignore[index]
    v4 = stack.send(world.V4_IP, ("b@optout.test",))
    assert v4.rcpt["b@optout.test"][0] == 250 and v4.data is not None and v4.data[0] == 250
    assert stack.decision_for(world.V4_IP)["recipients"][0]["reason"] == "IPv4 client: outside the IPv6 rule"


def test_monitor_tenant_is_accepted_and_logs_would_reply(stack: Stack) -> None:
    result = stack.send(world.MISMATCH_IP, ("w@watch.test",), mail_from="alice@nospf.test")
    assert result.rcpt["w@watch.test"][0] == 250 and result.data is not None and result.data[0] == 250
    [verdict] = stack.decision_for(world.MISMATCH_IP)["recipients"]
    assert verdict["monitor"] is True and verdict["reply"] is None
    assert verdict["would_reply"].startswith("450 4.7.26")


def test_temperror_follows_temperror_action(dns_down: tuple[str, Stack]) -> None:
    action, stack = dns_down
    [warning] = [r for r in stack.milter.records() if r["message"].startswith("DEGRADED START")]
    assert warning["problem"].startswith("DNS_SERVERS: DNS server not answering: 127.0.0.1:")
    result = stack.send(world.GOOD_IP, ("bob@tenant.test",))
    decision = stack.decision_for(world.GOOD_IP)
    assert decision["checks"]["iprev"]["result"] == "temperror"
    if action == "accept":
        assert result.rcpt["bob@tenant.test"][0] == 250 and result.data is not None and result.data[0] == 250
        assert "temperror decides" in decision["recipients"][0]["reason"]
    else:  # the 450 of the check that failed temporarily: the sender retries later. At RCPT when SPF
        # had already failed temporarily by then (the verdict was certain), else at the end of DATA.
        code, text = result.rcpt["bob@tenant.test"] if result.data is None else result.data
        assert code == 450 and text.startswith("4.7.25")


@pytest.mark.parametrize("action", ["accept", "tempfail"])
def test_milter_down_follows_milter_default_action(action: str) -> None:
    """accept (the README's advice with TEMPERROR_ACTION=accept): mail flows unjudged; tempfail: 451 4.7.1."""
    with PostfixInstance(f"inet:127.0.0.1:{free_port()}", extra={"milter_default_action": action}) as postfix:
        result = send(
            postfix.port,
            client_ip=world.NO_PTR_IP,
            helo="mail.good.test",
            mail_from="alice@good.test",
            recipients=("bob@tenant.test",),
            message=world.message(),
        )
    if action == "accept":
        assert result.rcpt["bob@tenant.test"][0] == 250 and result.data is not None and result.data[0] == 250
    else:
        assert result.mail[0] == 451 and result.mail[1].startswith("4.7.1")


def test_smtp_demo_gives_every_scenario_its_expected_reply(capsys: pytest.CaptureFixture[str]) -> None:
    """``make smtp-demo`` on events/: each recipient's reply in a real SMTP session equals expected.json."""
    from scripts import smtp_demo

    assert smtp_demo.main(["--scenarios", str(Path(__file__).resolve().parents[2] / "events")]) == 0
    out = capsys.readouterr().out
    assert "every reply matches" in out and "MISMATCH" not in out
    assert "450 4.7.25 Service unavailable, sending IPv6 address [2001:db8:25::99] must have reverse DNS record." in out


def test_sigterm_cuts_a_session_off_at_the_drain_bound(tenants_file: Path, knot: KnotServer) -> None:
    """A session that never sends DATA holds the stop for MILTER_DRAIN_SECONDS, no longer; Postfix then
    applies milter_default_action (accept) to it, and the log counts it."""
    env = {"AWS_REGION": "eu-west-1", "DNS_SERVERS": knot.servers_env, "MILTER_DRAIN_SECONDS": "1"}
    with (
        MilterProcess(env, ["--tenants", str(tenants_file)], unix=True) as milter,
        PostfixInstance(milter.postfix_address) as postfix,
        smtplib.SMTP("127.0.0.1", postfix.port, timeout=60) as smtp,
    ):
        smtp.ehlo("client.ipv6gate.test")
        assert smtp.docmd("XCLIENT", f"ADDR=IPV6:{world.GOOD_IP} HELO=mail.good.test")[0] == 220
        smtp.ehlo_resp = None
        smtp.ehlo("mail.good.test")
        assert smtp.mail("alice@good.test")[0] == 250 and smtp.rcpt("bob@tenant.test")[0] == 250
        assert milter._proc is not None
        started = time.monotonic()
        milter._proc.send_signal(signal.SIGTERM)
        assert milter._proc.wait(timeout=30) == 0
        assert 1 <= time.monotonic() - started < 15  # the bound, plus libmilter noticing its stop (<= 5 s)
        [stopped] = [r for r in milter.records() if r.get("message") == "milter stopped"]
        assert stopped["sessions_cut_off"] == 1
        assert smtp.data(world.message())[0] == 250  # milter_default_action = accept
