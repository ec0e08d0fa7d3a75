"""A response body kept for a moment, per caller scope: for lists many screens poll that change
only when a batch of readings lands (the estate's latest), so a hundred officers polling the
same patch cost one query a second, not a hundred.

A body past its period is still served while one caller remakes it (:meth:`BriefCache.stale`,
:meth:`BriefCache.claim`, :meth:`BriefCache.put`: "stale while revalidate"): the estate's
latest takes a tenth of a second to make, and every request arriving in that tenth would
otherwise wait for it, or make it again."""

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
        self._remaking: set[Hashable] = set()

    def fresh(self, key: Hashable) -> Body | None:
        """The body kept for ``key`` if it is still fresh: asked on the event loop first, so a
        hit needs no worker thread."""
        with self._lock:
            kept = self._bodies.get(key)
        if kept is not None and time.monotonic() - kept[0] < self._ttl_s:
            return kept[1]
        return None

    def stale(self, key: Hashable) -> Body | None:
        """The body kept for ``key`` however old (None when nothing is kept or keeping is off)."""
        if self._ttl_s <= 0:
            return None
        with self._lock:
            kept = self._bodies.get(key)
        return None if kept is None else kept[1]

    def claim(self, key: Hashable) -> bool:
        """Whether the caller is the one to remake ``key``'s body (then it must :meth:`put` or
        :meth:`release`): one at a time, the others serve the stale body meanwhile."""
        with self._lock:
            if key in self._remaking:
                return False
            self._remaking.add(key)
            return True

    def release(self, key: Hashable) -> None:
        with self._lock:
            self._remaking.discard(key)

    def put(self, key: Hashable, body: Body, *, made_at: float | None = None) -> None:
        """Keep ``body`` for ``key`` from ``made_at`` (now) on, and end a claim on it."""
        with self._lock:
            if len(self._bodies) >= self._max:
                self._bodies.clear()  # scopes are few; a full table means churn, start again
            self._bodies[key] = (time.monotonic() if made_at is None else made_at, body)
            self._remaking.discard(key)

    def get(self, key: Hashable, make: Callable[[], Body]) -> Body:
        now = time.monotonic()
        kept = self.fresh(key)
        if kept is not None:
            return kept
        body = make()
        self.put(key, body, made_at=now)
        return body
