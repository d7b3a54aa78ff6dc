"""The part of an SES receipt event the gate reads, validated into plain values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes.ses_event import SESEvent


class EventError(ValueError):
    """The input is not an SES receipt event; the message says which part is wrong."""


@dataclass(frozen=True, slots=True)
class Mail:
    message_id: str
    mail_from: str  # the SMTP MAIL FROM; "" for the null sender <>
    recipients: tuple[str, ...]  # the envelope recipients this rule matched
    headers: tuple[tuple[str, str], ...]  # in SES order: its own headers first
    headers_truncated: bool
    timestamp: str

    @property
    def may_be_dkim_signed(self) -> bool:
        """SES's header list shows a DKIM-Signature, or was cut off before we could tell."""
        return self.headers_truncated or self.has_header("DKIM-Signature")

    def has_header(self, name: str) -> bool:
        wanted = name.lower()
        return any(n.lower() == wanted for n, _ in self.headers)


def parse_event(event: SESEvent | Any) -> Mail:
    """Validate ``Records[0].ses`` and read it through Powertools' ``SESEvent``, the one wrapper.

    ``event`` is the handler's ``SESEvent`` (``@event_source``), or a plain decoded event (the CLI's
    files), which is wrapped here; either way it is wrapped once and read through the wrapper.
    """
    wrapped = event if isinstance(event, SESEvent) else None
    if wrapped is not None:
        event = wrapped.raw_event
    if not isinstance(event, Mapping):
        raise EventError("not an SES event: top level is not a JSON object")
    records = event.get("Records")
    if not isinstance(records, list) or not records or not isinstance(records[0], Mapping):
        raise EventError("not an SES event: no Records[0]")
    ses = records[0].get("ses")
    if not isinstance(ses, Mapping):
        raise EventError("not an SES event: Records[0] has no 'ses' object")
    mail, receipt = ses.get("mail"), ses.get("receipt")
    if not isinstance(mail, Mapping) or not isinstance(receipt, Mapping):
        raise EventError("not an SES event: Records[0].ses needs 'mail' and 'receipt'")
    _require(mail, "messageId", str, "Records[0].ses.mail")
    _require(mail, "source", str, "Records[0].ses.mail")
    _require(mail, "headers", list, "Records[0].ses.mail")
    _require(receipt, "recipients", list, "Records[0].ses.receipt")
    for i, header in enumerate(mail["headers"]):
        if not (
            isinstance(header, Mapping) and isinstance(header.get("name"), str) and isinstance(header.get("value"), str)
        ):
            raise EventError(f"Records[0].ses.mail.headers[{i}] needs string 'name' and 'value'")
    if not all(isinstance(r, str) for r in receipt["recipients"]):
        raise EventError("Records[0].ses.receipt.recipients must be a list of strings")

    timestamp = mail.get("timestamp", "")
    if not isinstance(timestamp, str) or (timestamp and not _iso(timestamp)):
        raise EventError("Records[0].ses.mail.timestamp is not an ISO 8601 time")

    record = (wrapped or SESEvent(dict(event))).record.ses
    return Mail(
        message_id=record.mail.message_id,
        mail_from=_null_sender(record.mail.source),
        recipients=tuple(record.receipt.recipients),
        headers=tuple((h.name, h.value) for h in record.mail.headers),
        headers_truncated=bool(mail.get("headersTruncated", False)),
        timestamp=timestamp,
    )


def _require(obj: Mapping[str, Any], key: str, kind: type, where: str) -> None:
    if not isinstance(obj.get(key), kind):
        raise EventError(f"{where}.{key} is missing or not a {kind.__name__}")


def _null_sender(source: str) -> str:
    return "" if source.strip() in ("", "<>") else source.strip()


def _iso(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
