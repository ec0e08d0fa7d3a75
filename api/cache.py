"""A response body kept for a moment, per caller scope: for lists many screens poll that change
only when a batch of readings lands (the estate's latest), so a hundred officers polling the
same patch cost one query a second, not a hundred."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

__all__ = ["BriefCache"]


class BriefCache:
    """Bodies by key, each reused for ``ttl_s`` after it was made. Callers check who may read
    what before asking: the key must carry everything that decides the body (scope, filters)."""

    def __init__(self, ttl_s: float, max_entries: int = 256) -> None:
        self._ttl_s = ttl_s
        self._max = max_entries
        self._lock = threading.Lock()
        self._bodies: dict[Hashable, tuple[float, str]] = {}

    def get(self, key: Hashable, make: Callable[[], str]) -> str:
        now = time.monotonic()
        with self._lock:
            kept = self._bodies.get(key)
        if kept is not None and now - kept[0] < self._ttl_s:
            return kept[1]
        body = make()
        with self._lock:
            if len(self._bodies) >= self._max:
                self._bodies.clear()  # scopes are few; a full table means churn, start again
            self._bodies[key] = (now, body)
        return body
