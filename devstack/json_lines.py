"""What a function printed, read back: its JSON objects and its structured log lines."""

from __future__ import annotations

import json
from typing import Any


def json_records(text: str) -> list[dict[str, Any]]:
    """Every JSON object printed in ``text``, one per line, in order (Powertools log lines, EMF blobs).

    A line may carry a prefix before its ``{`` (the Lambda runtime emulator's own), which is skipped.
    """
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        start = line.find("{")
        if start < 0:
            continue
        try:
            value = json.loads(line[start:])
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def log_records(
    records: list[dict[str, Any]], message: str | None = None, *, prefix: bool = False
) -> list[dict[str, Any]]:
    """The structured log lines among ``records`` (those with a ``level``; not EMF blobs), optionally only
    those whose message is ``message`` (or starts with it, with ``prefix``)."""

    def wanted(text: str) -> bool:
        return message is None or (text.startswith(message) if prefix else text == message)

    return [r for r in records if "level" in r and "_aws" not in r and wanted(str(r.get("message", "")))]


def emf_blobs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The CloudWatch embedded-metric-format blobs among ``records``."""
    return [r for r in records if isinstance(r.get("_aws"), dict)]


def metric_totals(records: list[dict[str, Any]]) -> dict[str, float]:
    """Metric name -> the sum of its values over every EMF blob among ``records``."""
    totals: dict[str, float] = {}
    for blob in emf_blobs(records):
        for directive in blob["_aws"].get("CloudWatchMetrics", []):
            for metric in directive.get("Metrics", []):
                raw = blob.get(metric["Name"], 0)
                totals[metric["Name"]] = totals.get(metric["Name"], 0.0) + float(
                    sum(raw) if isinstance(raw, list) else raw
                )
    return totals
