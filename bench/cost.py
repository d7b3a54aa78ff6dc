"""Estimated cost per million decisions, from measured durations. Simple on purpose; assumptions stated.

- Lambda arm64, billed duration = the decision's median latency rounded up to the next 1 ms, at the
  function's ``MemorySize`` from ``template.yaml``; plus the per-request charge.
- DynamoDB on-demand reads for the tenant lookup: the gate reads tenants only for IPv6 clients, one
  eventually consistent ``BatchGetItem`` of one item (< 4 KB) per message = 0.5 read request unit.
- Not included: cold starts (init duration is billed too), the handler's logging/metrics and its
  trace write (DynamoDB writes), S3 GETs of messages for DKIM, SQS, CloudWatch Logs ingestion, data
  transfer, free tiers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# us-east-1 list prices. Lambda: the figures (arm64, first pricing tier). DynamoDB on-demand
# reads: the issue quoted $0.25 per million RRU, the price before AWS halved on-demand throughput
# prices on 2024-11-01; the current $0.125 is used (override with --rru-price).
PRICES_AS_OF = "AWS us-east-1 list prices as of 2025: Lambda arm64 first tier, DynamoDB on-demand since 2024-11-01"
LAMBDA_ARM64_GB_SECOND = 0.0000133334
LAMBDA_PER_MILLION_REQUESTS = 0.20
DYNAMODB_PER_MILLION_RRU = 0.125
RRU_PER_IPV6_DECISION = 0.5


@dataclass(frozen=True, slots=True)
class Prices:
    gb_second: float = LAMBDA_ARM64_GB_SECOND
    per_million_requests: float = LAMBDA_PER_MILLION_REQUESTS
    per_million_rru: float = DYNAMODB_PER_MILLION_RRU

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": PRICES_AS_OF,
            "lambda_arm64_usd_per_gb_second": self.gb_second,
            "lambda_usd_per_million_requests": self.per_million_requests,
            "dynamodb_on_demand_usd_per_million_rru": self.per_million_rru,
        }


def per_million(duration_ms: float, memory_mb: int, *, ipv6: bool, prices: Prices) -> dict[str, float]:
    billed_ms = max(1, math.ceil(duration_ms))
    compute = 1e6 * billed_ms / 1000 * memory_mb / 1024 * prices.gb_second
    reads = prices.per_million_rru * RRU_PER_IPV6_DECISION if ipv6 else 0.0
    return {
        "billed_ms": billed_ms,
        "lambda_compute_usd": round(compute, 4),
        "lambda_requests_usd": prices.per_million_requests,
        "dynamodb_reads_usd": round(reads, 4),
        "total_usd": round(compute + prices.per_million_requests + reads, 4),
    }
