from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from device_sim import generate_estate
from ingest import IngestConfig, IngestMetrics, IngestWorker
from store.db import connect
from store.registry import parse_device_row, upsert_devices


def register_estate(url: str, bins: int, homes: int, seed: int = 1) -> list[dict[str, str]]:
    estate = generate_estate(bins, homes, seed=seed)
    with connect(url) as conn:
        upsert_devices(conn, [parse_device_row(row) for row in estate])
    return estate


def count(url: str, sql: str) -> int:
    with connect(url) as conn:
        return int(next(iter(conn.execute(sql).fetchone().values())))


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.2)


T = TypeVar("T")


class Background(threading.Thread, Generic[T]):
    """Runs a callable in a thread and re-raises its exception on join."""

    def __init__(self, target: Callable[[], T]) -> None:
        super().__init__(daemon=True)
        self._target_fn = target
        self.result: T | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._target_fn()
        except BaseException as exc:
            self.error = exc

    def join_checked(self, timeout: float) -> T:
        self.join(timeout)
        if self.is_alive():
            raise AssertionError("background task did not finish")
        if self.error:
            raise self.error
        return self.result  # type: ignore[return-value]


def start_worker(
    database_url: str, mqtt, **overrides
) -> tuple[IngestWorker, threading.Event, Background[None]]:
    """A real ingest worker in a thread, subscribed before it returns."""
    settings = {
        "client_id": f"ingest-{uuid.uuid4().hex[:8]}",
        "flush_interval_s": 0.05,
        "mqtt_auth": mqtt.auth("ingest"),
        **overrides,
    }
    config = IngestConfig(
        database_url=database_url,
        mqtt_host=mqtt.host,
        mqtt_port=mqtt.port,
        topic_prefix=mqtt.prefix,
        **settings,
    )
    worker = IngestWorker(config, IngestMetrics())
    stop = threading.Event()
    thread: Background[None] = Background(lambda: worker.run(stop))
    thread.start()
    assert worker.source.connected.wait(10), "ingest did not connect to the broker"
    return worker, stop, thread


def stored_keys(url: str) -> set[tuple[str, str]]:
    """Every stored reading as (device id, contract timestamp), as the simulator reports keys."""
    with connect(url) as conn:
        rows = conn.execute("SELECT device_id, ts FROM readings").fetchall()
    return {
        (r["device_id"], r["ts"].isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        for r in rows
    }


def assert_stored_exactly(
    url: str, expected: set[tuple[str, str]], timeout_s: float, log: Path
) -> None:
    """Every acknowledged reading in ``expected`` is stored, and nothing else."""
    # On a timeout the comparison below says what is missing.
    with contextlib.suppress(AssertionError):
        wait_for(
            lambda: count(url, "SELECT count(*) FROM readings") >= len(expected),
            timeout_s,
            f"all {len(expected)} readings to be stored",
        )
    time.sleep(1)  # anything extra would show up now
    stored = stored_keys(url)
    missing = sorted(expected - stored, key=lambda k: k[1])
    assert not missing, (len(missing), missing[:3], missing[-3:], log.read_text()[-3000:])
    assert stored == expected


def worker_stats(path: Path) -> dict[int, dict[str, Any]]:
    """The last stats line each ingest worker printed."""
    last: dict[int, dict[str, Any]] = {}
    decoder = json.JSONDecoder()
    for line in path.read_text().splitlines():
        # Worker processes share one stdout: two lines written at once can land on one line.
        at = 0
        while at < len(line):
            item, at = decoder.raw_decode(line, at)
            last[item["worker"]] = {"final": False, **item}
            while at < len(line) and line[at].isspace():
                at += 1
    return last
