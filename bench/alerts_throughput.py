"""Alert evaluation throughput: does it keep up with ingest, with one and two evaluators, and
how long does a backfill take in one process and split across two?

    .venv/bin/python -m bench.alerts_throughput [--rates 10000 2000] [--evaluators 1 2]
        [--live-seconds 40] [--live-homes 10000] [--homes 10000] [--days 30] [--profile]
        [--backfill-processes 1 2] [--no-live] [--no-backfill]

The defaults are the target estate (10,000 homes, 30 days) and take over half an hour (most
of it generating and loading 28.8 million readings and evaluating them twice); ``--homes 300``
gives a quick look. ``--no-live`` or ``--no-backfill`` runs one part; each part writes its own
results file (``alerts_throughput.md``, ``alerts_backfill.md``).

On the project-local PostgreSQL (started under .civic/bench, database ``bench_alerts``):

1. live: a loader process writes home readings through the store's write path
   (``store.readings.write_batch``, the COPY + merge + commit ingest uses, without MQTT) at the
   offered rate, while 1 or 2 evaluator processes run what ``civic alerts run`` runs (sharing
   the shards; the evaluator with the notification and frost-command hooks, then the delivery
   step, and the digest on the shard-0 holder, every ``CYCLE_INTERVAL_S``). Lag per reading =
   the end of the cycle of its shard's owner that evaluated it (its condition events and
   alerts committed) minus the reading's ``received_at`` (stored).
2. backfill: ``--days`` of 15-minute readings for ``--homes`` homes from the simulator's
   ``HomeModel``, loaded with COPY, then ``civic alerts backfill``'s work (``Evaluator.reset`` +
   one cycle) by one process holding every shard, then by two holding half each, timed.
"""

from __future__ import annotations

import argparse
import bisect
import cProfile
import io
import multiprocessing as mp
import os
import pstats
import random
import resource
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alerts.commands import CommandPolicy, plan_frost_commands
from alerts.notify import deliver_due, digest_step, notify_cycle
from alerts.service import CYCLE_INTERVAL_S, CycleReport, Evaluator, EvaluatorConfig, run_service
from alerts.shards import SHARD_LOCK, SHARDS, shard_of
from alerts.store import Conn
from common.services import LocalServices
from device_sim import generate_estate
from device_sim.models import HomeModel
from firmware_contracts import Reading
from store.db import connect, migrate
from store.readings import PartitionGuard, prepare_session, write_batch
from store.registry import parse_device_row, upsert_devices

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "bench_alerts"
STEP = timedelta(minutes=15)  # the homes' reporting interval
TICK_S = 0.2  # the loader commits a batch this often, like ingest's flush interval
TARGET_HOMES = 10_000  # the estate a council's backfill is sized for
TARGET_DAYS = 30
LOAD_BATCH = 20_000


@dataclass(frozen=True, slots=True)
class Estate:
    device_ids: tuple[str, ...]
    voids: tuple[bool, ...]
    uprns: tuple[str, ...]

    @property
    def subjects(self) -> dict[str, str]:
        """Device id -> the subject its shard is taken from (the home's UPRN)."""
        return dict(zip(self.device_ids, self.uprns, strict=True))


def fresh_database(admin: str) -> str:
    with connect(admin) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    url = admin.rsplit("/", 1)[0] + f"/{DATABASE}"
    migrate(url)
    return url


def register_homes(url: str, homes: int, seed: int) -> Estate:
    devices = [parse_device_row(row) for row in generate_estate(0, homes, seed)]
    with connect(url) as conn:
        upsert_devices(conn, devices)
    return Estate(
        tuple(d.device_id for d in devices),
        tuple(bool(d.void) for d in devices),
        tuple(d.uprn or d.device_id for d in devices),
    )


def readings_for(
    estate: Estate, start: datetime, rounds: Iterator[int] | range, seed: int
) -> Iterator[Reading]:
    """Every home's reading, round by round; home ``i`` reports ``i / n`` of a step into each
    round, so the stream is in time order (as devices on staggered schedules send it)."""
    models = [
        HomeModel.create(d, void, random.Random(seed + i))
        for i, (d, void) in enumerate(zip(estate.device_ids, estate.voids, strict=True))
    ]
    offset = STEP / len(models)
    for k in rounds:
        base = start + k * STEP
        for i, model in enumerate(models):
            ts = base + i * offset
            yield Reading(model.device_id, ts, seq=k, **model.reading(ts))


# -- live ------------------------------------------------------------------------------------


def loader(
    url: str, estate: Estate, start: datetime, rate: float, seconds: float, result: Any
) -> None:
    """Write readings at ``rate``/s in one batch per :data:`TICK_S`, through ``write_batch``."""
    stream = readings_for(estate, start, iter(range(10**9)), seed=7)
    guard = PartitionGuard()
    with connect(url) as conn:
        prepare_session(conn)
        began = time.monotonic()
        written = 0
        while (now := time.monotonic()) - began < seconds:
            due = int((now - began + TICK_S) * rate)
            batch = [next(stream) for _ in range(max(due - written, 0))]
            if batch:
                write_batch(conn, batch, [], partitions=guard)
                written += len(batch)
            time.sleep(max(0.0, began + (written / rate) - time.monotonic()))
        result.put({"written": written, "seconds": time.monotonic() - began})


def evaluator_process(url: str, stop: Any, result: Any) -> None:
    """What ``civic alerts run`` runs (without MQTT), sharing the shards with the others;
    reports each cycle's (shards, cutoff, end time, readings)."""
    policy = CommandPolicy()

    def frost(conn: Conn, cycle: Any) -> None:
        plan_frost_commands(conn, cycle, policy=policy)

    def deliver(conn: Conn, now: datetime) -> None:
        deliver_due(conn, smtp=None, now=now)

    cycles: list[tuple[tuple[int, ...], datetime, float, int]] = []

    def on_cycle(report: CycleReport) -> None:
        if report.cutoff is not None:
            cycles.append((report.shards, report.cutoff, time.time(), report.readings))

    config = EvaluatorConfig(lateness_allowance=timedelta(0))
    run_service(
        url,
        lambda conn: Evaluator(conn, config, hooks=[notify_cycle, frost], share=True),
        [deliver],
        lead_steps=[digest_step],
        stop=_EventFlag(stop),
        on_cycle=on_cycle,
    )
    result.put(cycles)


class _EventFlag(threading.Event):
    """A process-shared event seen through ``threading.Event``'s ``wait``."""

    def __init__(self, shared: Any) -> None:
        super().__init__()
        self.shared = shared

    def is_set(self) -> bool:
        return bool(self.shared.is_set())

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self.shared.wait(timeout))


def _shard_holders(url: str) -> int:
    with connect(url) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT pid) AS n, count(*) AS shards FROM pg_locks"
            " WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid = %s::oid"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (SHARD_LOCK,),
        ).fetchone()
    return int(row["n"]) if row and row["shards"] == SHARDS else 0


def _caught_up(url: str) -> bool:
    with connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT max(ts) FROM readings) AS newest,"
            " (SELECT min(cutoff) FROM alert_shards) AS cutoff,"
            " (SELECT count(*) FROM alert_shards) AS shards"
        ).fetchone()
    return bool(row and row["shards"] == SHARDS and row["cutoff"] >= row["newest"])


def live(url: str, homes: int, rate: float, seconds: float, evaluators: int) -> dict[str, Any]:
    with connect(url) as conn:
        conn.execute(
            "TRUNCATE readings, alerts, condition_events, alert_checkpoints, alert_evaluator,"
            " alert_shards, notifications, commands, devices CASCADE"
        )
    estate = register_homes(url, homes, seed=3)
    shard_of_device = {d: shard_of(u) for d, u in estate.subjects.items()}
    # Data time runs ahead of the wall clock's pace but stays behind it: it starts a week ago.
    start = (datetime.now(UTC) - timedelta(days=7)).replace(second=0, microsecond=0)
    stop = mp.Event()
    results: mp.Queue[Any] = mp.Queue()
    procs = [
        mp.Process(target=evaluator_process, args=(url, stop, results)) for _ in range(evaluators)
    ]
    for p in procs:
        p.start()
    while _shard_holders(url) != evaluators:  # each has taken its share
        time.sleep(0.2)
    loaded_q: mp.Queue[dict[str, Any]] = mp.Queue()
    proc = mp.Process(target=loader, args=(url, estate, start, rate, seconds, loaded_q))
    proc.start()
    loaded = loaded_q.get(timeout=seconds + 120)
    proc.join()
    while not _caught_up(url):
        time.sleep(0.2)
    stop.set()
    cycles = [c for _ in procs for c in results.get(timeout=120)]
    for p in procs:
        p.join()
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT device_id, ts, extract(epoch FROM received_at)::float8 AS received"
            " FROM readings"
        ).fetchall()
        events = conn.execute("SELECT count(*) AS n FROM condition_events").fetchone()
        alerts = conn.execute("SELECT count(*) AS n FROM alerts").fetchone()
    # Per shard, its cycles in order: a reading's lag ends with the first cycle of its
    # shard's owner whose cutoff reached it.
    by_shard: dict[int, list[tuple[datetime, float]]] = {}
    for shards, cutoff, ended, _ in sorted(cycles, key=lambda c: c[2]):
        for shard in shards:
            by_shard.setdefault(shard, []).append((cutoff, ended))
    lags = []
    for r in rows:
        series = by_shard.get(shard_of_device[r["device_id"]], [])
        i = bisect.bisect_left([c for c, _ in series], r["ts"])
        if i < len(series):
            lags.append(series[i][1] - r["received"])
    lags.sort()
    busy = [c for c in cycles if c[3]]
    cutoffs = [c[1] for c in cycles]
    return {
        "offered": rate,
        "evaluators": evaluators,
        "homes": homes,
        "written": loaded["written"],
        "achieved": loaded["written"] / loaded["seconds"],
        "evaluated": sum(c[3] for c in busy),
        "cycles": len(busy),
        "per_cycle": statistics.median([c[3] for c in busy]) if busy else 0,
        "p50": statistics.median(lags),
        "p99": lags[int(len(lags) * 0.99)],
        "max": lags[-1],
        "events": events["n"] if events else 0,
        "alerts": alerts["n"] if alerts else 0,
        "data_hours": (max(cutoffs) - min(cutoffs)).total_seconds() / 3600 if cutoffs else 0,
    }


# -- backfill ---------------------------------------------------------------------------------


def backfill(
    url: str, homes: int, days: int, processes: Sequence[int], profile: bool
) -> dict[str, Any]:
    estate = register_homes(url, homes, seed=5)
    end = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    rounds = int(timedelta(days=days) / STEP)
    guard = PartitionGuard()
    copy_s = 0.0
    began = time.perf_counter()
    total = 0
    with connect(url) as conn:
        prepare_session(conn)
        batch: list[Reading] = []
        for reading in readings_for(estate, start, range(rounds), seed=11):
            batch.append(reading)
            if len(batch) == LOAD_BATCH:
                t = time.perf_counter()
                total += write_batch(conn, batch, [], partitions=guard).stored
                copy_s += time.perf_counter() - t
                batch = []
        t = time.perf_counter()
        total += write_batch(conn, batch, [], partitions=guard).stored
        copy_s += time.perf_counter() - t
        conn.execute("ANALYZE readings")
    load_s = time.perf_counter() - began
    print(
        f"backfill: loaded {total:,} readings in {load_s:.1f} s (COPY {copy_s:.1f} s)", flush=True
    )

    rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    runs = [evaluate_split(url, start, n, profile and n == processes[0]) for n in processes]
    rate = runs[0]["readings"] / runs[0]["eval_s"]
    return {
        "homes": homes,
        "days": days,
        "readings": runs[0]["readings"],
        "load_s": load_s,
        "copy_rate": total / copy_s,
        "runs": runs,
        "rate": rate,
        "target_eval_min": TARGET_HOMES * TARGET_DAYS * (timedelta(days=1) / STEP) / rate / 60,
        "load_rss_mb": rss_before_mb,
    }


def backfill_part(url: str, start: datetime, shards: list[int], profile: bool, out: Any) -> None:
    """``civic alerts backfill``'s work for some shards (``Evaluator.reset`` + one cycle)."""
    profiler = cProfile.Profile() if profile else None
    with connect(url) as conn:
        evaluator = Evaluator(conn, EvaluatorConfig(), shards=shards)
        began = time.perf_counter()
        evaluator.reset(start)
        if profiler is not None:
            profiler.enable()
        report = evaluator.run_cycle(notify=False)
        if profiler is not None:
            profiler.disable()
        eval_s = time.perf_counter() - began
        evaluator.close()
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
        print(text.getvalue(), flush=True)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put({"readings": report.readings, "events": report.events, "s": eval_s, "rss": rss_mb})


def evaluate_split(url: str, start: datetime, processes: int, profile: bool) -> dict[str, Any]:
    """The backfill split across ``processes`` (contiguous ranges of shards), timed from the
    common start to the last one's end."""
    out: mp.Queue[dict[str, Any]] = mp.Queue()
    parts = [list(range(SHARDS))[k::processes] for k in range(processes)]
    procs = [
        mp.Process(target=backfill_part, args=(url, start, part, profile, out)) for part in parts
    ]
    began = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    eval_s = time.perf_counter() - began
    for p in procs:
        p.join()
    with connect(url) as conn:
        alerts = conn.execute("SELECT count(*) AS n FROM alerts").fetchone()
    run = {
        "processes": processes,
        "readings": sum(r["readings"] for r in results),
        "events": sum(r["events"] for r in results),
        "alerts": alerts["n"] if alerts else 0,
        "eval_s": eval_s,
        "peak_rss_mb": max(r["rss"] for r in results),
    }
    print(f"backfill: {run}", flush=True)
    return run


# -- report -----------------------------------------------------------------------------------


def _scaling(lives: list[dict[str, Any]]) -> list[str]:
    """For each offered rate measured with 1 and 2 evaluators: p99(1) / p99(2)."""
    out = []
    for rate in sorted({r["offered"] for r in lives}, reverse=True):
        by_n = {r["evaluators"]: r for r in lives if r["offered"] == rate}
        if 1 in by_n and 2 in by_n:
            one, two = by_n[1], by_n[2]
            out.append(
                f"- {rate:,.0f} readings/s: lag p99 {one['p99']:.2f} s with one evaluator, "
                f"{two['p99']:.2f} s with two (x{one['p99'] / two['p99']:.2f}); p50 "
                f"{one['p50']:.2f} s -> {two['p50']:.2f} s (x{one['p50'] / two['p50']:.2f})."
            )
    return out


def live_markdown(argv: Sequence[str], lives: list[dict[str, Any]]) -> str:
    lines = [
        "# Alert evaluation throughput",
        "",
        f"Command: `.venv/bin/python -m bench.alerts_throughput {' '.join(argv)}`",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores (shared with "
        "other work on this machine: figures are from one run and noisy): loader, evaluators "
        "and PostgreSQL on this machine. Readings are the device simulator's `HomeModel` "
        "(temperature, RH, battery, CO2 on some homes), every rule a home has.",
        "",
        "## Keeping up with ingest, with one and two evaluators",
        "",
        "A loader process writes readings through `store.readings.write_batch` (the COPY + merge "
        f"+ commit path ingest uses; MQTT is left out: `bench/ingest.py` measures it) in one "
        f"batch every {TICK_S} s, while one or two evaluator processes run `civic alerts run`'s "
        "loop (evaluator with the notification and frost-command hooks, delivery step; the "
        f"digest on the shard-0 holder) every {CYCLE_INTERVAL_S} s, sharing the "
        f"{SHARDS} shards (each takes its fair share before the loader starts). "
        "Each home reports every 15 minutes of data time, staggered, "
        "with data time starting a week ago so it runs faster than the wall clock. Lag = end of "
        "the cycle of the reading's shard owner that evaluated it (its condition events and "
        "alert changes committed) minus the reading's `received_at`. Lateness allowance 0 "
        "here: the deployed default (`CIVIC_ALERTS_LATENESS_S`, 120 s of data time) adds "
        "itself to the lag by design. At 10,000 readings/s on 10,000 homes data time runs "
        "about 900 times faster than in service: each detector reaches its 6-hour checkpoint "
        "interval every half minute, a write load service would see 900 times less often.",
        "",
        "| offered readings/s | evaluators | homes | achieved readings/s | evaluated "
        "| busy cycles | median readings/cycle | lag p50 s | lag p99 s | lag max s "
        "| data hours | condition events | alerts |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in lives:
        lines.append(
            f"| {r['offered']:,.0f} | {r['evaluators']} | {r['homes']:,} | "
            f"{r['achieved']:,.0f} | {r['evaluated']:,} | {r['cycles']} | "
            f"{r['per_cycle']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.2f} | "
            f"{r['data_hours']:.1f} | {r['events']:,} | {r['alerts']:,} |"
        )
    scaling = _scaling(lives)
    if scaling:
        lines += ["", "Scaling from one evaluator to two (same run):", "", *scaling]
    return "\n".join(lines) + "\n"


def backfill_markdown(argv: Sequence[str], back: dict[str, Any]) -> str:
    b = back
    one, last = b["runs"][0], b["runs"][-1]
    lines = [
        "# Alert backfill, in one process and split across several",
        "",
        f"Command: `.venv/bin/python -m bench.alerts_throughput {' '.join(argv)}`",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores (shared with "
        "other work on this machine: figures are from one run and noisy); PostgreSQL on this "
        "machine.",
        "",
        f"{b['days']} days of 15-minute readings for **{b['homes']:,} homes** "
        f"({b['readings']:,} readings), loaded with COPY (`write_batch`) in "
        f"{b['load_s']:.1f} s ({b['copy_rate']:,.0f} readings/s), then "
        "`civic alerts backfill`'s work (`Evaluator.reset` + one cycle, no notifications) "
        f"by {one['processes']} process(es) sharing the shards"
        + (f", then by {last['processes']} (every other shard each)" if last is not one else "")
        + ". Readings stream from a server-side cursor device by "
        "device, so memory is the detectors' state plus one batch, not the history.",
        "",
        "| processes | readings | evaluate s (wall, all processes) | readings/s "
        "| condition events | alerts | peak RSS per process MB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in b["runs"]:
        lines.append(
            f"| {run['processes']} | {run['readings']:,} | {run['eval_s']:.1f} | "
            f"{run['readings'] / run['eval_s']:,.0f} | {run['events']:,} | {run['alerts']:,} | "
            f"{run['peak_rss_mb']:,.0f} |"
        )
    if last is not one:
        lines += [
            "",
            f"{last['processes']} processes ran x{one['eval_s'] / last['eval_s']:.2f} as fast "
            f"as {one['processes']}.",
        ]
    if b["homes"] * b["days"] < TARGET_HOMES * TARGET_DAYS:
        lines.append(
            f"Smaller than {TARGET_HOMES:,} homes x {TARGET_DAYS} days: linear extrapolation "
            f"from the first row's rate gives {b['target_eval_min']:.0f} min for them (an "
            "estimate, not a measurement)."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--rates",
        type=float,
        nargs="*",
        default=[10_000, 2_000],
        help="offered readings/s for the live runs",
    )
    parser.add_argument("--live-seconds", type=float, default=40)
    parser.add_argument(
        "--evaluators", type=int, nargs="*", default=[1, 2], help="evaluator counts to run live"
    )
    parser.add_argument("--live-homes", type=int, default=TARGET_HOMES)
    parser.add_argument("--homes", type=int, default=TARGET_HOMES, help="homes in the backfill")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help="profile the backfill cycle")
    parser.add_argument(
        "--backfill-processes",
        type=int,
        nargs="+",
        default=[1, 2],
        help="process counts the backfill is timed with, in order",
    )
    parser.add_argument("--no-live", action="store_true", help="skip the live runs")
    parser.add_argument("--no-backfill", action="store_true", help="skip the backfill")
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    args = parser.parse_args()

    state = LocalServices(ROOT / ".civic" / "bench").up()
    url = fresh_database(state.database_url.rsplit("/", 1)[0] + "/postgres")
    print(f"# python -m bench.alerts_throughput {' '.join(sys.argv[1:])}", flush=True)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    if not args.no_backfill:
        back = backfill(url, args.homes, args.days, args.backfill_processes, args.profile)
        print(back, flush=True)
        _write(results / "alerts_backfill.md", backfill_markdown(sys.argv[1:], back), args)
    if not args.no_live:
        lives = []
        for rate in args.rates:
            for evaluators in args.evaluators:
                lives.append(live(url, args.live_homes, rate, args.live_seconds, evaluators))
                print(lives[-1], flush=True)
        _write(results / "alerts_throughput.md", live_markdown(sys.argv[1:], lives), args)


def _write(path: Path, text: str, args: argparse.Namespace) -> None:
    print("\n" + text, flush=True)
    if not args.no_write:
        path.write_text(text)


if __name__ == "__main__":
    main()
