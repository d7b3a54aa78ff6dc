"""Gate.evaluate and handle_ses_event on generated events: always a well-formed decision.

Zone-file DNS of the test world plus hostile zones (devstack/hostile_zones.py), in-memory tenants and
messages. What "well formed" means is in devstack/invariants.py (shared with fuzz/soak.py).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from devstack import invariants
from ipv6gate.entrypoints.lambda_gate import handle_ses_event
from ipv6gate.evaluation.gate import Gate
from ipv6gate.evaluation.record import Decision
from ipv6gate.mail.event import parse_event
from tests.property import strategies as s
from tests.property.conftest import PropWorld

MESSAGE_ID = "props-message"
GATE_SETTINGS = st.sampled_from(
    [
        {},
        {"ptr_mode": "fcrdns", "temperror_action": "reject", "bounce_mode": "always"},
        {"dkim_max_signatures": 1, "spf_void_lookup_limit": 0, "dns_query_limit": 5},
    ]
)


@st.composite
def events(draw: st.DrawFn, *, forged: bool = True) -> dict[str, Any]:
    ip = draw(s.clients)
    helo = draw(st.one_of(s.plain_helos, s.any_text)) if draw(st.booleans()) else None
    top = draw(st.one_of(s.ses_received(ip, helo=helo), s.ses_received(ip), s.any_text))
    extra = draw(st.lists(st.one_of(s.dkim_garbage, st.tuples(s.header_names, s.any_text)), max_size=4))
    lower = draw(s.forgeries) if forged else []
    headers = [("Return-Path", "<x>"), ("Received", top), *lower, *extra, ("From", "a@good.test")]
    return s.ses_event(
        headers=headers,
        mail_from=draw(s.mail_froms),
        recipients=draw(s.recipient_lists),
        message_id=MESSAGE_ID,
        truncated=draw(st.booleans()),
    )


def raw_for(pw: PropWorld, pick: int | None, junk: bytes) -> bytes | None:
    if pick is None:
        return None
    return pw.signed[pick % len(pw.signed)] if pick >= 0 else junk


def decide(pw: PropWorld, gate: Gate, event: dict[str, Any], raw: bytes | None) -> Decision:
    pw.messages.messages.clear()
    if raw is not None:
        pw.messages.messages[MESSAGE_ID] = raw
    return gate.evaluate(parse_event(event))


raw_picks = st.one_of(st.none(), st.integers(-1, 20))


@settings(deadline=None)
@given(event=events(), env=GATE_SETTINGS, pick=raw_picks, junk=st.binary(max_size=3000))
def test_every_decision_is_well_formed(
    prop_world: PropWorld, event: dict[str, Any], env: dict[str, object], pick: int | None, junk: bytes
) -> None:
    gate = prop_world.gate(**env)
    decision = decide(prop_world, gate, event, raw_for(prop_world, pick, junk))
    mail = parse_event(event)
    assert invariants.decision_problems(decision, mail, query_limit=gate.settings.dns_query_limit) == []


@settings(deadline=None)
@given(event=st.one_of(events(), s.json_values), env=GATE_SETTINGS, pick=raw_picks, junk=st.binary(max_size=3000))
def test_the_handler_always_answers_a_disposition(
    prop_world: PropWorld, event: Any, env: dict[str, object], pick: int | None, junk: bytes
) -> None:
    gate = prop_world.gate(**env)
    prop_world.messages.messages.clear()
    raw = raw_for(prop_world, pick, junk)
    if raw is not None:
        prop_world.messages.messages[MESSAGE_ID] = raw
    prop_world.metrics.clear_metrics()
    result = handle_ses_event(event, gate, prop_world.logger, prop_world.metrics)
    assert invariants.handler_result_problems(result) == []


@settings(deadline=None)
@given(ip=s.clients, data=st.data(), mail_from=s.mail_froms, recipients=s.recipient_lists)
def test_the_checked_address_is_the_one_ses_saw(
    prop_world: PropWorld,
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
    data: st.DataObject,
    mail_from: str,
    recipients: list[str],
) -> None:
    headers = [("Received", data.draw(s.ses_received(ip))), *data.draw(s.forgeries)]
    event = s.ses_event(headers=headers, mail_from=mail_from, recipients=recipients, message_id=MESSAGE_ID)
    decision = decide(prop_world, prop_world.gate(), event, None)
    assert decision.client_ip == str(s.expected(ip))
    for v in decision.verdicts:
        if v.reply is not None and v.reply.status.startswith("4."):
            assert f"[{s.expected(ip)}]" in str(v.reply)


CHEAP_SENDERS = st.sampled_from(
    ["", "alice@good.test", "alice@other.test", "alice@softfail.test", "alice@nospf.test", "alice@v4only.test"]
)


@settings(deadline=None)
@given(
    ip=s.ipv6,
    data=st.data(),
    mail_from=CHEAP_SENDERS,
    recipients=st.lists(st.sampled_from(["bob@tenant.test", "carol@optout.test", "dave@watch.test"]), min_size=1),
    pick=raw_picks,
)
def test_sender_written_forgeries_never_change_the_verdicts(
    prop_world: PropWorld,
    ip: ipaddress.IPv6Address,
    data: st.DataObject,
    mail_from: str,
    recipients: list[str],
    pick: int | None,
) -> None:
    """Lower Received headers (SES-shaped, other addresses), Authentication-Results, Received-SPF, X-SES-*.

    Senders with small SPF records only: one that exhausts the query cap makes the verdict depend on
    thread timing (see test_caps_properties), which is not what this property is about.
    """
    top = ("Received", data.draw(s.ses_received(ip)))
    forged = data.draw(s.forgeries.filter(bool))
    signed = ("DKIM-Signature", "v=1") if pick is not None else ("X-Unsigned", "1")
    raw = raw_for(prop_world, pick, b"")
    gate = prop_world.gate()

    def verdicts(headers: list[tuple[str, str]]) -> list[tuple[Any, ...]]:
        event = s.ses_event(headers=headers, mail_from=mail_from, recipients=recipients, message_id=MESSAGE_ID)
        d = decide(prop_world, gate, event, raw)
        return [(d.client_ip, d.disposition)] + [(v.recipient, v.verdict, str(v.reply)) for v in d.verdicts]

    assert verdicts([top, *forged, signed]) == verdicts([top, signed])
