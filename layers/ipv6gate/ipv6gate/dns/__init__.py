"""The one DNS layer: every query the project makes goes through a ``DnsSession``.

Backends answer questions (the network through dnspython, or zone files for offline use);
the session adds what a decision needs on top: a shared deadline, a query cap, name validation,
and one error vocabulary (``DnsTempError`` for anything that may succeed later).
"""

from ipv6gate.dns.model import Answer, Backend, DnsNameError, DnsTempError, Status
from ipv6gate.dns.session import Deadline, DnsResolver, DnsSession

__all__ = [
    "Answer",
    "Backend",
    "Deadline",
    "DnsNameError",
    "DnsResolver",
    "DnsSession",
    "DnsTempError",
    "Status",
]
