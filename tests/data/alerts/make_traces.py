"""Generate the labelled alert scenario traces in this directory (fixed seed, run once).

    .venv/bin/python tests/data/alerts/make_traces.py

Each scenario writes NAME.csv (items in time order) and NAME.labels.json (subject, expected
conditions, when each truly starts and the longest acceptable delay). True starts come from
the designed event (a leak starts, a bin catches fire) or, for the threshold rules, from the
clean signal before noise is added, checked by brute force here, independently of the rule
code: so a rule that mishandles noise, gaps or irregular timing shows up as late or missed.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

SEED = 20251103
START = datetime(2025, 11, 3, tzinfo=UTC)  # a Monday in early winter
OUT = Path(__file__).resolve().parent
COLUMNS = (
    "kind",
    "ts",
    "fill_pct",
    "temp_c",
    "rh_pct",
    "battery_v",
    "co2_ppm",
    "tilt_deg",
    "seq",
    "target_ts",
    "value",
    "window_hours",
    "peer_count",
    "crew",
)
RNG = np.random.default_rng(SEED)


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def grid(days: float, minutes: float) -> list[datetime]:
    count = int(days * 24 * 60 / minutes)
    return [START + timedelta(minutes=minutes * i) for i in range(count)]


def hours_since_start(times: Sequence[datetime]) -> np.ndarray:
    return np.array([(t - START).total_seconds() / 3600 for t in times])


def rh_from_dew_point(temp_c: np.ndarray, dew_c: float) -> np.ndarray:
    a, b = 17.625, 243.04
    return 100 * np.exp(a * dew_c / (b + dew_c) - a * temp_c / (b + temp_c))


def saturation(temp_c: float) -> float:
    return 6.1094 * math.exp(17.625 * temp_c / (243.04 + temp_c))


def dew_point(temp_c: np.ndarray, rh_pct: np.ndarray) -> np.ndarray:
    a, b = 17.625, 243.04
    gamma = np.log(rh_pct / 100) + a * temp_c / (b + temp_c)
    return b * gamma / (a - gamma)


# -- brute-force truths on the clean, regular signal -------------------------------------------


def first_time_above(times, values, limit, window_h, allowed_h, step_h) -> datetime | None:
    """First time the clean signal spent more than ``allowed_h`` above ``limit`` in a window."""
    per_window = round(window_h / step_h)
    above = (np.asarray(values) > limit).astype(float)
    for i in range(len(times)):
        lo = max(0, i - per_window + 1)
        # Samples after the first in the window each stand for one step before them.
        if above[lo + 1 : i + 1].sum() * step_h > allowed_h if i > lo else False:
            return times[i]
    return None


def first_mean(times, values, window_h, predicate, step_h, min_coverage=0.75) -> datetime | None:
    per_window = round(window_h / step_h)
    values = np.asarray(values)
    for i in range(1, len(times)):
        lo = max(1, i - per_window + 1)
        part = values[lo : i + 1]
        if len(part) * step_h >= min_coverage * window_h and predicate(part.mean()):
            return times[i]
    return None


def first_run(times, condition, duration_h) -> datetime | None:
    """Start of the first run where ``condition`` held for at least ``duration_h``."""
    start = None
    for t, ok in zip(times, condition, strict=True):
        if ok:
            start = start or t
            if (t - start).total_seconds() / 3600 >= duration_h:
                return start
        else:
            start = None
    return None


def first(times, condition) -> datetime | None:
    return next((t for t, ok in zip(times, condition, strict=True) if ok), None)


def vtt_first_index(times, temps, rhs, threshold=1.0, offset_c=3.0) -> datetime | None:
    """The published VTT model (sensitive class, pine, resawn) stepped on the clean signal,
    at a surface ``offset_c`` colder than the air (same vapour pressure, capped at 100 %)."""
    m, dry = 0.0, 0.0
    for i in range(1, len(times)):
        hours = (times[i] - times[i - 1]).total_seconds() / 3600
        t = temps[i] - offset_c
        rh = min(100.0, rhs[i] * saturation(temps[i]) / saturation(t))
        rh_crit = max(-0.00267 * t**3 + 0.16 * t**2 - 3.13 * t + 100, 80.0) if t > 0 else 100
        if 0 < t < 50 and rh >= rh_crit:
            x = (rh_crit - rh) / (rh_crit - 100)
            m_max = max(0.3 + 6 * x - x * x, 0.0)
            k1 = 0.578 if m < 1 else 0.386
            k2 = max(1 - math.exp(2.3 * (m - m_max)), 0.0)
            rate = k1 * k2 / (7 * math.exp(-0.68 * math.log(t) - 13.9 * math.log(rh) + 66.02))
            m += rate * hours / 24
            dry = 0.0
        else:
            fast = max(0.0, min(dry + hours, 6) - dry)
            slow = max(0.0, dry + hours - max(dry, 24))
            m = max(m + (fast * -0.032 + slow * -0.016) / 24, 0.0)
            dry += hours
        if m >= threshold:
            return times[i]
    return None


# -- writing --------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    description: str
    subject: dict[str, Any]
    device_id: str
    interval_minutes: float
    rows: list[dict[str, Any]]
    expected: list[dict[str, Any]]
    until: datetime

    def write(self) -> None:
        self.rows.sort(key=lambda row: (row["ts"], row["kind"] != "reading"))
        with (OUT / f"{self.name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            for row in self.rows:
                out = {key: row.get(key, "") for key in COLUMNS}
                out["ts"] = iso(row["ts"])
                if isinstance(out["target_ts"], datetime):
                    out["target_ts"] = iso(out["target_ts"])
                for key in ("fill_pct", "temp_c", "rh_pct", "battery_v", "co2_ppm", "tilt_deg"):
                    if isinstance(out[key], float):
                        out[key] = f"{out[key]:.2f}" if key != "battery_v" else f"{out[key]:.3f}"
                writer.writerow(out)
        labels = {
            "name": self.name,
            "description": self.description,
            "subject": self.subject,
            "device_id": self.device_id,
            "expected_interval_minutes": self.interval_minutes,
            "until": iso(self.until),
            "seed": SEED,
            "expected": self.expected,
        }
        (OUT / f"{self.name}.labels.json").write_text(
            json.dumps(labels, indent=2) + "\n", encoding="utf-8"
        )


def expect(condition: str, start: datetime | None, max_delay_h: float, truth: str) -> dict:
    if start is None:
        raise ValueError(f"{condition}: the clean signal never meets the criterion")
    return {
        "condition": condition,
        "true_start": iso(start),
        "max_delay_hours": max_delay_h,
        "truth": truth,
    }


def reading_rows(times, seq_start=0, drop: Callable[[int], bool] | None = None, **series):
    rows = []
    seq = seq_start
    for i, ts in enumerate(times):
        seq += 1
        if drop is not None and drop(i):
            continue
        row: dict[str, Any] = {"kind": "reading", "ts": ts, "seq": seq}
        for key, values in series.items():
            value = values[i]
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                row[key] = float(value)
        rows.append(row)
    return rows


def smooth_night(hours: np.ndarray, start_h=0.0, end_h=7.0) -> np.ndarray:
    """0..1 bump over the night (occupants asleep, door shut)."""
    hod = hours % 24
    inside = (hod >= start_h) & (hod < end_h)
    phase = np.clip((hod - start_h) / (end_h - start_h), 0, 1)
    return np.where(inside, np.sin(np.pi * phase), 0.0)


def noise(n: int, scale: float) -> np.ndarray:
    return RNG.normal(0.0, scale, n)


def battery(n: int, volts: float = 3.6) -> np.ndarray:
    return volts + noise(n, 0.005)


# -- scenarios ------------------------------------------------------------------------------


def bathroom_showers() -> Scenario:
    step_min = 10
    times = grid(14, step_min)
    h = hours_since_start(times)
    temp = 20.5 + 0.5 * np.sin(2 * np.pi * (h % 24 - 9) / 24)
    rh = 55 + 3 * np.sin(2 * np.pi * (h % 24 - 3) / 24)
    for day in range(14):
        for base_h in (7.25, 19.5):
            start = day * 24 + base_h + RNG.uniform(-0.33, 0.33)
            length = RNG.uniform(0.17, 0.3)
            since = h - start
            during = (since >= 0) & (since < length)
            after = since >= length
            peak = RNG.uniform(92, 96)
            decay = np.exp(-np.clip(since - length, 0, None) / 0.42)
            rh = np.where(
                during, peak, np.where(after, np.maximum(rh, rh + (peak - rh) * decay), rh)
            )
            temp = temp + np.where(during, 1.5, np.where(after, 1.5 * decay, 0))
    rows = reading_rows(
        times,
        drop=lambda i: RNG.random() < 0.01,
        temp_c=temp + noise(len(h), 0.15),
        rh_pct=np.clip(rh + noise(len(h), 1.0), 1, 100),
        battery_v=battery(len(h)),
    )
    return Scenario(
        "bathroom_showers",
        "Occupied home, bathroom sensor: two showers a day push RH to 92-96 % for 10-20 min, "
        "then it decays in about half an hour. Normal use: nothing may alert.",
        {"kind": "home", "uprn": "100000000001", "void": False, "patch": "north"},
        "env-bath-01",
        step_min,
        rows,
        [],
        times[-1] + timedelta(minutes=step_min),
    )


def damp_bedroom() -> Scenario:
    step_min = 10
    step_h = step_min / 60
    times = grid(45, step_min)
    h = hours_since_start(times)
    off_h = 7 * 24  # heating switched off to save money
    cold = np.where(h < off_h, 0.0, 1 - np.exp(-(h - off_h) / 4))
    temp = 19.5 - 4.0 * cold + 0.4 * np.sin(2 * np.pi * (h % 24 - 15) / 24)
    ramp = np.clip((h - off_h) / (7 * 24), 0, 1)
    night = smooth_night(h)
    rh = 55 + 27 * ramp + 6 * night
    rh = np.minimum(rh, 97)
    co2 = 550 + (700 + 1000 * ramp) * night
    temp_noisy = temp + noise(len(h), 0.2)
    rh_noisy = np.clip(rh + noise(len(h), 1.2), 1, 100)
    co2_noisy = co2 + noise(len(h), 40)
    rows = reading_rows(
        times,
        drop=lambda i: RNG.random() < 0.01,
        temp_c=temp_noisy,
        rh_pct=rh_noisy,
        co2_ppm=co2_noisy,
        battery_v=battery(len(h)),
    )
    margin = (temp - 3.0) - dew_point(temp, rh)
    expected = [
        expect(
            "cold_home",
            START + timedelta(days=11),
            1,
            "heating off and the room below 18 C for three whole days (days 8-10): a watch",
        ),
        expect(
            "damp_adf2006",
            first_time_above(times, rh, 70, 12, 2, step_h),
            3,
            "clean RH first above 70 % for more than 2 h in 12 h",
        ),
        expect(
            "damp_adf2010",
            first_mean(times, rh, 24 * 7, lambda m: m > 75, step_h)
            if first_mean(times, rh, 24, lambda m: m > 85, step_h) is None
            else min(
                first_mean(times, rh, 24 * 7, lambda m: m > 75, step_h),
                first_mean(times, rh, 24, lambda m: m > 85, step_h),
            ),
            6,
            "clean daily mean first above 85 % or weekly mean above 75 %",
        ),
        expect(
            "condensation_risk",
            first_run(times, margin <= 1.0, 2.0),
            4,
            "clean margin (air - 3 C - dew point) first at or below 1 C for 2 h: run start",
        ),
        expect(
            "mould_index",
            vtt_first_index(times, temp, rh),
            24,
            "VTT index of the clean signal (independent loop) first reaches 1; it moves about "
            "0.06 a day here, so a day's delay is a 6 % difference in the index",
        ),
        expect(
            "poor_ventilation",
            first_mean(times, co2, 1, lambda m: m >= 1500, step_h, min_coverage=0.5),
            1,
            "clean hourly mean CO2 first at or above 1500 ppm (bedroom door shut at night)",
        ),
    ]
    return Scenario(
        "damp_bedroom",
        "Occupied home, bedroom: heating switched off on day 7, the room cools to about "
        "15.5 C and RH climbs over a week to 82 % with night peaks near 88 %; CO2 builds up at "
        "night. Must alert for cold (a watch: no heating seen), damp (ADF 2006 and 2010), "
        "condensation, mould and CO2.",
        {"kind": "home", "uprn": "100000000002", "void": False, "patch": "north"},
        "env-bed-02",
        step_min,
        rows,
        expected,
        times[-1] + timedelta(minutes=step_min),
    )


def void_cold_snap() -> Scenario:
    step_min = 30
    step_h = step_min / 60
    times = grid(21, step_min)
    h = hours_since_start(times)
    fail_h, snap_h, fixed_h = 6.5 * 24, 12 * 24, 17.5 * 24
    temp = np.full(len(h), 13.0)
    temp = np.where(h >= fail_h, 8 + 5 * np.exp(-(h - fail_h) / 24), temp)
    at_snap = 8 + 5 * math.exp(-(snap_h - fail_h) / 24)
    temp = np.where(h >= snap_h, 2 + (at_snap - 2) * np.exp(-(h - snap_h) / 18), temp)
    at_fix = 2 + (at_snap - 2) * math.exp(-(fixed_h - snap_h) / 18)
    temp = np.where(h >= fixed_h, 13 - (13 - at_fix) * np.exp(-(h - fixed_h) / 6), temp)
    temp = temp + 0.3 * np.sin(2 * np.pi * (h % 24 - 14) / 24)
    rh = rh_from_dew_point(temp, -4.0)
    rows = reading_rows(
        times,
        temp_c=temp + noise(len(h), 0.2),
        rh_pct=np.clip(rh + noise(len(h), 1.0), 1, 100),
        battery_v=battery(len(h)),
    )
    expected = [
        expect(
            "void_heating_off",
            first_mean(times, temp, 24, lambda m: m < 12, step_h),
            3,
            "clean 24 h mean first below 12 C (heating failed on day 6.5)",
        ),
        expect("void_frost", first(times, temp < 5), 2, "clean temperature first below 5 C"),
    ]
    return Scenario(
        "void_cold_snap",
        "Void home with background heating at 13 C; the boiler fails on day 6.5, a cold snap "
        "from day 12 takes the home below 5 C, the heating is fixed on day 17.5. Must alert "
        "heating-off and frost risk, never cold-home (nobody lives there).",
        {"kind": "home", "uprn": "100000000003", "void": True, "patch": "south"},
        "env-void-03",
        step_min,
        rows,
        expected,
        times[-1] + timedelta(minutes=step_min),
    )


def dead_battery() -> Scenario:
    step_min = 15
    times = grid(40, step_min)
    h = hours_since_start(times)
    cliff_h = 25 * 24
    volts = np.where(h < cliff_h, 3.62 - 0.17 * h / cliff_h, 3.45 - 0.06 * (h - cliff_h) / 24)
    death = first(times, volts < 3.04)
    lossy_from = first(times, volts < 3.25)
    assert death is not None
    assert lossy_from is not None
    dips = np.where(RNG.random(len(h)) < 0.02, -0.2, 0.0)
    keep = [t < death for t in times]

    def drop(i: int) -> bool:
        if not keep[i]:
            return True
        # Below 3.25 V the radio loses one uplink in four (never two in a row at block edges).
        return times[i] >= lossy_from and i % 4 == int(h[i] // 24) % 4

    rows = reading_rows(
        times,
        drop=drop,
        temp_c=20 + 0.5 * np.sin(2 * np.pi * h / 24) + noise(len(h), 0.15),
        rh_pct=50 + 3 * np.sin(2 * np.pi * h / 24) + noise(len(h), 1.0),
        battery_v=volts + dips + noise(len(h), 0.01),
    )
    last_seen = max(row["ts"] for row in rows)
    expected = [
        expect(
            "battery_low", first(times, volts <= 3.3), 3, "clean voltage first at or below 3.3 V"
        ),
        expect(
            "sequence_gaps",
            lossy_from,
            24,
            "radio starts losing one uplink in four below 3.25 V",
        ),
        expect("device_offline", last_seen, 1.5, "last uplink before the battery died"),
    ]
    return Scenario(
        "dead_battery",
        "Occupied home, living room: a lithium cell sags slowly, then falls off its cliff from "
        "day 25; single-reading dips during transmissions must not alert; the radio starts "
        "losing uplinks below 3.25 V and the device dies near 3.04 V.",
        {"kind": "home", "uprn": "100000000004", "void": False, "patch": "east"},
        "env-liv-04",
        step_min,
        rows,
        expected,
        last_seen + timedelta(days=2),
    )


def bin_fill(h: np.ndarray, collections_h: Sequence[float], rate_per_h: float, start_pct=5.0):
    """Fill level: grows by day (people pass the bin), slowly at night; emptied to 3 %."""
    fill = np.empty(len(h))
    level = start_pct
    pending = sorted(collections_h)
    previous = h[0]
    for i, hour in enumerate(h):
        while pending and pending[0] <= hour:
            pending.pop(0)
            level = 3.0
        daytime = 1.0 if 7 <= hour % 24 < 20 else 0.2
        level = min(level + rate_per_h * (hour - previous) * daytime, 100.0)
        previous = hour
        fill[i] = level
    return fill


def bin_fire() -> Scenario:
    step_min = 15
    times = grid(7, step_min)
    h = hours_since_start(times)
    fill = np.clip(np.where(h < 3 * 24 + 10, 8 + 0.7 * h, 3 + 0.35 * (h - 3 * 24 - 10)), 0, 100)
    temp = 12 + 4 * np.sin(2 * np.pi * (h % 24 - 9) / 24) + noise(len(h), 0.5)
    # Sun on a black lid: it warms over an hour and a half to the high 30s, not burning.
    sun = np.clip((h - (4 * 24 + 11)) / 1.5, 0, 1) * np.clip((4 * 24 + 16 - h) / 1.5, 0, 1)
    temp = temp + 24 * sun
    glitch = 2 * 24 * 4 + 37
    temp[glitch] = 85.0  # one corrupt reading
    fire_h = 5 * 24 + 14
    since = h - fire_h
    fire_temp = 14 + 110 * (1 - np.exp(-since / 0.6))
    temp = np.where(since >= 0, np.maximum(temp, fire_temp), temp)
    rows = reading_rows(
        times,
        fill_pct=np.clip(fill + noise(len(h), 1.5), 0, 100),
        temp_c=temp,
        tilt_deg=np.abs(noise(len(h), 2.0)),
        battery_v=battery(len(h)),
    )
    rows.append({"kind": "collection", "ts": START + timedelta(hours=3 * 24 + 10), "crew": "R2"})
    fire_start = START + timedelta(hours=fire_h)
    return Scenario(
        "bin_fire",
        "General-waste bin: a sunny afternoon heats the lid to about 35 C, one corrupt "
        "reading says 85 C, then on day 5 at 14:00 the contents catch fire.",
        {"kind": "bin", "device_id": "bin-fire-05", "threshold_pct": 80, "waste_stream": "general"},
        "bin-fire-05",
        step_min,
        rows,
        [expect("bin_fire", fire_start, 0.75, "designed: fire starts (temperature climbs)")],
        times[-1] + timedelta(minutes=step_min),
    )


def bin_stuck() -> Scenario:
    step_min = 60
    times = grid(10, step_min)
    h = hours_since_start(times)
    collect_h = 2 * 24 + 8
    fill = np.where(h < collect_h, 5 + 0.9 * h, 3 + 0.9 * (h - collect_h))
    fill = np.clip(fill + noise(len(h), 1.5), 0, 100)
    stuck_h = 3 * 24 + 12
    stuck_index = int(stuck_h)
    fill[stuck_index:] = round(float(fill[stuck_index]), 1)
    rows = reading_rows(
        times,
        fill_pct=fill,
        temp_c=10 + 3 * np.sin(2 * np.pi * h / 24) + noise(len(h), 0.4),
        tilt_deg=np.abs(noise(len(h), 2.0)),
        battery_v=battery(len(h)),
    )
    rows.append({"kind": "collection", "ts": START + timedelta(hours=collect_h), "crew": "R7"})
    for day in range(1, 10):
        rows.append(
            {
                "kind": "peer_change",
                "ts": START + timedelta(days=day, hours=6, minutes=30),
                "value": round(float(RNG.uniform(35, 60)), 1),
                "window_hours": 48,
                "peer_count": 12,
            }
        )
    return Scenario(
        "bin_stuck",
        "Recycling bin: fills and is emptied normally, then from day 3 12:00 the ultrasonic "
        "sensor repeats the same value while its 12 peers keep filling and emptying.",
        {
            "kind": "bin",
            "device_id": "bin-stuck-06",
            "threshold_pct": 80,
            "waste_stream": "recycling",
        },
        "bin-stuck-06",
        step_min,
        rows,
        [
            expect(
                "sensor_stuck",
                START + timedelta(hours=stuck_h),
                50,
                "designed: sensor freezes (rule needs 48 h flat by default)",
            )
        ],
        times[-1] + timedelta(minutes=step_min),
    )


def offline_during_hazard() -> Scenario:
    step_min = 15
    step_h = step_min / 60
    times = grid(7, step_min)
    h = hours_since_start(times)
    # Moisture builds up over half a day once the extractor stops.
    rh = 52 + 23 * np.clip((h - 36) / 12, 0, 1) + 2 * np.sin(2 * np.pi * h / 24)
    temp = 20 + 0.3 * np.sin(2 * np.pi * h / 24)
    gap_from, gap_to = 3 * 24, 5 * 24
    rows = reading_rows(
        times,
        drop=lambda i: gap_from <= h[i] < gap_to,
        temp_c=temp + noise(len(h), 0.15),
        rh_pct=rh + noise(len(h), 1.2),
        battery_v=battery(len(h)),
    )
    silent_from = max(
        row["ts"] for row in rows if (row["ts"] - START).total_seconds() < gap_from * 3600
    )
    return Scenario(
        "offline_during_hazard",
        "Occupied home, kitchen: the extractor fails on day 1.5 and RH sits near 75 %; the "
        "sensor then drops off the network for two days and comes back with RH still high. "
        "The damp condition must stay open throughout; offline must alert.",
        {"kind": "home", "uprn": "100000000007", "void": False, "patch": "west"},
        "env-kit-07",
        step_min,
        rows,
        [
            expect(
                "damp_adf2006",
                first_time_above(times, rh, 70, 12, 2, step_h),
                3,
                "clean RH first above 70 % for more than 2 h in 12 h",
            ),
            expect("device_offline", silent_from, 1.5, "designed: last uplink before the outage"),
        ],
        times[-1] + timedelta(minutes=step_min),
    )


def kitchen_leak() -> Scenario:
    step_min = 10
    step_h = step_min / 60
    times = grid(6, step_min)
    h = hours_since_start(times)
    temp = 20 + 0.4 * np.sin(2 * np.pi * (h % 24 - 15) / 24)
    rh = 50 + 2 * np.sin(2 * np.pi * h / 24)
    cooking = ((h % 24) >= 18) & ((h % 24) < 18.5)
    rh = rh + np.where(cooking, 10, 0)
    temp = temp + np.where(cooking, 1.2, 0)
    leak_h = 3 * 24 + 9
    rise = np.clip((h - leak_h) / 0.67, 0, 1)
    rh = rh + 29 * rise
    temp = np.where(h >= leak_h, temp[int(leak_h * 6)], temp)  # the room holds steady
    rows = reading_rows(
        times,
        temp_c=temp + noise(len(h), 0.1),
        rh_pct=np.clip(rh + noise(len(h), 1.0), 1, 100),
        battery_v=battery(len(h)),
    )
    margin = (temp - 3.0) - dew_point(temp, rh)
    return Scenario(
        "kitchen_leak",
        "Occupied home, kitchen: daily cooking lifts RH by 10 % for half an hour with the "
        "room warming; on day 3 at 09:00 a pipe under the sink starts leaking and RH climbs "
        "to about 80 % within 40 minutes at a steady temperature, and stays.",
        {"kind": "home", "uprn": "100000000008", "void": False, "patch": "west"},
        "env-kit-08",
        step_min,
        rows,
        [
            expect(
                "suspected_leak",
                START + timedelta(hours=leak_h),
                17,
                "designed: leak starts (the rule wants 16 h of it)",
            ),
            expect(
                "damp_adf2006",
                first_time_above(times, rh, 70, 12, 2, step_h),
                3,
                "clean RH first above 70 % for more than 2 h in 12 h",
            ),
            expect(
                "condensation_risk",
                first_run(times, margin <= 1.0, 2.0),
                4,
                "clean margin first at or below 1 C for 2 h: run start",
            ),
        ],
        times[-1] + timedelta(minutes=step_min),
    )


def bin_round() -> Scenario:
    step_min = 60
    times = grid(14, step_min)
    h = hours_since_start(times)
    collections = [5 * 24 + 9, 8 * 24 + 10, 11 * 24 + 10, 12 * 24 + 8]
    recorded = [5 * 24 + 9, 8 * 24 + 10, 12 * 24 + 8]  # day 11's emptying was never logged
    fill = bin_fill(h, collections, 1.15)
    noisy = np.clip(fill + noise(len(h), 1.5), 0, 100)
    outliers = RNG.choice(len(h), size=4, replace=False)
    for index in outliers:
        noisy[index] = 0.0 if index % 2 else 100.0  # ultrasonic echoes
    tilt = np.abs(noise(len(h), 2.0))
    knock_h = 7 * 24 + 3
    tilt = np.where((h >= knock_h) & (h < knock_h + 5), 88 + noise(len(h), 2.0), tilt)
    rows = reading_rows(
        times,
        fill_pct=noisy,
        temp_c=9 + 3 * np.sin(2 * np.pi * h / 24) + noise(len(h), 0.4),
        tilt_deg=np.clip(tilt, 0, 180),
        battery_v=battery(len(h)),
    )
    for hour in recorded:
        rows.append({"kind": "collection", "ts": START + timedelta(hours=hour), "crew": "R3"})
    forecast_at = START + timedelta(hours=9 * 24 + 8)
    rows.append(
        {
            "kind": "forecast",
            "ts": forecast_at,
            "target_ts": forecast_at + timedelta(hours=20),
            "value": 90.0,
        }
    )
    overflow_clean = first(times, fill >= 80)
    unrecorded = START + timedelta(hours=11 * 24 + 10)
    wasted = START + timedelta(hours=12 * 24 + 8)
    return Scenario(
        "bin_round",
        "General-waste bin over two weeks: overfills before the day-5 collection; knocked "
        "over on day 7 at 03:00 for five hours; a forecast on day 9 says 90 % within 20 h; "
        "emptied on day 11 with no record; collected again on day 12 while nearly empty. Noise "
        "includes single 0 % and 100 % echoes.",
        {
            "kind": "bin",
            "device_id": "bin-round-09",
            "threshold_pct": 80,
            "waste_stream": "general",
        },
        "bin-round-09",
        step_min,
        rows,
        [
            expect("bin_overflow", overflow_clean, 2, "clean fill first at or above 80 %"),
            expect("bin_overflow", forecast_at, 0.5, "designed: forecast of 90 % within 20 h"),
            expect(
                "bin_knocked_over", START + timedelta(hours=knock_h), 2, "designed: tipped over"
            ),
            # 3 h either side to match a record, plus 12 h for crews' records to come in.
            expect("unrecorded_emptying", unrecorded, 17, "designed: emptied without a record"),
            expect("wasted_collection", wasted, 0.1, "designed: collected at under 20 %"),
        ],
        times[-1] + timedelta(minutes=step_min),
    )


def main() -> None:
    for make in (
        bathroom_showers,
        damp_bedroom,
        void_cold_snap,
        dead_battery,
        bin_fire,
        bin_stuck,
        offline_during_hazard,
        kitchen_leak,
        bin_round,
    ):
        scenario = make()
        scenario.write()
        print(f"{scenario.name}: {len(scenario.rows)} rows, {len(scenario.expected)} expected")


if __name__ == "__main__":
    main()
