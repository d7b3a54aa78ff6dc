"""The small interfaces the core needs from the outside world; adapters implement them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from ipv6gate.decision.tenants import Tenant

if TYPE_CHECKING:  # the ports only name these types (in annotations); no import at run time
    from ipv6gate.bounce.request import BounceRequest
    from ipv6gate.evaluation.record import Decision


class TenantLookupError(Exception):
    """The tenant store could not be read (unreachable, throttled, denied), or held unusable items.

    ``domains`` is ``None`` when nothing could be read; otherwise only those domains' items were
    unusable, and ``found`` holds the tenants read for the other domains asked for.
    """

    def __init__(
        self, message: str, *, domains: tuple[str, ...] | None = None, found: Mapping[str, Tenant] | None = None
    ) -> None:
        super().__init__(message)
        self.domains = domains
        self.found: Mapping[str, Tenant] = found or {}


class MessageStoreError(Exception):
    """The raw message could not be read; ``missing`` when it is simply not there, ``too_large`` when
    it is over the configured limit (which no retry will change)."""

    def __init__(self, message: str, *, missing: bool = False, too_large: bool = False) -> None:
        super().__init__(message)
        self.missing = missing
        self.too_large = too_large


class TenantDirectory(Protocol):
    def get_many(self, domains: Iterable[str]) -> dict[str, Tenant]:
        """Tenants for the domains that have a record; absent domains are simply left out."""
        ...


def answers_at_hand(directory: TenantDirectory, domains: Iterable[str]) -> bool:
    """Whether ``directory.get_many(domains)`` answers from memory, without asking a remote store.

    A directory over a remote store says so with an ``at_hand(domains)`` method (the DynamoDB table: never;
    its cache: when every domain is cached); one without it (in memory, a file) always answers at once.
    The SES door then sends its first DNS queries before the tenant lookup, not after it.
    """
    at_hand = getattr(directory, "at_hand", None)
    return True if at_hand is None else bool(at_hand(domains))


class MessageStore(Protocol):
    def open(self, message_id: str, max_bytes: int) -> BinaryIO:
        """The raw message as SES stored it, as a readable binary stream (only ``read(n)`` and ``close()``
        are promised).

        ``MessageStoreError`` when it cannot be opened or is over ``max_bytes``; errors while reading
        come from ``read``. The caller closes the stream.
        """
        ...


class BounceQueueError(Exception):
    """A bounce request could not be queued."""


class TraceError(Exception):
    """A decision could not be recorded, or the trace could not be read."""


class BounceQueue(Protocol):
    def enqueue(self, request: BounceRequest) -> None: ...


class TraceStore(Protocol):
    def record(self, decision: Decision, decided_at: datetime) -> None: ...


class TraceWindow(Protocol):
    def domain_window(
        self, domain: str, since: datetime, until: datetime, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Index summaries of ``domain``'s decisions in [since, until], newest first, at most ``limit``
        read; the flag is False when the limit stopped the read before the window's end. ``TraceError``."""
        ...

    def domains_decided(self, since: datetime, until: datetime, limit: int) -> tuple[dict[str, set[str]], bool]:
        """Every recipient domain decided for on the UTC days of [since, until], tenant or not, with
        those days (``YYYY-MM-DD``); at most ``limit`` entries read, the flag as above. ``TraceError``."""
        ...
