"""One result shape for every check, in RFC 8601 vocabulary."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Result(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"
    SKIPPED = "skipped"  # not an RFC 8601 value: the check was not needed for the decision


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one method (iprev, spf, dkim) concluded, with a short human reason.

    ``properties`` holds RFC 8601 ptype.property values, e.g. ``{"smtp.mailfrom": "a@b"}``.
    """

    method: str
    result: Result
    reason: str
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.result is Result.PASS

    @property
    def temporary(self) -> bool:
        return self.result is Result.TEMPERROR

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"result": self.result.value, "reason": self.reason}
        if self.properties:
            out["properties"] = dict(self.properties)
        return out


def skipped(method: str, reason: str) -> CheckResult:
    return CheckResult(method, Result.SKIPPED, reason)
