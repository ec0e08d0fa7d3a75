"""Alert quality at estate scale, against the simulator's ground truth, and the officer
workload it makes.

    .venv/bin/python -m bench.alerts_estate [--homes 2000] [--bins 2000] [--days 30]
        [--seasons winter summer] [--leak-homes 100]

For each season: the demo estate's generator makes ``--homes`` homes and ``--bins`` bins; the
simulator's models (:mod:`device_sim.population`) make ``--days`` of readings (homes every
30 minutes, bins hourly) with each device's labels (:mod:`device_sim.truth`); they are written
through the store's write path and evaluated by ``civic alerts backfill``'s work (the real
evaluator: rules, lifecycle, Awaab's Law clocks, bins' peer summaries and forecasts). Then, per
home or bin (not per event) and per alert type, an alert counts when it reached ``act`` or above
(a stuck bin sensor, a maintenance job raised at ``watch``, from ``watch``); bin alert types are
scored against bins' labels only, home ones against homes':

* precision = homes alerted that have the hazard / homes alerted; recall = homes with the
  hazard that were alerted; median time to detect from the hazard's start;
* statutory clocks: the share started in homes labelled hazardous;
* benign homes (no hazard label: ordinary life, weeks away, laundry, cold nights) with anything
  above ``watch``;
* workload: new alerts and new statutory clocks per 1,000 homes per week, by severity;
* with ``--leak-homes``, leak recall on that many more homes each given a leak, scored apart
  (at the 1 % base rate an estate of 1,000 homes has about ten leaks, too few to judge).

Precision and recall are given with 95 % Wilson intervals: several rows rest on a handful of
cases.

The labels and the models were written by the same team as the rules, so these figures show
the rules doing what they were designed to do on data made to the same understanding; they are
not a measurement against real homes.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alerts.service import Evaluator, EvaluatorConfig
from common.services import LocalServices
from device_sim import generate_estate
from device_sim.models import HomeModel
from device_sim.population import SimulatedDevice, populate
from device_sim.truth import Episode, Label, draw_home_truth, home_labels
from device_sim.weather import SEASONS, Weather
from firmware_contracts import Reading
from store.db import connect, migrate
from store.readings import PartitionGuard, prepare_session, write_batch
from store.registry import parse_device_row, upsert_devices

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "bench_alerts_estate"
HOME_STEP = timedelta(minutes=30)
BIN_STEP = timedelta(hours=1)
LOAD_BATCH = 50_000
SEVERITIES = ("info", "watch", "act", "urgent", "emergency")
ACTED_ON = SEVERITIES.index("act")
DEVICE_HEALTH = frozenset({"battery_low", "device_offline", "sequence_gaps"})
SEED = 11
LEAK_SAMPLE_SEED = 13
LEAK_SAMPLE_PREFIX = "leak-"
LEAK_SAMPLE_UPRN = 200_000_000_000
WILSON_Z = 1.96  # 95 % interval

# Which labels each alert type is for. A label in ``also`` is a real problem the alert may
# rightly name (a leak makes a home damp) without being required to.
SCORED: dict[str, dict[str, Any]] = {
    # A cold home is a damp home: condensation in an under-heated home is a real damp problem.
    "damp_mould": {"wanted": {"damp_prone"}, "also": {"leak", "under_heated"}},
    "excess_cold": {"wanted": {"under_heated"}, "also": set(), "winter_only": True},
    "void_heating": {
        "wanted": {"void_heating_failed"},
        "also": set(),
        "winter_only": True,
        "types": ("frost_risk", "void_heating_off"),
    },
    "suspected_leak": {"wanted": {"leak"}, "also": {"damp_prone"}},
    "battery_low": {"wanted": {"battery_dying"}, "also": set(), "kind": "any"},
    "bin_fire": {"wanted": {"bin_fire"}, "also": set(), "kind": "bin"},
    "bin_knocked_over": {"wanted": {"bin_knocked_over"}, "also": set(), "kind": "bin"},
    # A stuck fill sensor is a maintenance job, raised at `watch`: scored from there.
    "sensor_stuck": {"wanted": {"sensor_stuck"}, "also": set(), "kind": "bin", "from": "watch"},
}


@dataclass
class Score:
    alert_type: str
    alerted: int = 0
    true_positive: int = 0
    wanted: int = 0
    found: int = 0
    detect_h: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.true_positive / self.alerted if self.alerted else None

    @property
    def recall(self) -> float | None:
        return self.found / self.wanted if self.wanted else None

    @property
    def precision_ci(self) -> tuple[float, float] | None:
        return wilson(self.true_positive, self.alerted)

    @property
    def recall_ci(self) -> tuple[float, float] | None:
        return wilson(self.found, self.wanted)


def wilson(successes: int, trials: int, z: float = WILSON_Z) -> tuple[float, float] | None:
    """Wilson score interval of a proportion: honest for the small counts (a handful of leaks,
    of fires) where the normal approximation gives intervals past 0 or 1."""
    if trials == 0:
        return None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    spread = math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    half = z * spread / (1 + z * z / trials)
    return max(centre - half, 0.0), min(centre + half, 1.0)


def fresh_database(admin: str, season: str) -> str:
    # One database a season, so the seasons may run as separate processes at once.
    name = f"{DATABASE}_{season}"
    with connect(admin) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    migrate(url)
    return url


def _readings(devices: list[SimulatedDevice], start: datetime, days: int) -> Iterator[Reading]:
    end = start + timedelta(days=days)
    for device in devices:
        step = BIN_STEP if device.kind == "bin" else HOME_STEP
        ts = start + step * device.rng.random()
        seq = 0
        while ts < end:
            values = device.reading(ts)
            yield Reading(device.device_id, ts, seq=seq, **values)
            seq += 1
            ts += step


def _batches(readings: Iterable[Reading]) -> Iterator[list[Reading]]:
    batch: list[Reading] = []
    for reading in readings:
        batch.append(reading)
        if len(batch) >= LOAD_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def leak_sample(
    count: int, start: datetime, days: int, season: str
) -> tuple[list[dict[str, str]], list[SimulatedDevice], list[Label]]:
    """``count`` more occupied homes, each given a leak on top of its ordinary labels.

    At the simulator's base rate (1 % of homes a month) a 1,000-home estate has a handful of
    leaks, so one missed leak moves recall by 0.2: too few to judge. These homes are scored
    apart, for leak recall only; precision and benign alerts stay measured on the estate at its
    base rates. Their other labels are drawn as :func:`device_sim.population.populate` draws
    them; the leak is drawn as :func:`device_sim.truth.draw_home_truth` draws one (a start in
    the run leaving three days to see it, lasting two to four days).
    """
    rows = generate_estate(0, count, seed=LEAK_SAMPLE_SEED)
    weather = Weather.named(season, SEED)
    devices: list[SimulatedDevice] = []
    labels: list[Label] = []
    for number, row in enumerate(rows):
        row.update(
            device_id=LEAK_SAMPLE_PREFIX + row["device_id"],
            uprn=str(LEAK_SAMPLE_UPRN + number),
            void="false",
        )
        device_id = row["device_id"]
        device_rng = random.Random(f"{LEAK_SAMPLE_SEED}:{device_id}")
        truth_rng = random.Random(f"{LEAK_SAMPLE_SEED}:truth:{device_id}")
        truth = draw_home_truth(truth_rng, False, start, days)
        if truth.first("leak") is None:
            begins = start + timedelta(days=truth_rng.uniform(0, days - 3))
            ends = begins + timedelta(days=truth_rng.uniform(2, 4))
            truth.episodes.append(Episode("leak", begins, ends))
        model = HomeModel.create(device_id, False, device_rng, weather=weather, truth=truth)
        devices.append(SimulatedDevice(device_id, "env", model, device_rng))
        labels += home_labels(row["uprn"], device_id, truth, start)
    return rows, devices, labels


def simulate_and_evaluate(
    url: str, season: str, homes: int, bins: int, days: int, leak_homes: int = 0
) -> tuple[list[Label], dict[str, str], int, float]:
    start = (datetime.now(UTC) - timedelta(days=days + 1)).replace(
        minute=0, second=0, microsecond=0
    )
    estate = generate_estate(bins, homes, seed=SEED)
    devices, labels = populate(
        estate, seed=SEED, start=start, duration=timedelta(days=days), season=season
    )
    if leak_homes:
        extra_rows, extra_devices, extra_labels = leak_sample(leak_homes, start, days, season)
        estate += extra_rows
        devices += extra_devices
        labels += extra_labels
    with connect(url) as conn:
        upsert_devices(conn, [parse_device_row(r) for r in estate])
    uprn_of = {r["device_id"]: r.get("uprn") or r["device_id"] for r in estate}
    written = 0
    with connect(url) as conn:
        prepare_session(conn)
        guard = PartitionGuard()
        for batch in _batches(_readings(devices, start, days)):
            write_batch(conn, batch, [], partitions=guard)
            written += len(batch)
    print(f"{season}: {written:,} readings written; evaluating", file=sys.stderr, flush=True)
    began = time.monotonic()
    with connect(url) as conn:
        evaluator = Evaluator(conn, EvaluatorConfig())
        evaluator.reset(start)
        evaluator.run_cycle(
            notify=False,
            progress=lambda done, total, n: (
                print(f"  {done}/{total} devices, {n:,} readings", file=sys.stderr, flush=True)
                if done % 1000 < 500 or done == total
                else None
            ),
        )
        evaluator.close()
    return labels, uprn_of, written, time.monotonic() - began


def _alert_rows(url: str) -> list[dict[str, Any]]:
    with connect(url) as conn:
        return conn.execute(
            """SELECT a.subject_kind, a.subject_id, a.alert_type, a.opened_at,
                      a.statutory_clock_started_at,
                      (SELECT max(array_position(%s::text[], e.severity))
                       FROM condition_events e
                       WHERE e.subject_id = a.subject_id AND e.alert_type = a.alert_type
                         AND e.superseded_at IS NULL) - 1 AS max_severity,
                      (SELECT min(e.at) FROM condition_events e
                       WHERE e.subject_id = a.subject_id AND e.alert_type = a.alert_type
                         AND e.superseded_at IS NULL
                         AND array_position(%s::text[], e.severity) - 1 >= %s) AS acted_at
               FROM alerts a""",
            (list(SEVERITIES), list(SEVERITIES), ACTED_ON),
        ).fetchall()


def _labels_by_subject(labels: list[Label]) -> dict[str, list[Label]]:
    out: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        out[label.subject_id].append(label)
    return out


def score(
    season: str, labels: list[Label], alerts: list[dict[str, Any]], homes: int, days: int
) -> tuple[list[Score], dict[str, Any]]:
    by_subject = _labels_by_subject(labels)
    winter = season in ("winter", "november")
    scores = []
    for name, spec in SCORED.items():
        types = spec.get("types", (name,))
        kind = spec.get("kind", "home")
        least = SEVERITIES.index(spec.get("from", "act"))
        wanted_labels = set() if spec.get("winter_only") and not winter else spec["wanted"]
        acceptable = set(spec["wanted"]) | set(spec["also"])
        alerted: dict[str, datetime] = {}
        for a in alerts:
            if kind not in ("any", a["subject_kind"]):
                continue
            if a["alert_type"] in types and (a["max_severity"] or 0) >= least:
                at = a["acted_at"] or a["opened_at"]
                alerted[a["subject_id"]] = min(at, alerted.get(a["subject_id"], at))
        s = Score(name, alerted=len(alerted))
        for subject in alerted:
            names = {lab.label for lab in by_subject.get(subject, [])}
            s.true_positive += bool(names & acceptable)
        for subject, subject_labels in by_subject.items():
            hit = [
                lab
                for lab in subject_labels
                if lab.label in wanted_labels and kind in ("any", lab.subject_kind)
            ]
            if not hit:
                continue
            s.wanted += 1
            if subject in alerted:
                s.found += 1
                s.detect_h.append((alerted[subject] - hit[0].start).total_seconds() / 3600)
        scores.append(s)
    extra = _workload(labels, alerts, homes, days, by_subject)
    return scores, extra


def _workload(
    labels: list[Label],
    alerts: list[dict[str, Any]],
    homes: int,
    days: int,
    by_subject: dict[str, list[Label]],
) -> dict[str, Any]:
    home_ids = {lab.subject_id for lab in labels if lab.subject_kind == "home"}
    hazardous = {s for s, ls in by_subject.items() if any(lab.hazard for lab in ls)}
    clocks = [a for a in alerts if a["statutory_clock_started_at"] is not None]
    weeks = days / 7
    per_1000 = 1000 / homes / weeks
    home_alerts = [
        a for a in alerts if a["subject_kind"] == "home" and a["alert_type"] not in DEVICE_HEALTH
    ]
    by_severity: dict[str, int] = defaultdict(int)
    for a in home_alerts:
        by_severity[SEVERITIES[a["max_severity"] or 0]] += 1
    all_homes = {a["subject_id"] for a in home_alerts} | home_ids
    above_watch = {
        a["subject_id"]
        for a in home_alerts
        if (a["max_severity"] or 0) >= ACTED_ON and a["subject_id"] not in hazardous
    }
    examples = sorted(  # a home alerted twice for the same thing is one example
        {
            f"{a['subject_id']}:{a['alert_type']}:{SEVERITIES[a['max_severity'] or 0]}"
            for a in home_alerts
            if a["subject_id"] in above_watch and (a["max_severity"] or 0) >= ACTED_ON
        }
    )[:8]
    return {
        "clocks": len(clocks),
        "clocks_hazardous": sum(1 for a in clocks if a["subject_id"] in hazardous),
        "benign_homes": homes - len(hazardous & all_homes),
        "benign_above_watch": len(above_watch),
        "examples": examples,
        "per_1000_week": {k: round(v * per_1000, 1) for k, v in sorted(by_severity.items())},
        "clocks_per_1000_week": round(len(clocks) * per_1000, 2),
    }


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _with_ci(value: float | None, ci: tuple[float, float] | None) -> str:
    if value is None or ci is None:
        return "–"
    return f"{value:.2f} ({ci[0]:.2f}–{ci[1]:.2f})"


@dataclass
class SeasonResult:
    season: str
    scores: list[Score]
    extra: dict[str, Any]
    readings: int
    evaluate_s: float
    leak_sample: Score | None = None
    """Leak recall on the extra homes given a leak (``--leak-homes``), scored apart."""


def split_leak_sample(
    labels: list[Label], alerts: list[dict[str, Any]]
) -> tuple[list[Label], list[dict[str, Any]], list[Label], list[dict[str, Any]]]:
    """The estate's labels and alerts, and the leak sample's."""
    sample = {lab.subject_id for lab in labels if lab.device_id.startswith(LEAK_SAMPLE_PREFIX)}
    return (
        [lab for lab in labels if lab.subject_id not in sample],
        [a for a in alerts if a["subject_id"] not in sample],
        [lab for lab in labels if lab.subject_id in sample],
        [a for a in alerts if a["subject_id"] in sample],
    )


def markdown(
    argv: list[str],
    results: list[SeasonResult],
    homes: int,
    bins: int,
    days: int,
) -> str:
    lines = [
        "# Alert quality at estate scale (simulator ground truth)",
        "",
        f"`.venv/bin/python -m bench.alerts_estate {' '.join(argv)}`".replace("  ", " "),
        "",
        f"{homes:,} homes and {bins:,} bins, {days} days a season, through the real evaluator."
        " Counted per home or bin and alert type, an alert at `act` or above (a stuck bin"
        " sensor, a maintenance job raised at `watch`, from `watch`). The labels and the"
        " models come from the same understanding as the rules: these figures show designed"
        " behaviour on simulated homes, not accuracy on real ones. Precision and recall carry"
        " a 95 % Wilson interval: with a handful of cases (leaks, fires, stuck sensors) one case"
        " moves the figure a lot, and the interval says how little it pins down.",
    ]
    for result in results:
        extra = result.extra
        lines += [
            "",
            f"## {result.season} ({result.readings:,} readings, evaluated in"
            f" {result.evaluate_s:.0f} s)",
            "",
            "| alert type | homes/bins alerted | precision (95 % CI) | with the hazard |"
            " recall (95 % CI) | median hours to detect |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for s in result.scores:
            detect = statistics.median(s.detect_h) if s.detect_h else None
            lines.append(
                f"| {s.alert_type} | {s.alerted} | {_with_ci(s.precision, s.precision_ci)} |"
                f" {s.wanted} | {_with_ci(s.recall, s.recall_ci)} | {_fmt(detect, 0)} |"
            )
        clocks, hazardous = extra["clocks"], extra["clocks_hazardous"]
        clock_precision = hazardous / clocks if clocks else None
        workload = ", ".join(f"{k} {v}" for k, v in extra["per_1000_week"].items()) or "none"
        sample = result.leak_sample
        if sample is not None:
            detect = statistics.median(sample.detect_h) if sample.detect_h else None
            lines += [
                "",
                f"- Leak sample, {sample.wanted} more occupied homes each given a leak (scored"
                f" apart, recall only): {sample.found} found, recall"
                f" {_with_ci(sample.recall, sample.recall_ci)}, median {_fmt(detect, 0)} h to"
                " detect.",
            ]
        else:
            lines.append("")
        lines += [
            f"- Statutory clocks started: {clocks} ({extra['clocks_per_1000_week']} per"
            f" 1,000 homes a week), {_with_ci(clock_precision, wilson(hazardous, clocks))} of"
            " them in homes labelled hazardous.",
            f"- Homes without a hazard label with anything above `watch`:"
            f" {extra['benign_above_watch']} of {extra['benign_homes']}"
            + (f" (e.g. {', '.join(extra['examples'])})" if extra["examples"] else "")
            + ".",
            "- Officer workload, new home alerts per 1,000 homes a week by the highest severity"
            f" reached: {workload}.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homes", type=int, default=2000)
    parser.add_argument("--bins", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument(
        "--seasons", nargs="+", default=["winter", "summer"], choices=sorted(SEASONS)
    )
    parser.add_argument(
        "--leak-homes",
        type=int,
        default=0,
        help="also simulate this many occupied homes each given a leak, scored apart for leak"
        " recall (the estate's 1 %% base rate gives too few leaks to judge)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    args = parser.parse_args()
    state = LocalServices(ROOT / ".civic" / "bench").up()
    admin = state.database_url.rsplit("/", 1)[0] + "/postgres"
    results = []
    for season in args.seasons:
        url = fresh_database(admin, season)
        all_labels, _, readings, evaluate_s = simulate_and_evaluate(
            url, season, args.homes, args.bins, args.days, args.leak_homes
        )
        labels, alerts, sample_labels, sample_alerts = split_leak_sample(
            all_labels, _alert_rows(url)
        )
        scores, extra = score(season, labels, alerts, args.homes, args.days)
        result = SeasonResult(season, scores, extra, readings, evaluate_s)
        if args.leak_homes:
            sample_scores, _ = score(
                season, sample_labels, sample_alerts, args.leak_homes, args.days
            )
            result.leak_sample = next(s for s in sample_scores if s.alert_type == "suspected_leak")
        results.append(result)
        print(markdown(sys.argv[1:], results[-1:], args.homes, args.bins, args.days), flush=True)
    text = markdown(sys.argv[1:], results, args.homes, args.bins, args.days)
    print(text)
    if not args.no_write:
        (ROOT / "bench" / "results" / "alerts_estate.md").write_text(text)


if __name__ == "__main__":
    main()
