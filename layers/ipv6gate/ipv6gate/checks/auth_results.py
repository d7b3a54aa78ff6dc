"""The ``Authentication-Results`` header (RFC 8601) for an SMTP-time decision, built with authres.

Only results that were evaluated are stated (a check skipped because the verdict was already
certain says nothing); only properties RFC 8601 and its registry define are written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import authres

from ipv6gate.checks.results import CheckResult, Result

HEADER = "Authentication-Results"
_REGISTERED = frozenset(
    {"smtp.mailfrom", "smtp.helo", "policy.iprev", "header.d", "header.i", "header.s", "header.a", "header.b"}
)
_COMMENT = re.compile(r"\([^()]*\)")


def header_value(authserv_id: str, results: Iterable[CheckResult]) -> str:
    clauses = []
    for check in results:
        if check.result is Result.SKIPPED:
            continue
        props = [
            authres.AuthenticationResultProperty(*key.split(".", 1), value)
            for key, value in check.properties.items()
            if key in _REGISTERED and value
        ]
        reason = check.reason[:120] if check.reason else None
        clauses.append(
            authres.AuthenticationResult(check.method, result=check.result.value, reason=reason, properties=props)
        )
    return str(authres.AuthenticationResultsHeader(authserv_id=authserv_id, results=clauses).header_value())


def claims_to_be(value: str, authserv_id: str) -> bool:
    """Whether a received header names ``authserv_id`` (RFC 8601 §5: such a header is removed first).

    Read leniently on purpose (comments and white space skipped, no full parse): a forged header that
    is also malformed must still go.
    """
    text = value
    while (stripped := _COMMENT.sub(" ", text)) != text:  # nested comments, innermost first
        text = stripped
    first = text.split(";", 1)[0].split()
    if not first:
        return False
    token = first[0]
    if token.startswith('"'):  # RFC 8601: the authserv-id may be a quoted-string
        token = token.strip('"').replace('\\"', '"')
    return token.lower() == authserv_id.lower()
