"""Lost messages, counted live from each device's ``seq`` as its readings are stored.

A device numbers its messages (contract v1 ``seq``); a number that never reaches the store is
a message lost on the way: a broker that dropped queued messages at its limits, a device that
lost its buffer, a message dead-lettered. The rule, per device, against the highest ``seq``
stored so far (``high``, with the ``ts`` of that reading):

- ``seq > high``: the numbers in between are counted missing at once (``gaps``), so an ingest
  outage during which the broker dropped messages shows as soon as the device's next message
  arrives; ``high`` moves on.
- ``seq < high`` with a newer ``ts``: the device restarted its counter (reboot, rejoin,
  firmware update). A ``reset``: the new ``seq`` is the baseline; losses across a reboot are
  not counted (nothing says where the new counter started).
- ``seq`` one of those counted missing (and older): a late arrival (a device's buffered
  batch, a redelivery overtaken by newer messages); taken off the missing count (``late``).
- ``seq == high``, or lower and not missing, with a ``ts`` no newer than ``high``'s: a
  duplicate, nothing to count. ``seq > high`` with an older ``ts`` is a message of the counter
  before a restart, arriving late: nothing to count either (a device's clock is trusted to
  move forward; a clock set back undercounts until it catches up, never overcounts).

A device first seen by this process takes its baseline from the newest stored reading
(``latest_readings``), so what the broker dropped while ingest was down is counted too. A device
with no stored reading starts its baseline at its first ``seq``. Each device remembers at most
``MAX_OPEN_RANGES`` ranges of missing numbers (the oldest are forgotten, still counted
missing), so memory stays bounded whatever the loss.

Only a worker that sees every message of a device can count this way: with several workers
on a shared subscription each sees a share, so there the counter is off and
``civic readings gaps`` (from the store) is the measure.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from firmware_contracts import Reading

MAX_OPEN_RANGES = 32


@dataclass
class _DeviceSeq:
    high: int
    high_ts: datetime
    missing: list[tuple[int, int]] = field(default_factory=list)  # inclusive ranges, oldest first

    def take_late(self, seq: int) -> bool:
        """Remove ``seq`` from the missing ranges; whether it was there."""
        for i, (lo, hi) in enumerate(self.missing):
            if lo <= seq <= hi:
                parts = [(a, b) for a, b in ((lo, seq - 1), (seq + 1, hi)) if a <= b]
                self.missing[i : i + 1] = parts
                return True
        return False


@dataclass(frozen=True, slots=True)
class SeqCounts:
    gaps: int  # numbers counted missing when a higher seq arrived
    late: int  # of those, arrived after all
    resets: int  # counters restarted (reboots)

    @property
    def missing(self) -> int:
        return self.gaps - self.late


class SeqGapTracker:
    """Per-device ``seq`` bookkeeping for one ingest worker (thread-safe counters)."""

    def __init__(self) -> None:
        self._devices: dict[str, _DeviceSeq] = {}
        self._lock = threading.Lock()
        self.gaps = 0
        self.late = 0
        self.resets = 0

    def unseen(self, readings: Iterable[Reading]) -> set[str]:
        """Devices in ``readings`` with a ``seq`` this tracker has no baseline for."""
        return {
            r.device_id for r in readings if r.seq is not None and r.device_id not in self._devices
        }

    def seed(self, baselines: dict[str, tuple[int, datetime]]) -> None:
        """Baselines (seq, ts) from the store for devices not yet seen."""
        for device_id, (seq, ts) in baselines.items():
            self._devices.setdefault(device_id, _DeviceSeq(seq, ts))

    def observe(self, readings: Iterable[Reading]) -> SeqCounts:
        """Count the readings just stored, in arrival order; this call's counts."""
        gaps = late = resets = 0
        for r in readings:
            if r.seq is None:
                continue
            state = self._devices.get(r.device_id)
            if state is None:
                self._devices[r.device_id] = _DeviceSeq(r.seq, r.ts)
            elif r.seq > state.high and r.ts < state.high_ts:
                continue  # from before a counter restart, arriving late: not this counter's
            elif r.seq > state.high:
                if r.seq > state.high + 1:
                    gaps += r.seq - state.high - 1
                    state.missing.append((state.high + 1, r.seq - 1))
                    del state.missing[:-MAX_OPEN_RANGES]
                state.high, state.high_ts = r.seq, r.ts
            elif r.seq < state.high and r.ts > state.high_ts:
                resets += 1
                self._devices[r.device_id] = _DeviceSeq(r.seq, r.ts)
            elif state.take_late(r.seq):
                late += 1
        with self._lock:
            self.gaps += gaps
            self.late += late
            self.resets += resets
        return SeqCounts(gaps, late, resets)

    def counts(self) -> SeqCounts:
        with self._lock:
            return SeqCounts(self.gaps, self.late, self.resets)


def stored_baselines(
    conn: psycopg.Connection[Any], device_ids: Iterable[str]
) -> dict[str, tuple[int, datetime]]:
    """Each device's newest stored (seq, ts), from ``latest_readings``."""
    ids = sorted(device_ids)
    if not ids:
        return {}
    rows = conn.execute(
        "SELECT device_id, seq, ts FROM latest_readings"
        " WHERE device_id = ANY(%s) AND seq IS NOT NULL",
        (ids,),
    ).fetchall()
    conn.commit()
    return {row["device_id"]: (int(row["seq"]), row["ts"]) for row in rows}
