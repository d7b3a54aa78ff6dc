"""The bounce request the gate queues and the bouncer turns into one SES SendBounce call.

The queue body is versioned JSON, validated on the way in, so a malformed or foreign message is
refused with a clear error (and ends in the dead-letter queue) instead of producing a wrong DSN.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

VERSION = 1

_EXPLANATIONS = {
    "4.7.25": "The sending IPv6 address {ip} has no reverse DNS (PTR) record. Publish a PTR record "
    "for it (ideally one whose name resolves back to it), or send over IPv4.",
    "4.7.26": "The message sent over IPv6 from {ip} passed neither SPF nor DKIM. Publish an SPF record "
    "for your MAIL FROM domain that lists {ip}, or sign your mail with DKIM, or send over IPv4.",
    "5.2.1": "The recipient domain does not accept email over IPv6. Send over IPv4.",
}


class BounceRequestError(ValueError):
    """The queued body is not a bounce request this version understands."""


@dataclass(frozen=True, slots=True)
class BouncedRecipient:
    recipient: str
    status: str  # enhanced status code, e.g. "4.7.25"
    reply: str  # the full reply text, e.g. "450 4.7.25 Service unavailable, ..."


@dataclass(frozen=True, slots=True)
class BounceRequest:
    message_id: str
    mail_from: str
    client_ip: str
    arrival: str  # ISO 8601, SES's receipt timestamp
    reporting_mta: str  # e.g. "dns; inbound-smtp.eu-west-1.amazonaws.com"
    recipients: tuple[BouncedRecipient, ...]
    # Set when the gate decided before SPF/DKIM were known: the bouncer must prove the sender first.
    authenticate: bool = False
    dkim_signed: bool = False  # the message carries a DKIM-Signature (worth fetching for DKIM)
    helo: str = ""  # the client's HELO (SPF's %{h} macro)

    def to_json(self) -> str:
        body = asdict(self)
        body["version"] = VERSION
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BounceRequest:
        try:
            body = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            raise BounceRequestError(f"bounce request is not JSON: {exc}") from None
        if not isinstance(body, dict) or body.get("version") != VERSION:
            raise BounceRequestError(f"bounce request version is not {VERSION}")
        try:
            recipients = tuple(BouncedRecipient(**r) for r in body["recipients"])
            request = cls(
                message_id=_text(body, "message_id"),
                mail_from=_text(body, "mail_from"),
                client_ip=_text(body, "client_ip"),
                arrival=_text(body, "arrival"),
                reporting_mta=_text(body, "reporting_mta"),
                recipients=recipients,
                authenticate=body.get("authenticate", False) is True,
                dkim_signed=body.get("dkim_signed", False) is True,
                helo=str(body.get("helo", "")),
            )
        except (KeyError, TypeError) as exc:
            raise BounceRequestError(f"bounce request is missing or has a bad field: {exc}") from None
        if not request.recipients or not request.mail_from:
            raise BounceRequestError("bounce request has no recipients or no sender")
        request.arrival_time()  # validates
        return request

    def arrival_time(self) -> datetime:
        try:
            return datetime.fromisoformat(self.arrival.replace("Z", "+00:00"))
        except ValueError:
            raise BounceRequestError(f"bounce request arrival {self.arrival!r} is not ISO 8601") from None

    def idempotency_key(self) -> str:
        """One bounce per message and set of recipients, however often SES or SQS redeliver."""
        return self.message_id + "|" + ",".join(sorted(r.recipient.lower() for r in self.recipients))

    def explanation(self) -> str:
        seen: list[str] = []
        for r in self.recipients:
            text = _EXPLANATIONS.get(r.status, "").format(ip=self.client_ip)
            if text and text not in seen:
                seen.append(text)
        return " ".join(seen) or "The message was not accepted over IPv6."

    def send_bounce_params(self, bounce_sender: str, bounce_sender_arn: str | None = None) -> dict[str, Any]:
        """Keyword arguments for SES v1 ``send_bounce`` (custom codes need RecipientDsnFields)."""
        params: dict[str, Any] = {
            "OriginalMessageId": self.message_id,
            "BounceSender": bounce_sender,
            "Explanation": self.explanation(),
            "MessageDsn": {"ReportingMta": self.reporting_mta, "ArrivalDate": self.arrival_time()},
            "BouncedRecipientInfoList": [
                {
                    "Recipient": r.recipient,
                    "RecipientDsnFields": {
                        "Action": "failed",
                        "Status": r.status,
                        "DiagnosticCode": f"smtp; {r.reply}",
                    },
                }
                for r in self.recipients
            ],
        }
        if bounce_sender_arn:
            params["BounceSenderArn"] = bounce_sender_arn
        return params


def _text(body: dict[str, Any], key: str) -> str:
    value = body[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string")
    return value
