"""SES receipt events and SES's own headers, as the tests, the fuzz soak and the demo generator write them.

One builder for the event's shape (``ses_event``) and one for the headers SES prepends
(``received_header`` and ``ses_headers``); each caller supplies what differs: the header list, the
commonHeaders it shows, the receipt's timestamps, verdicts and action.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

RECEIVER = "inbound-smtp.eu-west-1.amazonaws.com"
GATE_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:ipv6gate-gate"
MESSAGE_ID = "o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1"
TIMESTAMP = "2026-11-27T12:00:00.000Z"
DATE = "Fri, 27 Nov 2026 12:00:00 +0000 (UTC)"
ALL_PASS: Mapping[str, str] = {"spam": "PASS", "virus": "PASS", "spf": "PASS", "dkim": "PASS", "dmarc": "PASS"}
_TAGS = {"plain": "", "tagged": "IPv6:"}


def received_header(
    *,
    helo: str,
    ip: str,
    message_id: str,
    recipient: str,
    rdns: str | None = None,
    ip_form: str = "plain",
    by: str = RECEIVER,
    date: str = DATE,
) -> str:
    """SES's own Received header: ``from <helo> (<rdns> [<literal>]) by <by> with SMTP id ... for ...; <date>``.

    ``rdns`` defaults to ``helo``. ``ip_form`` is "plain" ([addr]), "tagged" ([IPv6:addr]) or the tag
    itself (e.g. "ipv6:"); a tag is written before an IPv6 address only.
    """
    tag = _TAGS.get(ip_form, ip_form)
    literal = f"{tag}{ip}" if ":" in ip else ip
    rdns = helo if rdns is None else rdns
    return f"from {helo} ({rdns} [{literal}]) by {by} with SMTP id {message_id} for {recipient}; {date}"


def ses_headers(
    *, mail_from: str, received: str | None, extra: Iterable[tuple[str, str]] = ()
) -> list[tuple[str, str]]:
    """The headers SES prepends, in SES's order; ``received=None`` leaves SES's Received header out."""
    ses_received = [] if received is None else [("Received", received)]
    return [
        ("Return-Path", f"<{mail_from}>"),
        *ses_received,
        ("X-SES-Spam-Verdict", "PASS"),
        ("X-SES-Virus-Verdict", "PASS"),
        *extra,
    ]


def lambda_action(function_arn: str = GATE_ARN) -> dict[str, str]:
    """The receipt rule's action: a synchronous Lambda call (what the gate runs as)."""
    return {"type": "Lambda", "invocationType": "RequestResponse", "functionArn": function_arn}


def ses_event(
    *,
    headers: Iterable[tuple[str, str]],
    mail_from: str,
    recipients: Sequence[str],
    message_id: str = MESSAGE_ID,
    truncated: bool = False,
    common_headers: Mapping[str, Any] | None = None,
    subject: str = "hello",
    timestamp: str = TIMESTAMP,
    processing_ms: int | None = 120,
    verdicts: Mapping[str, str] = ALL_PASS,
    dmarc_policy: str | None = None,
    action: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An SES receipt event for a Lambda action with exactly the given header list.

    ``common_headers`` go between commonHeaders' returnPath and subject; ``verdicts`` maps "spf" and
    the like to a status, in the receipt's order; ``processing_ms=None`` leaves processingTimeMillis
    out; ``action`` defaults to ``lambda_action()``.
    """
    receipt: dict[str, Any] = {"timestamp": timestamp}
    if processing_ms is not None:
        receipt["processingTimeMillis"] = processing_ms
    receipt["recipients"] = list(recipients)
    receipt.update({f"{name}Verdict": {"status": status} for name, status in verdicts.items()})
    if dmarc_policy:
        receipt["dmarcPolicy"] = dmarc_policy
    receipt["action"] = dict(action if action is not None else lambda_action())
    return {
        "Records": [
            {
                "eventSource": "aws:ses",
                "eventVersion": "1.0",
                "ses": {
                    "mail": {
                        "timestamp": timestamp,
                        "source": mail_from,
                        "messageId": message_id,
                        "destination": list(recipients),
                        "headersTruncated": truncated,
                        "headers": [{"name": n, "value": v} for n, v in headers],
                        "commonHeaders": {"returnPath": mail_from, **(common_headers or {}), "subject": subject},
                    },
                    "receipt": receipt,
                },
            }
        ]
    }
