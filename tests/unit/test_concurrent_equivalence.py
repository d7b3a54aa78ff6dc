"""The concurrent, early-exit gate decides every event in events/ exactly as a plain sequential
evaluation does: PTR, then SPF, then DKIM, one after another, every check to the end, then the policy."""

from __future__ import annotations

import ipaddress

import pytest

from devstack import scenarios
from ipv6gate.checks.dkim import check_dkim
from ipv6gate.checks.iprev import check_iprev
from ipv6gate.checks.spf import check_spf
from ipv6gate.decision.rule import Checks, Recipient, RecipientVerdict, decide, disposition
from ipv6gate.dns import Deadline
from ipv6gate.files.tenants import FileTenants
from ipv6gate.mail.event import Mail, parse_event
from ipv6gate.mail.source import Source, find_source
from ipv6gate.ports.memory import InMemoryMessages
from ipv6gate.settings import Settings
from ipv6gate.wiring import assemble_gate, build_dns

EVENTS = scenarios.event_files()
SETTINGS = Settings.from_env({"AWS_REGION": "eu-west-1", "DNS_ZONE_DIR": str(scenarios.EVENTS_DIR / "zones")})
TENANTS = FileTenants.from_json_file(scenarios.EVENTS_DIR / "tenants.json")
MESSAGES = InMemoryMessages(scenarios.stored_messages())


def sequential(mail: Mail) -> tuple[str, list[tuple[str, str | None]]]:
    """The reference: no threads, no early exit, no shortcuts beyond the rule itself."""
    from ipv6gate.checks.results import CheckResult, Result
    from ipv6gate.mail.domains import DomainError, recipient_domain

    source = find_source(mail.headers, SETTINGS.trusted_receivers, mail.message_id)
    recipients = []
    for address in mail.recipients:
        try:
            domain: str | None = recipient_domain(address)
        except DomainError:
            domain = None
        tenant = TENANTS.get_many([domain]).get(domain) if domain else None
        recipients.append(Recipient(address, domain, tenant))
    none = CheckResult("x", Result.NONE, "")
    checks = Checks(none, none, none)
    if isinstance(source, Source) and source.version == 6:
        session = build_dns(SETTINGS).session(Deadline(10.0))
        ip = ipaddress.ip_address(source.ip)
        iprev = check_iprev(session, ip, SETTINGS.ptr_mode)
        spf = check_spf(session, ip, mail.mail_from, source.helo, void_limit=2)
        try:
            raw = MESSAGES.open(mail.message_id, SETTINGS.message_max_bytes).read()
            dkim = check_dkim(session, raw, max_signatures=5)
        except Exception:
            dkim = CheckResult("dkim", Result.NONE, "unsigned")
        checks = Checks(iprev, spf, dkim)
    verdicts: list[RecipientVerdict] = decide(source, recipients, checks, SETTINGS.temperror_action)
    return disposition(verdicts).value, [(v.recipient, str(v.reply) if v.reply else None) for v in verdicts]


@pytest.mark.parametrize("name", EVENTS)
@pytest.mark.parametrize("complete", [False, True], ids=["early-exit", "all-checks"])
def test_same_decision_as_sequential(name: str, complete: bool) -> None:
    mail = parse_event(scenarios.load_event(name))
    gate = assemble_gate(SETTINGS, build_dns(SETTINGS), TENANTS, MESSAGES, complete_checks=complete)
    for _ in range(3):  # the order in which the threads finish varies; the decision must not
        d = gate.evaluate(mail)
        assert (d.disposition, [(v.recipient, str(v.reply) if v.reply else None) for v in d.verdicts]) == (
            sequential(mail)
        ), name
