"""Which device ids are registered, cached so ingest checks each message without a query."""

from __future__ import annotations

import time
from collections.abc import Callable

REFRESH_INTERVAL_S = 5.0  # a device registered just now is accepted within this many seconds


class RegistryCache:
    def __init__(self, load: Callable[[], set[str]], refresh_s: float = REFRESH_INTERVAL_S) -> None:
        self._load = load
        self._refresh_s = refresh_s
        self._known: set[str] = set()
        self._loaded_at = -float("inf")

    def knows(self, device_id: str) -> bool:
        if device_id in self._known:
            return True
        if time.monotonic() - self._loaded_at >= self._refresh_s:
            self._known = self._load()
            self._loaded_at = time.monotonic()
        return device_id in self._known
