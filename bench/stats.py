"""Small statistics: median and nearest-rank percentiles of a sample."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Summary:
    n: int
    median: float
    p95: float
    mean: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {
            "n": self.n,
            "median": round(self.median, 3),
            "p95": round(self.p95, 3),
            "mean": round(self.mean, 3),
            "min": round(self.low, 3),
            "max": round(self.high, 3),
        }


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``pct`` % of the sample at or below it."""
    if not values:
        raise ValueError("percentile of an empty sample")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(values: list[float]) -> Summary:
    return Summary(
        n=len(values),
        median=statistics.median(values),
        p95=percentile(values, 95),
        mean=statistics.fmean(values),
        low=min(values),
        high=max(values),
    )
