"""Real Powertools Logger and Metrics in unit tests: a logger of its own, its JSON lines, EMF counts."""

from __future__ import annotations

import io
import json
import uuid
from typing import IO, Any

from aws_lambda_powertools import Logger, Metrics


def fresh_logger(stream: IO[str], **options: Any) -> Logger:
    """A Logger with a service name of its own: Powertools loggers are process-wide per service name."""
    return Logger(service=f"ipv6gate-{uuid.uuid4().hex}", stream=stream, **options)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """The JSON log lines written to ``stream``."""
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def emf(metrics: Metrics) -> dict[str, float]:
    """Metric name -> value of the metrics recorded so far."""
    blob = metrics.serialize_metric_set()
    names = [m["Name"] for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    # EMF keeps one value per add_metric call; CloudWatch sums them.
    return {name: sum(blob[name]) if isinstance(blob[name], list) else blob[name] for name in names}
