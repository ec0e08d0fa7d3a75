"""A response body kept for a moment, per caller scope: for lists many screens poll that change
only when a batch of readings lands (the estate's latest), so a hundred officers polling the
same patch cost one query a second, not a hundred."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["BriefCache"]

Body = TypeVar("Body", str, bytes)


class BriefCache(Generic[Body]):
    """Bodies by key, each reused for ``ttl_s`` after it was made. Callers check who may read
    what before asking: the key must carry everything that decides the body (scope, filters)."""

    def __init__(self, ttl_s: float, max_entries: int = 256) -> None:
        self._ttl_s = ttl_s
        self._max = max_entries
        self._lock = threading.Lock()
        self._bodies: dict[Hashable, tuple[float, Body]] = {}

    def fresh(self, key: Hashable) -> Body | None:
        """The body kept for ``key`` if it is still fresh: asked on the event loop first, so a
        hit needs no worker thread."""
        with self._lock:
            kept = self._bodies.get(key)
        if kept is not None and time.monotonic() - kept[0] < self._ttl_s:
            return kept[1]
        return None

    def get(self, key: Hashable, make: Callable[[], Body]) -> Body:
        now = time.monotonic()
        kept = self.fresh(key)
        if kept is not None:
            return kept
        body = make()
        with self._lock:
            if len(self._bodies) >= self._max:
                self._bodies.clear()  # scopes are few; a full table means churn, start again
            self._bodies[key] = (now, body)
        return body
