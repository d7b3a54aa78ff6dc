"""The bouncer's own sender authentication, for bounces the gate queued before SPF/DKIM finished."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from devstack import world
from ipv6gate.bounce.backscatter import BounceAction, BounceDecision
from ipv6gate.bounce.request import BouncedRecipient, BounceRequest
from ipv6gate.dns import DnsResolver
from ipv6gate.evaluation.evaluator import Evaluator
from ipv6gate.evaluation.runner import CheckRunner
from ipv6gate.evaluation.sender_proof import authenticate_sender
from ipv6gate.ports.memory import InMemoryMessages
from ipv6gate.settings import Settings

SETTINGS = Settings.from_env({})


def prove(
    request: BounceRequest, *, dns: DnsResolver, messages: InMemoryMessages | None, settings: Settings
) -> BounceDecision:
    """As the bouncer does (``wiring.build_sender_proof``): an evaluator that judges no recipients."""
    return authenticate_sender(request, evaluator=Evaluator(settings, CheckRunner(dns), None), messages=messages)


def request(mail_from: str, ip: str = world.NO_PTR_IP, *, signed: bool = False, mid: str = "m1") -> BounceRequest:
    return BounceRequest(
        message_id=mid,
        mail_from=mail_from,
        client_ip=ip,
        arrival=datetime.now(UTC).isoformat(),
        reporting_mta="dns; inbound-smtp.eu-west-1.amazonaws.com",
        recipients=(BouncedRecipient("bob@tenant.test", "4.7.25", "450 4.7.25 ..."),),
        authenticate=True,
        dkim_signed=signed,
        helo="mail.good.test",
    )


@pytest.mark.parametrize(
    ("mail_from", "expected"),
    [
        ("alice@noptr.test", BounceAction.SEND),  # SPF lists 2001:db8:2::/48
        ("alice@good.test", BounceAction.SUPPRESS),  # SPF fail, not signed
        ("alice@nospf.test", BounceAction.SUPPRESS),
    ],
)
def test_spf(resolver: DnsResolver, mail_from: str, expected: BounceAction) -> None:
    decision = prove(request(mail_from), dns=resolver, messages=None, settings=SETTINGS)
    assert decision.action is expected, decision.reason


def test_aligned_dkim_proves_the_sender(resolver: DnsResolver, keys: world.Keys) -> None:
    messages = InMemoryMessages({"m1": world.sign(world.message(), keys)})
    decision = prove(request("alice@good.test", signed=True), dns=resolver, messages=messages, settings=SETTINGS)
    assert decision.action is BounceAction.SEND and "DKIM pass by good.test" in decision.reason


def test_unaligned_dkim_does_not(resolver: DnsResolver, keys: world.Keys) -> None:
    messages = InMemoryMessages({"m1": world.sign(world.message(), keys)})
    decision = prove(request("alice@softfail.test", signed=True), dns=resolver, messages=messages, settings=SETTINGS)
    assert decision.action is BounceAction.SUPPRESS


def test_temporary_failures_defer(keys: world.Keys) -> None:
    backend = world.zone_backend(keys, timeouts=("good.test.",))
    resolver = DnsResolver(backend, query_timeout=1, query_limit=60)
    decision = prove(request("alice@good.test"), dns=resolver, messages=None, settings=SETTINGS)
    assert decision.action is BounceAction.DEFER


def test_a_missing_message_is_no_proof_yet_and_defers(resolver: DnsResolver) -> None:
    """As in the gate (evaluation/stored_message.py): a store fault is temperror, never a verdict."""
    decision = prove(
        request("alice@good.test", signed=True), dns=resolver, messages=InMemoryMessages(), settings=SETTINGS
    )
    assert decision.action is BounceAction.DEFER and "dkim temperror" in decision.reason


def test_an_oversized_message_is_permanent_and_suppresses(keys: world.Keys, resolver: DnsResolver) -> None:
    signed = world.sign(world.message(mail_from="alice@good.test"), keys)
    decision = prove(
        request("alice@good.test", signed=True),
        dns=resolver,
        messages=InMemoryMessages({"m1": signed}),
        settings=replace(SETTINGS, message_max_bytes=len(signed) - 1),
    )
    assert decision.action is BounceAction.SUPPRESS and "dkim permerror" in decision.reason


def test_request_round_trips_the_new_fields() -> None:
    r = request("alice@noptr.test", signed=True)
    assert BounceRequest.from_json(r.to_json()) == r
    legacy = r.to_json().replace('"authenticate": true, ', "")
    assert BounceRequest.from_json(legacy).authenticate is False
