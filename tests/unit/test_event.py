from typing import Any

import pytest

from devstack import world
from ipv6gate.mail.event import EventError, parse_event


def test_reads_the_fields_the_gate_needs() -> None:
    mail = parse_event(world.ses_event(recipients=("a@tenant.test", "b@other.test")))
    assert mail.message_id == "o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1"
    assert mail.mail_from == "alice@good.test"
    assert mail.recipients == ("a@tenant.test", "b@other.test")
    assert mail.headers[0] == ("Return-Path", "<alice@good.test>") and mail.has_header("received")


@pytest.mark.parametrize("source", ["", "<>"])
def test_null_sender(source: str) -> None:
    event = world.ses_event()
    event["Records"][0]["ses"]["mail"]["source"] = source
    assert parse_event(event).mail_from == ""


@pytest.mark.parametrize("value", ["yesterday", 17])
def test_bad_timestamp_is_refused(value: object) -> None:
    event = world.ses_event()
    event["Records"][0]["ses"]["mail"]["timestamp"] = value
    with pytest.raises(EventError, match="timestamp is not an ISO 8601 time"):
        parse_event(event)


def broken(path: str) -> dict[str, Any]:
    event = world.ses_event()
    node: Any = event
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    del node[int(last) if last.isdigit() else last]
    return event


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "top level is not a JSON object"),
        ({"Records": []}, "no Records[0]"),
        ({"Records": [{"s3": {}}]}, "no 'ses' object"),
        (broken("Records.0.ses.receipt"), "needs 'mail' and 'receipt'"),
        (broken("Records.0.ses.mail.messageId"), "mail.messageId is missing"),
        (broken("Records.0.ses.mail.headers"), "mail.headers is missing"),
        (broken("Records.0.ses.receipt.recipients"), "receipt.recipients is missing"),
        (broken("Records.0.ses.mail.headers.1.value"), "headers[1] needs string"),
    ],
)
def test_bad_events_are_named(event: Any, message: str) -> None:
    with pytest.raises(EventError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_event(event)
