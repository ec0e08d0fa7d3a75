"""What is really wrong with each simulated home and bin, and when: the ground truth that alert
quality is measured against.

Each home and bin is given labels at stated base rates, drawn per device from its own random
stream, before any reading is made; the physical models (:mod:`device_sim.models`) then behave
accordingly. Hazard labels are what an officer or a crew must hear about; benign labels are
ordinary life that must not raise anything above ``watch``.

Base rates, and where they come from (*default* marks a judgement, to be replaced by a
council's own figures):

* damp-prone home: 5 %. English Housing Survey 2023-24: about 5 % of homes in England have a
  damp problem.
* under-heated home (cannot or does not heat to 18 °C): 3 %. The English Housing Survey finds
  category 1 excess cold hazards in roughly 2-3 % of dwellings; *default* 3 %.
* void home: the estate file says which; the demo estate has about 2 % (the Regulator of
  Social Housing's statistical returns put general-needs vacancies at about 1.5-2 %).
* void home whose background heating fails during the month: 25 % of voids (*default*).
* leak (a burst or dripping pipe, days until fixed): 1 % of homes a month (*default*).
* benign: a week away (heating and moisture off) 5 %; laundry dried indoors on some days 30 %;
  a night with the heating off 20 % of occupied homes a month (*defaults*).
* device faults: a home sensor stuck 1 %, a battery near the end of its life 3 % (*defaults*).
* bins: fire 0.2 %, knocked over 0.5 %, fill sensor stuck 1 % a month (*defaults*).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal, TextIO

__all__ = [
    "BENIGN",
    "HAZARDS",
    "BinFaults",
    "BinTruth",
    "Episode",
    "HomeTruth",
    "Label",
    "bin_labels",
    "draw_bin_truth",
    "draw_home_truth",
    "home_labels",
    "write_labels",
]

DAMP_PRONE: Final = 0.05
UNDER_HEATED: Final = 0.03
VOID_HEATING_FAILS: Final = 0.25
LEAK: Final = 0.01
AWAY_WEEK: Final = 0.05
DRYING_CLOTHES: Final = 0.30
COLD_NIGHT: Final = 0.20
SENSOR_STUCK: Final = 0.01
BATTERY_DYING: Final = 0.03
BIN_FIRE: Final = 0.002
BIN_KNOCKED_OVER: Final = 0.005
BIN_SENSOR_STUCK: Final = 0.01

HAZARDS: Final = frozenset(
    {"damp_prone", "under_heated", "void_heating_failed", "leak", "bin_fire", "bin_knocked_over"}
)
"""Labels someone must act on: an alert at ``act`` or above is wanted."""
BENIGN: Final = frozenset({"away_week", "drying_clothes", "cold_night"})
"""Ordinary life: nothing above ``watch`` is wanted."""

LabelName = Literal[
    "damp_prone",
    "under_heated",
    "void",
    "void_heating_failed",
    "leak",
    "away_week",
    "drying_clothes",
    "cold_night",
    "sensor_stuck",
    "battery_dying",
    "bin_fire",
    "bin_knocked_over",
]


@dataclass(frozen=True, slots=True)
class Episode:
    """A label that holds from ``start`` until ``end`` (``None``: to the end of the run)."""

    label: LabelName
    start: datetime
    end: datetime | None = None

    def holds(self, ts: datetime) -> bool:
        return self.start <= ts and (self.end is None or ts < self.end)


@dataclass(frozen=True, slots=True)
class Label:
    """One line of the truth file."""

    subject_kind: Literal["home", "bin"]
    subject_id: str
    device_id: str
    label: LabelName
    start: datetime
    end: datetime | None
    hazard: bool


@dataclass
class HomeTruth:
    void: bool = False
    damp_prone: bool = False
    under_heated: bool = False
    episodes: list[Episode] = field(default_factory=list)

    def active(self, label: LabelName, ts: datetime) -> bool:
        return any(e.label == label and e.holds(ts) for e in self.episodes)

    def first(self, label: LabelName) -> Episode | None:
        return next((e for e in self.episodes if e.label == label), None)


@dataclass
class BinTruth:
    episodes: list[Episode] = field(default_factory=list)

    def active(self, label: LabelName, ts: datetime) -> bool:
        return any(e.label == label and e.holds(ts) for e in self.episodes)


def _some_time(rng: random.Random, start: datetime, days: float, margin_days: float) -> datetime:
    """A time in the run, leaving ``margin_days`` at the end for it to be seen."""
    span = max(days - margin_days, 0.0)
    return start + timedelta(days=rng.uniform(0, span))


def draw_home_truth(rng: random.Random, void: bool, start: datetime, days: float) -> HomeTruth:
    """A home's labels for a run of ``days`` from ``start``."""
    truth = HomeTruth(void=void)
    if void:
        if rng.random() < VOID_HEATING_FAILS:
            failed = _some_time(rng, start, days, margin_days=3)
            truth.episodes.append(Episode("void_heating_failed", failed))
    else:
        truth.damp_prone = rng.random() < DAMP_PRONE
        truth.under_heated = rng.random() < UNDER_HEATED
        if rng.random() < AWAY_WEEK:
            away = _some_time(rng, start, days, margin_days=7)
            truth.episodes.append(Episode("away_week", away, away + timedelta(days=7)))
        if rng.random() < DRYING_CLOTHES:
            for day in range(int(days)):
                if rng.random() < 2 / 7:  # about two washes a week
                    begins = start + timedelta(days=day, hours=10)
                    truth.episodes.append(
                        Episode("drying_clothes", begins, begins + timedelta(hours=10))
                    )
        if rng.random() < COLD_NIGHT:
            night = start + timedelta(days=rng.randrange(max(int(days), 1)), hours=16)
            truth.episodes.append(Episode("cold_night", night, night + timedelta(hours=16)))
    if rng.random() < LEAK:
        leak = _some_time(rng, start, days, margin_days=3)
        truth.episodes.append(Episode("leak", leak, leak + timedelta(days=rng.uniform(2, 4))))
    if rng.random() < SENSOR_STUCK:
        truth.episodes.append(Episode("sensor_stuck", _some_time(rng, start, days, 2)))
    if rng.random() < BATTERY_DYING:
        truth.episodes.append(Episode("battery_dying", start))
    return truth


def draw_bin_truth(rng: random.Random, start: datetime, days: float) -> BinTruth:
    truth = BinTruth()
    if rng.random() < BIN_FIRE:
        fire = _some_time(rng, start, days, margin_days=1)
        truth.episodes.append(Episode("bin_fire", fire, fire + timedelta(hours=3)))
    if rng.random() < BIN_KNOCKED_OVER:
        over = _some_time(rng, start, days, margin_days=1)
        truth.episodes.append(Episode("bin_knocked_over", over, over + timedelta(hours=20)))
    if rng.random() < BIN_SENSOR_STUCK:
        truth.episodes.append(Episode("sensor_stuck", _some_time(rng, start, days, 3)))
    if rng.random() < BATTERY_DYING:
        truth.episodes.append(Episode("battery_dying", start))
    return truth


def home_labels(uprn: str, device_id: str, truth: HomeTruth, start: datetime) -> list[Label]:
    labels: list[Label] = []
    whole: list[LabelName] = []
    if truth.void:
        whole.append("void")
    if truth.damp_prone:
        whole.append("damp_prone")
    if truth.under_heated:
        whole.append("under_heated")
    for name in whole:
        labels.append(Label("home", uprn, device_id, name, start, None, name in HAZARDS))
    for e in truth.episodes:
        labels.append(Label("home", uprn, device_id, e.label, e.start, e.end, e.label in HAZARDS))
    return labels


def bin_labels(device_id: str, truth: BinTruth) -> list[Label]:
    return [
        Label("bin", device_id, device_id, e.label, e.start, e.end, e.label in HAZARDS)
        for e in truth.episodes
    ]


def write_labels(labels: Iterable[Label], out: TextIO) -> int:
    """The truth file: one JSON object per line, times in RFC 3339."""
    count = 0
    for label in labels:
        row = asdict(label)
        for key in ("start", "end"):
            if row[key] is not None:
                row[key] = row[key].isoformat().replace("+00:00", "Z")
        out.write(json.dumps(row) + "\n")
        count += 1
    return count


FIRE_TEMP_C = 95.0  # smouldering refuse: well above any weather, within the contract's range
KNOCKED_TILT_DEG = 85.0


@dataclass
class BinFaults:
    """Applies a bin's labelled faults to the readings its healthy model makes."""

    truth: BinTruth
    stuck_fill: float | None = None

    def apply(self, ts: datetime, values: dict[str, float]) -> dict[str, float]:
        out = dict(values)
        if self.truth.active("bin_fire", ts):
            out["temp_c"] = FIRE_TEMP_C
        if self.truth.active("bin_knocked_over", ts):
            out["tilt_deg"] = KNOCKED_TILT_DEG
        if self.truth.active("sensor_stuck", ts):
            if self.stuck_fill is None:
                self.stuck_fill = out.get("fill_pct", 0.0)
            out["fill_pct"] = self.stuck_fill
        if self.truth.active("battery_dying", ts) and "battery_v" in out:
            elapsed_h = (ts - self.truth.episodes[0].start).total_seconds() / 3600
            out["battery_v"] = round(max(3.25 - 0.0005 * elapsed_h, 2.5), 3)
        return out
