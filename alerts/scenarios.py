"""Labelled scenario traces and detection quality: precision, recall, time to detect.

A trace is two files side by side: ``NAME.csv`` (one item per row, in time order; the
``kind`` column says reading, forecast, peer_change or collection) and ``NAME.labels.json``
(the subject, the device, the expected conditions with the time each truly starts and the
longest acceptable delay, and the time to run the clock to at the end).

Scoring, per condition: a detection (an ``on`` or ``occurred`` event) matches a label when
it falls between ``true_start - EARLY_SLACK`` and ``true_start + max_delay``; precision is
matched detections over all detections, recall is labels detected in time over labels.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from alerts.detector import (
    BinRuleSettings,
    Detector,
    DeviceRuleSettings,
    HomeRuleSettings,
)
from alerts.events import ConditionEvent, Transition
from alerts.readings import Bin, CollectionRecord, FillForecast, Home, Item, PeerChange
from alerts.rules import OfflineSettings
from firmware_contracts import Reading, WasteStream

__all__ = [
    "EARLY_SLACK",
    "ConditionScore",
    "Detection",
    "Label",
    "Trace",
    "TraceResult",
    "load_trace",
    "load_traces",
    "markdown_table",
    "run_trace",
    "score",
]

EARLY_SLACK = timedelta(hours=1)
"""Noise can tip a rule a little before the clean signal does; earlier than this is wrong."""

CSV_COLUMNS = (
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


def _ts(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no timezone")
    return value


def _float(text: str) -> float | None:
    return float(text) if text else None


@dataclass(frozen=True, slots=True)
class Label:
    condition: str
    true_start: datetime
    max_delay: timedelta
    truth: str
    """How the true start was established (a designed event or the clean signal)."""


@dataclass(frozen=True, slots=True)
class Trace:
    name: str
    description: str
    subject: Home | Bin
    device_id: str
    expected_interval: timedelta
    until: datetime
    labels: tuple[Label, ...]
    items: tuple[Item, ...] = field(repr=False)

    def detector(self) -> Detector:
        offline = OfflineSettings(expected_interval=self.expected_interval)
        device = DeviceRuleSettings(offline=offline)
        if isinstance(self.subject, Home):
            return Detector.for_home(self.subject, self.device_id, HomeRuleSettings(device=device))
        return Detector.for_bin(self.subject, BinRuleSettings(device=device))


def _subject(spec: dict[str, Any]) -> Home | Bin:
    if spec["kind"] == "home":
        return Home(uprn=spec["uprn"], void=bool(spec.get("void", False)), patch=spec.get("patch"))
    return Bin(
        device_id=spec["device_id"],
        threshold_pct=float(spec.get("threshold_pct", 80.0)),
        waste_stream=WasteStream(spec.get("waste_stream", "general")),
    )


def _item(row: dict[str, str], device_id: str) -> Item:
    kind = row["kind"]
    ts = _ts(row["ts"])
    if kind == "reading":
        seq = row.get("seq", "")
        return Reading(
            device_id=device_id,
            ts=ts,
            fill_pct=_float(row["fill_pct"]),
            temp_c=_float(row["temp_c"]),
            rh_pct=_float(row["rh_pct"]),
            battery_v=_float(row["battery_v"]),
            co2_ppm=_float(row["co2_ppm"]),
            tilt_deg=_float(row["tilt_deg"]),
            seq=int(seq) if seq else None,
        )
    if kind == "forecast":
        return FillForecast(device_id, ts, _ts(row["target_ts"]), float(row["value"]))
    if kind == "peer_change":
        return PeerChange(
            device_id,
            ts,
            timedelta(hours=float(row["window_hours"])),
            float(row["value"]),
            int(row["peer_count"]),
        )
    if kind == "collection":
        return CollectionRecord(device_id, ts, row.get("crew") or None)
    raise ValueError(f"unknown item kind {kind!r}")


def load_trace(csv_path: Path) -> Trace:
    labels_path = csv_path.with_name(csv_path.stem + ".labels.json")
    spec = json.loads(labels_path.read_text(encoding="utf-8"))
    device_id = spec["device_id"]
    with csv_path.open(newline="", encoding="utf-8") as handle:
        items = tuple(_item(row, device_id) for row in csv.DictReader(handle))
    labels = tuple(
        Label(
            condition=entry["condition"],
            true_start=_ts(entry["true_start"]),
            max_delay=timedelta(hours=float(entry["max_delay_hours"])),
            truth=entry["truth"],
        )
        for entry in spec["expected"]
    )
    return Trace(
        name=spec["name"],
        description=spec["description"],
        subject=_subject(spec["subject"]),
        device_id=device_id,
        expected_interval=timedelta(minutes=float(spec["expected_interval_minutes"])),
        until=_ts(spec["until"]),
        labels=labels,
        items=items,
    )


def load_traces(directory: Path) -> list[Trace]:
    return [load_trace(path) for path in sorted(directory.glob("*.csv"))]


@dataclass(frozen=True, slots=True)
class Detection:
    trace: str
    event: ConditionEvent
    label: Label | None


@dataclass(frozen=True, slots=True)
class TraceResult:
    trace: Trace
    events: tuple[ConditionEvent, ...]
    detections: tuple[Detection, ...]
    missed: tuple[Label, ...]

    def delay(self, label: Label) -> timedelta | None:
        """Time to detect ``label``: its first matching detection minus its true start."""
        times = [d.event.at for d in self.detections if d.label == label]
        return min(times) - label.true_start if times else None


def _matches(event: ConditionEvent, label: Label) -> bool:
    return (
        event.condition == label.condition
        and label.true_start - EARLY_SLACK <= event.at <= label.true_start + label.max_delay
    )


def run_trace(trace: Trace) -> TraceResult:
    detector = trace.detector()
    events = detector.feed(trace.items)
    events += detector.advance(trace.until)
    detections = []
    for event in events:
        if event.transition not in (Transition.ON, Transition.OCCURRED):
            continue
        label = next((lab for lab in trace.labels if _matches(event, lab)), None)
        detections.append(Detection(trace.name, event, label))
    found = {d.label for d in detections if d.label is not None}
    missed = tuple(label for label in trace.labels if label not in found)
    return TraceResult(trace, tuple(events), tuple(detections), missed)


@dataclass(frozen=True, slots=True)
class ConditionScore:
    condition: str
    labels: int
    detected: int
    detections: int
    true_detections: int
    delays_h: tuple[float, ...]
    max_allowed_h: float

    @property
    def precision(self) -> float | None:
        return self.true_detections / self.detections if self.detections else None

    @property
    def recall(self) -> float | None:
        return self.detected / self.labels if self.labels else None


def score(results: Iterable[TraceResult]) -> list[ConditionScore]:
    results = list(results)
    conditions = sorted(
        {label.condition for r in results for label in r.trace.labels}
        | {d.event.condition for r in results for d in r.detections}
    )
    scores = []
    for condition in conditions:
        labels = [(r, lab) for r in results for lab in r.trace.labels if lab.condition == condition]
        detections = [d for r in results for d in r.detections if d.event.condition == condition]
        delays = []
        for result, label in labels:
            delay = result.delay(label)
            if delay is not None:
                delays.append(delay.total_seconds() / 3600)
        scores.append(
            ConditionScore(
                condition=condition,
                labels=len(labels),
                detected=len(delays),
                detections=len(detections),
                true_detections=sum(1 for d in detections if d.label is not None),
                delays_h=tuple(delays),
                max_allowed_h=max(
                    (lab.max_delay.total_seconds() / 3600 for _, lab in labels), default=0.0
                ),
            )
        )
    return scores


def _fmt(value: float | None, pattern: str = "{:.2f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def markdown_table(scores: Sequence[ConditionScore]) -> str:
    lines = [
        "| condition | labels | detections | precision | recall | "
        "median TTD (h) | max TTD (h) | allowed (h) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scores:
        median = statistics.median(s.delays_h) if s.delays_h else None
        worst = max(s.delays_h) if s.delays_h else None
        lines.append(
            f"| {s.condition} | {s.labels} | {s.detections} | {_fmt(s.precision)} | "
            f"{_fmt(s.recall)} | {_fmt(median, '{:.1f}')} | {_fmt(worst, '{:.1f}')} | "
            f"{s.max_allowed_h:g} |"
        )
    return "\n".join(lines)
