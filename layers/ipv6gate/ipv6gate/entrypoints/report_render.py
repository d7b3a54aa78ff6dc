"""The report as a terminal table (text) or long-form CSV (one count per row, for scripts); JSON is ``to_dict``.

Every form says whether a domain is a tenant: the TENANT column (text), ``tenant`` (JSON, CSV).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from typing import Any

from ipv6gate.decision.replies import STATUSES
from ipv6gate.decision.rule import CHECK_NAMES
from ipv6gate.evaluation.domain_report import Report

TEXT_TOP = 5  # rows per reply and list in the text form (JSON has evaluation.domain_report.TOP)
_WHO = (
    ("top_sources", "ip", "ip"),
    ("top_prefixes", "prefix", "/64"),
    ("top_sender_domains", "sender_domain", "sender"),
)


def text(report: Report) -> str:
    data = report.to_dict()
    days = (report.until - report.since).total_seconds() / 86400
    index = data["domain_index"]
    listed = f", {index['read']} domain-day entries" if index else ""
    head = f"IPv6 decisions {data['since']} .. {data['until']} ({days:g} days), {data['items_read']} items read{listed}"
    codes, checks = "/".join(STATUSES), "/".join(CHECK_NAMES)
    rows = [
        ["DOMAIN", "TENANT", "MODE", "MESSAGES", "ACCEPTED", "REJECTED", "WOULD REJECT", "TEMPERROR", "BOUNCES"],
        ["", "", "", "", "", codes, codes, checks, "queued/suppressed"],
    ]
    lines = [head, ""]
    for d in data["domains"]:
        rows.append(
            [
                d["domain"],
                _yes_no(d["tenant"]) or "?",
                "-" if d["tenant"] is False else d["mode"] or "?",
                str(d["messages"]),
                str(d["accepted"]),
                _slash(d["rejected"]),
                _slash(d["would_reject"]),
                _slash(d["temperror"]),
                f"{d['bounces']['queued']}/{d['bounces']['suppressed']}",
            ]
        )
    lines += _table(rows, right={3, 4})
    for d in data["domains"]:
        who = [[r["reply"], str(r["messages"]), kind, r[key], r["example"]] for _, key, kind, r in _who_rows(d)]
        if who:
            lines += ["", f"{d['domain']} ({d['mode'] or '?'}): {_stopped(d)}, messages by reply and sender"]
            lines += ["  " + line for line in _table([["REPLY", "MESSAGES", "BY", "FROM", "EXAMPLE"], *who], {1})]
    lines += [""] * bool(data["notes"]) + [f"note: {note}" for note in data["notes"]]
    return "\n".join(lines) + "\n"


def csv_text(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["domain", "measure", "reply", "key", "count", "example", "tenant", "mode"])
    data = report.to_dict()
    writer.writerow(["", "items_read", "", "", data["items_read"], "", "", ""])
    writer.writerow(["", "limit_reached", "", "", int(data["limit_reached"]), "", "", ""])
    if data["domain_index"]:
        writer.writerow(["", "domain_index_read", "", "", data["domain_index"]["read"], "", "", ""])
        writer.writerow(["", "domain_index_complete", "", "", int(data["domain_index"]["complete"]), "", "", ""])
    for d in data["domains"]:
        name, flags = d["domain"], [_yes_no(d["tenant"]), d["mode"] or ""]
        for measure in ("messages", "unknown_client", "accepted", "without_detail", "unindexed"):
            writer.writerow([name, measure, "", "", d[measure], "", *flags])
        for measure in ("rejected", "would_reject"):
            writer.writerows([name, measure, status, "", n, "", *flags] for status, n in d[measure].items())
        writer.writerows([name, "temperror", "", check, n, "", *flags] for check, n in d["temperror"].items())
        writer.writerows([name, "bounces", "", kind, n, "", *flags] for kind, n in d["bounces"].items())
        for field, key, _, row in _who_rows(d, limit=None):
            writer.writerow([name, field, row["reply"], row[key], row["messages"], row["example"], *flags])
    return out.getvalue()


def _yes_no(flag: bool | None) -> str:
    return "" if flag is None else "yes" if flag else "no"


def _who_rows(domain: dict[str, Any], limit: int | None = TEXT_TOP) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(list, key, label, row) of the "who" lists, reply by reply, ``limit`` rows per reply and list."""
    for status in STATUSES:
        for field, key, kind in _WHO:
            rows = [r for r in domain[field] if r["reply"] == status]
            for row in rows[:limit]:
                yield field, key, kind, row


def _stopped(domain: dict[str, Any]) -> str:
    would, rejected = any(domain["would_reject"].values()), any(domain["rejected"].values())
    if would and not rejected:
        return "what enforcing would stop"
    return "what was stopped" if not would else "what was stopped, or would be when enforcing"


def _slash(counts: dict[str, int]) -> str:
    return "/".join(str(n) for n in counts.values())


def _table(rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(_cell(cell, w, i in right) for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
        for row in rows
    ]


def _cell(value: str, width: int, right: bool) -> str:
    return value.rjust(width) if right else value.ljust(width)
