"""SMTP sessions of every kind, well-behaved and hostile, through Postfix to ``ipv6gate milter``.

Each kind runs one session against a private Postfix (``devstack.postfix``) on loopback and
returns what the client heard, in a short form such as ``"rcpt 450 4.7.25"`` or ``"data 250"``;
``expected`` is what it must hear from the test world (``devstack/world.py``) with the tenants
``TENANTS``. Used by ``tests/integration/test_milter_postfix_hostile.py`` and the soak
(``load/milter_soak.py``).
"""

from __future__ import annotations

import smtplib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from devstack import world

TENANTS = '[{"domain": "tenant.test", "ipv6_inbound": true}, {"domain": "optout.test", "ipv6_inbound": false}]'


def _code(reply: tuple[int, bytes]) -> str:
    """``250`` or ``450 4.7.25``: the code and, for a refusal, the enhanced status code."""
    code, text = reply
    return str(code) if code < 400 else f"{code} {text.decode(errors='replace').split(' ', 1)[0]}"


class Refused(Exception):
    """Postfix answered 421 at connect or XCLIENT: the milter refused the session (its session ceiling)."""


def open_session(port: int, ip: str, helo: str = "mail.good.test") -> smtplib.SMTP:
    try:
        smtp = smtplib.SMTP("127.0.0.1", port, timeout=120)
    except smtplib.SMTPConnectError as exc:
        if exc.smtp_code == 421:
            raise Refused(exc.smtp_error) from None
        raise
    smtp.ehlo("client.ipv6gate.test")
    addr = f"IPV6:{ip}" if ":" in ip else ip
    code, text = smtp.docmd("XCLIENT", f"ADDR={addr} HELO={helo}")
    if code == 421:
        raise Refused(text)
    if code != 220:
        raise RuntimeError(f"XCLIENT refused: {code} {text!r}")
    smtp.ehlo_resp = None
    smtp.ehlo(helo)
    return smtp


def envelope(smtp: smtplib.SMTP, *recipients: str, sender: str = "alice@good.test") -> list[str]:
    mail = smtp.mail(sender)
    if mail[0] != 250:
        return [f"mail {_code(mail)}"]
    return [f"rcpt {_code(smtp.rcpt(r))}" for r in recipients]


def transaction(port: int, ip: str, recipient: str, message: bytes) -> str:
    """One whole session: what the client heard at RCPT when refused there, else at the end of DATA."""
    with open_session(port, ip) as smtp:
        [rcpt] = envelope(smtp, recipient)
        if rcpt != "rcpt 250":
            return rcpt
        return f"data {_code(smtp.data(message))}"


def never_data(port: int, ip: str, hold: float, polite: bool) -> str:
    """MAIL and RCPT, then nothing for ``hold`` seconds; then QUIT, or (not ``polite``) the connection drops."""
    smtp = open_session(port, ip)
    [rcpt] = envelope(smtp, "bob@tenant.test")
    time.sleep(hold)
    if polite:
        smtp.quit()
    else:
        smtp.sock.close()  # type: ignore[union-attr]
    return rcpt


def vanish_in_body(port: int, ip: str, message: bytes) -> str:
    """DATA, half the message, then the connection drops (no end of data)."""
    smtp = open_session(port, ip)
    [rcpt] = envelope(smtp, "bob@tenant.test")
    if rcpt == "rcpt 250":
        assert smtp.docmd("DATA")[0] == 354
        smtp.sock.sendall(message[: len(message) // 2])  # type: ignore[union-attr]
    smtp.sock.close()  # type: ignore[union-attr]
    return rcpt


def slow_body(port: int, ip: str, message: bytes, tail: int, seconds_per_byte: float) -> str:
    """The message with its last ``tail`` bytes sent one at a time, ``seconds_per_byte`` apart."""
    with open_session(port, ip) as smtp:
        [rcpt] = envelope(smtp, "bob@tenant.test")
        if rcpt != "rcpt 250":
            return rcpt
        assert smtp.docmd("DATA")[0] == 354
        sock = smtp.sock
        assert sock is not None
        sock.sendall(message[:-tail])
        for i in range(len(message) - tail, len(message)):
            time.sleep(seconds_per_byte)
            sock.sendall(message[i : i + 1])
        sock.sendall(b"\r\n.\r\n")
        return f"data {_code(smtp.getreply())}"


def rset_then_message(port: int, ip: str, message: bytes) -> str:
    """A transaction abandoned with RSET after RCPT, then a whole one on the same connection."""
    with open_session(port, ip) as smtp:
        envelope(smtp, "bob@tenant.test")
        smtp.rset()
        [rcpt] = envelope(smtp, "bob@tenant.test")
        return rcpt if rcpt != "rcpt 250" else f"data {_code(smtp.data(message))}"


def too_many_recipients(port: int, ip: str, message: bytes, count: int) -> str:
    """``count`` recipients in one message: past MILTER_MAX_RECIPIENTS (100) each gets 452 4.5.3."""
    with open_session(port, ip) as smtp:
        replies = envelope(smtp, *(f"r{i}@tenant.test" for i in range(count)))
        refused = sorted(set(replies[100:]))
        return f"{replies[0]}; beyond 100: {', '.join(refused)}; data {_code(smtp.data(message))}"


def garbage(port: int) -> str:
    """Bytes that are no SMTP at all, then a dropped connection; Postfix answers, the milter sees a connect."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.recv(512)
        sock.sendall(b"\x00\xff" * 64 + b"\r\nMAIL FROM:<>\r\n")
        time.sleep(0.05)
    return "gone"


@dataclass(frozen=True)
class Kind:
    name: str
    run: Callable[[int], str]  # the Postfix port -> what the client heard
    expected: str
    hostile: bool = False


def kinds(keys: world.Keys, *, hold: float = 0.5, slow_tail: int = 4, seconds_per_byte: float = 0.05) -> list[Kind]:
    plain = world.message()
    signed = world.sign(world.message(body="Signed.\r\n"), keys)
    g, n, o, v4 = world.GOOD_IP, world.NO_PTR_IP, world.OTHER_IP, world.V4_IP
    return [
        Kind("spf pass", lambda p: transaction(p, g, "bob@tenant.test", plain), "data 250"),
        Kind("no PTR", lambda p: transaction(p, n, "bob@tenant.test", plain), "rcpt 450 4.7.25"),
        Kind("not opted in", lambda p: transaction(p, g, "bob@optout.test", plain), "rcpt 550 5.2.1"),
        Kind("neither SPF nor DKIM", lambda p: transaction(p, o, "bob@tenant.test", plain), "data 450 4.7.26"),
        Kind("DKIM pass", lambda p: transaction(p, o, "bob@tenant.test", signed), "data 250"),
        Kind("IPv4", lambda p: transaction(p, v4, "bob@optout.test", plain), "data 250"),
        Kind("never DATA, QUIT", lambda p: never_data(p, g, hold, True), "rcpt 250", True),
        Kind("never DATA, dropped", lambda p: never_data(p, n, hold, False), "rcpt 450 4.7.25", True),
        Kind("dropped in the body", lambda p: vanish_in_body(p, o, signed), "rcpt 250", True),
        Kind("slow body", lambda p: slow_body(p, o, signed, slow_tail, seconds_per_byte), "data 250", True),
        Kind("RSET, then a message", lambda p: rset_then_message(p, o, plain), "data 450 4.7.26", True),
        Kind(
            "101 recipients",
            lambda p: too_many_recipients(p, g, plain, 101),
            "rcpt 250; beyond 100: rcpt 452 4.5.3; data 250",
            True,
        ),
        Kind("garbage", garbage, "gone", True),
    ]
