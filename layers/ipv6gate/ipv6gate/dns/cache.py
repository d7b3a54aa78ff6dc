"""The warm container's answer cache: least recently used out first, each answer kept for its TTL.

dnspython's ``LRUCache`` holds its own ``Answer`` objects keyed on ``Name`` (whose hash lowercases
every label on every call: 34 labels for an IPv6 PTR name); this one holds the layer's ``Answer``
keyed on the question's wire form.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from ipv6gate.dns.model import Answer


class AnswerCache:
    """Up to ``size`` answers; safe to share between the checks' threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[bytes, tuple[float, Answer]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Answer | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: bytes, answer: Answer, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (time.monotonic() + ttl, answer)
            self._entries.move_to_end(key)
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
