"""The rule fed stage by stage (the milter's core), against the zone-file DNS of the test world."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence

import pytest

from devstack import world
from ipv6gate.decision.tenants import Mode, Tenant
from ipv6gate.dns import DnsResolver
from ipv6gate.evaluation.staged import Limits, Outcome, SmtpGate, SmtpSession
from ipv6gate.mail.event import parse_event
from ipv6gate.ports.memory import InMemoryMessages, InMemoryTenants, InMemoryTrace
from ipv6gate.settings import Settings
from ipv6gate.wiring import assemble_gate, assemble_smtp_gate

MakeSmtp = Callable[..., SmtpGate]
PARTNER = "2001:db8:6::/48"  # OTHER_IP's range


@pytest.fixture
def smtp_tenants() -> InMemoryTenants:
    import ipaddress

    return InMemoryTenants(
        [
            Tenant("tenant.test", ipv6_inbound=True),
            Tenant("optout.test", ipv6_inbound=False),
            Tenant("watch.test", ipv6_inbound=True, mode=Mode.MONITOR),
            Tenant("partner.test", ipv6_inbound=True, partner_prefixes=(ipaddress.IPv6Network(PARTNER),)),
        ]
    )


@pytest.fixture
def make_smtp(resolver: DnsResolver, smtp_tenants: InMemoryTenants) -> MakeSmtp:
    def build(limits: Limits | None = None, trace: InMemoryTrace | None = None, **env: str) -> SmtpGate:
        settings = Settings.from_env({"AWS_REGION": "eu-west-1", **{k.upper(): v for k, v in env.items()}})
        return assemble_smtp_gate(settings, resolver, smtp_tenants, trace=trace, limits=limits)

    return build


def feed_message(session: SmtpSession, raw: bytes, chunk: int = 7) -> None:
    """Headers and body as Postfix hands them to a milter: one header at a time, the body in pieces."""
    head, _, body = raw.partition(b"\r\n\r\n")
    fields: list[list[bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            fields[-1][1] += b"\n" + line  # folded: Postfix gives LF between the lines
        else:
            name, _, value = line.partition(b":")
            fields.append([name, value])
    for name, value in fields:
        session.header(name, value)
    session.end_of_headers()
    for i in range(0, len(body), chunk):
        session.body(body[i : i + chunk])


def transaction(
    gate: SmtpGate,
    *,
    ip: str = world.GOOD_IP,
    mail_from: str = "alice@good.test",
    recipients: Sequence[str] = ("bob@tenant.test",),
    raw: bytes | None = None,
) -> tuple[dict[str, str | None], Outcome | None, SmtpSession]:
    """One SMTP transaction; each recipient's reply at RCPT, and the end-of-message outcome (None: no DATA)."""
    session = gate.connect(ip, "mx.test")
    session.helo("mail.good.test")
    session.mail_from(f"<{mail_from}>")
    replies = {r: (str(reply) if (reply := session.rcpt(f"<{r}>")) else None) for r in recipients}
    if all(reply is not None for reply in replies.values()):
        return replies, None, session
    feed_message(session, raw if raw is not None else world.message(mail_from=mail_from, to=recipients[0]))
    return replies, session.end_of_message("QUEUEID1"), session


def test_no_ptr_is_answered_at_rcpt(make_smtp: MakeSmtp) -> None:
    replies, outcome, session = transaction(make_smtp(), ip=world.NO_PTR_IP)
    assert replies == {
        "bob@tenant.test": "450 4.7.25 Service unavailable, sending IPv6 address [2001:db8:2::25] "
        "must have reverse DNS record."
    }
    assert outcome is None
    decision = session.close()
    assert decision is not None and decision.front_door == "milter"
    assert [v.verdict.value for v in decision.verdicts] == [
        "reject"
    ] and decision.checks.iprev.result.value == "permerror"


def test_not_opted_in_is_answered_at_rcpt_and_others_go_on(make_smtp: MakeSmtp) -> None:
    replies, outcome, _ = transaction(make_smtp(), recipients=("b@optout.test", "a@tenant.test"))
    assert replies["b@optout.test"] == "550 5.2.1 Service unavailable, [optout.test] does not accept email over IPv6."
    assert replies["a@tenant.test"] is None
    assert outcome is not None and outcome.reply is None  # SPF passes for GOOD_IP
    assert [v.recipient for v in outcome.decision.verdicts] == ["b@optout.test", "a@tenant.test"]
    assert outcome.decision.domains == ("optout.test", "tenant.test")
    assert outcome.decision.message_id == "QUEUEID1"


def test_not_authenticated_is_answered_at_end_of_message(make_smtp: MakeSmtp) -> None:
    replies, outcome, _ = transaction(make_smtp(), ip=world.OTHER_IP)
    assert replies == {"bob@tenant.test": None}
    assert outcome is not None and str(outcome.reply) == (
        "450 4.7.26 Service unavailable, message sent over IPv6 [2001:db8:6::25] "
        "must pass either SPF or DKIM validation."
    )
    assert outcome.decision.checks.spf.result.value == "fail" and outcome.decision.checks.dkim.result.value == "none"


def test_a_milter_decision_carries_no_ses_disposition_and_no_bounce(make_smtp: MakeSmtp) -> None:
    """The SMTP reply is the milter's answer: SES's CONTINUE/STOP_RULE_SET and a bounce mean nothing here."""
    trace = InMemoryTrace()
    gate = make_smtp(trace=trace)
    _, outcome, _ = transaction(gate, ip=world.OTHER_IP)
    assert outcome is not None and outcome.reply is not None  # rejected, yet nothing for SES to stop
    assert outcome.decision.disposition is None and outcome.decision.bounce is None
    record = outcome.decision.to_dict()
    assert "disposition" not in record and record["front_door"] == "milter"
    gate.record(outcome.decision)
    [(recorded, _)] = trace.records
    assert recorded is outcome.decision


@pytest.mark.parametrize("chunk", [1, 7, 65536])
def test_dkim_is_verified_on_the_streamed_body(make_smtp: MakeSmtp, keys: world.Keys, chunk: int) -> None:
    raw = world.sign(world.message(body="Hello,\r\n  folded  body\r\n\r\n"), keys, selector="rsa")
    gate = make_smtp()
    session = gate.connect(world.OTHER_IP)
    session.mail_from("<alice@good.test>")
    assert session.rcpt("<bob@tenant.test>") is None
    feed_message(session, raw, chunk)
    outcome = session.end_of_message("Q")
    assert outcome.reply is None
    assert outcome.decision.checks.dkim.result.value == "pass", outcome.decision.checks.dkim.reason


def test_a_tampered_body_fails_dkim_and_gets_4_7_26(make_smtp: MakeSmtp, keys: world.Keys) -> None:
    raw = world.sign(world.message(), keys).replace(b"Hi.", b"Hi!")
    _, outcome, _ = transaction(make_smtp(), ip=world.OTHER_IP, raw=raw)
    assert outcome is not None and outcome.reply is not None and outcome.reply.status == "4.7.26"
    assert outcome.decision.checks.dkim.result.value == "fail"


def test_monitor_tenant_is_accepted_with_would_reply(make_smtp: MakeSmtp) -> None:
    replies, outcome, _ = transaction(make_smtp(), ip=world.NO_PTR_IP, recipients=("w@watch.test",))
    assert replies == {"w@watch.test": None}
    assert outcome is not None and outcome.reply is None
    verdict = outcome.decision.verdicts[0].to_dict()
    assert verdict["monitor"] is True and str(verdict["would_reply"]).startswith("450 4.7.25")


def test_ipv4_and_ipv4_mapped_clients_are_outside_the_rule(make_smtp: MakeSmtp) -> None:
    for ip in (world.V4_IP, f"::ffff:{world.V4_IP}"):
        replies, outcome, _ = transaction(make_smtp(), ip=ip, recipients=("b@optout.test",))
        assert replies == {"b@optout.test": None}
        assert outcome is not None and outcome.reply is None and outcome.decision.dns_queries == 0
        assert outcome.decision.source.version == 4  # type: ignore[union-attr]


def test_a_partner_recipient_and_an_enforced_one_are_split_into_two_transactions(make_smtp: MakeSmtp) -> None:
    gate = make_smtp()
    session = gate.connect(world.OTHER_IP)
    session.mail_from("<alice@good.test>")
    assert session.rcpt("<p@partner.test>") is None  # accepted whatever SPF/DKIM say
    split = session.rcpt("<bob@tenant.test>")  # its verdict waits on SPF/DKIM: not in this transaction
    assert split is not None and (split.code, split.status) == (452, "4.5.3")
    feed_message(session, world.message())
    outcome = session.end_of_message("Q")
    assert outcome.reply is None and [v.recipient for v in outcome.decision.verdicts] == ["p@partner.test"]
    assert any("452 4.5.3" in note for note in outcome.decision.notes)
    # The client sends it again on its own: now it gets the rule's own answer.
    session.mail_from("<alice@good.test>")
    assert session.rcpt("<bob@tenant.test>") is None
    feed_message(session, world.message())
    assert session.end_of_message("Q2").reply.status == "4.7.26"  # type: ignore[union-attr]


def test_recipients_beyond_the_limit_get_452(make_smtp: MakeSmtp) -> None:
    session = make_smtp(limits=Limits(max_recipients=2)).connect(world.GOOD_IP)
    session.mail_from("<alice@good.test>")
    answers = [session.rcpt(f"<u{i}@tenant.test>") for i in range(3)]
    assert answers[:2] == [None, None] and answers[2] is not None and answers[2].status == "4.5.3"


def test_a_message_over_its_size_limit_is_a_dkim_permerror(make_smtp: MakeSmtp, keys: world.Keys) -> None:
    raw = world.sign(world.message(body="x" * 3000), keys)
    _, outcome, _ = transaction(make_smtp(message_max_bytes="1024"), ip=world.OTHER_IP, raw=raw)
    assert outcome is not None and outcome.decision.checks.dkim.result.value == "permerror"
    assert "MESSAGE_MAX_BYTES" in outcome.decision.checks.dkim.reason


def test_a_header_block_over_its_limit_is_a_dkim_permerror(make_smtp: MakeSmtp, keys: world.Keys) -> None:
    raw = world.sign(world.message(subject="s" * 2000), keys)
    _, outcome, _ = transaction(make_smtp(limits=Limits(max_header_bytes=1024)), ip=world.OTHER_IP, raw=raw)
    assert outcome is not None and outcome.decision.checks.dkim.result.value == "permerror"


def test_ptr_timeout_follows_temperror_action(make_smtp: MakeSmtp) -> None:
    # PTR_TIMEOUT_IP is in good.test's SPF: authenticated, only the PTR is unknown.
    _, accepted, _ = transaction(
        make_smtp(decision_budget_seconds="1.5", dns_query_timeout_seconds="0.5"), ip=world.PTR_TIMEOUT_IP
    )
    assert accepted is not None and accepted.reply is None
    assert accepted.decision.checks.iprev.result.value == "temperror"
    _, rejected, _ = transaction(
        make_smtp(decision_budget_seconds="1.5", dns_query_timeout_seconds="0.5", temperror_action="reject"),
        ip=world.PTR_TIMEOUT_IP,
    )
    assert rejected is not None and rejected.reply is not None and rejected.reply.status == "4.7.25"


def test_an_aborted_transaction_cancels_its_checks_and_reports_what_was_decided(make_smtp: MakeSmtp) -> None:
    trace = InMemoryTrace()
    gate = make_smtp(trace=trace)
    session = gate.connect(world.GOOD_IP)
    session.mail_from("<alice@good.test>")
    session.rcpt("<b@optout.test>")
    assert session.rcpt("<a@tenant.test>") is None
    decision = session.reset()
    assert decision is not None and [v.recipient for v in decision.verdicts] == ["b@optout.test"]
    assert any("undecided" in note for note in decision.notes)
    gate.record(decision)
    assert [d.message_id for d, _ in trace.records] == [decision.message_id]
    assert session.reset() is None  # nothing left open


# -- one rule, two front doors ---------------------------------------------------------------------------------

IPS = (world.GOOD_IP, world.NO_PTR_IP, world.OTHER_IP, world.MISMATCH_IP, world.V4_IP)
RECIPIENTS = ("a@tenant.test", "b@optout.test", "w@watch.test", "n@nobody.test")


@pytest.mark.parametrize(("ip", "signed"), list(itertools.product(IPS, (False, True))))
def test_every_recipient_gets_what_the_lambda_decides(
    make_smtp: MakeSmtp, resolver: DnsResolver, smtp_tenants: InMemoryTenants, keys: world.Keys, ip: str, signed: bool
) -> None:
    """For every client and recipient kind, the reply in the SMTP session is the Lambda's verdict for it."""
    raw = world.message(to="a@tenant.test")
    raw = world.sign(raw, keys) if signed else raw
    settings = Settings.from_env({"AWS_REGION": "eu-west-1"})
    lambda_gate = assemble_gate(settings, resolver, smtp_tenants, InMemoryMessages(), complete_checks=True)
    for recipient in RECIPIENTS:
        want = lambda_gate.evaluate(
            parse_event(world.ses_event(ip=ip, recipients=(recipient,), raw=raw)), raw
        ).verdicts[0]
        replies, outcome, _ = transaction(make_smtp(), ip=ip, recipients=(recipient,), raw=raw)
        got = replies[recipient] or (str(outcome.reply) if outcome and outcome.reply else None)
        expected = str(want.reply) if want.reply and not want.monitor else None
        assert got == expected, (recipient, want.reason)
        if outcome is not None:
            [verdict] = [v for v in outcome.decision.verdicts if v.recipient == recipient]
            assert (verdict.verdict, verdict.monitor, verdict.reply) == (want.verdict, want.monitor, want.reply)


# -- found by review: timing must not change a reply --------------------------------------------------------------


class _SlowPtr:
    """The test world's zone answers, with every PTR query held ``delay`` seconds."""

    def __init__(self, keys: world.Keys, delay: float) -> None:
        self.inner = world.zone_backend(keys)
        self.delay = delay

    def lookup(self, name, rdtype, timeout):
        import dns.rdatatype

        if rdtype == dns.rdatatype.PTR:
            time.sleep(self.delay)
        return self.inner.lookup(name, rdtype, timeout)


def _gate_with(backend: object, tenants: InMemoryTenants, workers: int = 6, **env: str) -> SmtpGate:
    settings = Settings.from_env({"AWS_REGION": "eu-west-1", **env})
    resolver = DnsResolver(backend, query_timeout=1.0, query_limit=60)  # type: ignore[arg-type]
    return assemble_smtp_gate(settings, resolver, tenants, check_threads=workers)


def test_a_later_transaction_still_gets_the_connections_ptr_result(
    keys: world.Keys, smtp_tenants: InMemoryTenants
) -> None:
    """The first message ends before the PTR answers (a partner needs none); the next one needs it."""
    # fcrdns: after the (slow) PTR answer, a forward lookup follows, which a cancelled session refuses.
    gate = _gate_with(_SlowPtr(keys, 0.3), smtp_tenants, PTR_MODE="fcrdns")
    session = gate.connect(world.OTHER_IP)  # PTR mail.other.test, in partner.test's prefix
    session.mail_from("<alice@good.test>")
    assert session.rcpt("<p@partner.test>") is None
    feed_message(session, world.message())
    first = session.end_of_message("Q1")
    assert first.reply is None and first.decision.checks.iprev.result.value == "skipped"
    session.mail_from("<alice@good.test>")
    assert session.rcpt("<bob@tenant.test>") is None
    feed_message(session, world.message())
    second = session.end_of_message("Q2")
    assert second.decision.checks.iprev.result.value == "pass"
    assert second.reply is not None and second.reply.status == "4.7.26"  # the Lambda's answer, not a temperror


def test_two_enforced_recipients_are_never_split_when_spf_answers_between_them(
    make_smtp: MakeSmtp, resolver: DnsResolver
) -> None:
    gate = make_smtp()
    session = gate.connect(world.GOOD_IP)
    session.mail_from("<alice@good.test>")
    session._tx.running["spf"].future.result()  # type: ignore[union-attr]  # SPF has passed ...
    assert session.rcpt("<a@tenant.test>") is None  # ... so this one is settled (accept) at RCPT
    assert session.rcpt("<c@tenant.test>") is None
    assert session.rcpt("<w@watch.test>") is None  # accepted whatever happens: no conflict either


def test_stalled_dkim_bodies_do_not_starve_other_sessions(keys: world.Keys, smtp_tenants: InMemoryTenants) -> None:
    """A signed message whose body never comes holds its own thread, not one the PTR lookups need."""
    gate = _gate_with(
        world.zone_backend(keys), smtp_tenants, workers=3, DECISION_BUDGET_SECONDS="1", DNS_QUERY_TIMEOUT_SECONDS="0.5"
    )
    stalled: list[SmtpSession] = []
    try:
        for _ in range(4):
            session = gate.connect(world.OTHER_IP)
            session.mail_from("<alice@good.test>")
            assert session.rcpt("<bob@tenant.test>") is None
            head = world.sign(world.message(), keys).split(b"\r\n\r\n")[0] + b"\r\n\r\n"
            feed_message(session, head)  # headers only: DKIM starts and waits for a body
            stalled.append(session)
        victim = gate.connect(world.NO_PTR_IP)
        victim.mail_from("<alice@good.test>")
        reply = victim.rcpt("<bob@tenant.test>")
        assert reply is not None and reply.status == "4.7.25"
    finally:
        for session in stalled:
            session.close()  # aborting fails each pipe: the DKIM threads end
