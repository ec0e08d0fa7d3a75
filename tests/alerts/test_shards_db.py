"""Several evaluators share the estate by shards: each shard has exactly one live owner, a
dead one's shards are taken over from their checkpoints, and the result is a backfill's."""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.readings import FillForecast
from alerts.service import (
    Evaluator,
    EvaluatorBusyError,
    SideInputs,
    fit_fill_forecasts,
    run_service,
)
from alerts.shards import ALL_SHARDS, SHARD_LOCK, SHARDS, SharedShards, fair_share, plan, shard_of
from alerts.store import load_subjects
from civic.cli import main
from store.db import connect
from store.registry import Device, upsert_devices
from tests.alerts.test_service_db import (
    TRACES,
    _bin_fleet,
    _quiet_config,
    backfill,
    by_day,
    insert,
    register,
    snapshot,
    trace,
)

ROOT = Path(__file__).resolve().parents[2]
BINS = ("bin-peer-0", "bin-peer-1", "bin-peer-2", "bin-peer-3", "bin-frozen")


def test_python_and_sql_put_every_subject_in_the_same_shard(database_url: str) -> None:
    subjects = [f"{100_000_000_000 + 7919 * i}" for i in range(1500)]
    subjects += [f"bin-{i:05d}" for i in range(1500)] + ["", "ü-ñ", "x" * 64]
    with connect(database_url) as conn:
        rows = conn.execute(
            "SELECT s, alert_shard(s) AS shard FROM unnest(%s::text[]) AS s", (subjects,)
        ).fetchall()
    assert {r["s"]: r["shard"] for r in rows} == {s: shard_of(s) for s in subjects}
    # Spread: every shard gets some of 3,000 subjects, none more than three times its share.
    counts = [sum(1 for s in subjects if shard_of(s) == k) for k in range(SHARDS)]
    assert min(counts) > 0
    assert max(counts) < 3 * len(subjects) / SHARDS


def test_the_plan_reaches_a_fair_share() -> None:
    assert fair_share(1) == SHARDS
    assert fair_share(3) == 22
    assert plan(range(64), [], 2) == ((), tuple(range(32, 64)))
    assert plan(range(10), list(range(40, 64)), 2) == (tuple(range(40, 62)), ())
    assert plan(range(22), list(range(40, 64)), 3) == ((), ())


def _holders(conn: Any) -> dict[int, list[int]]:
    """Shard -> the backend pids holding its lock, as PostgreSQL sees them."""
    rows = conn.execute(
        "SELECT objid::int AS shard, pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND objsubid = 2 AND classid = %s::oid"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (SHARD_LOCK,),
    ).fetchall()
    out: dict[int, list[int]] = {}
    for r in rows:
        out.setdefault(r["shard"], []).append(r["pid"])
    return out


def _until(condition: Callable[[], bool], *, tries: int = 300, pause_s: float = 0.1) -> None:
    for _ in range(tries):
        if condition():
            return
        time.sleep(pause_s)
    raise AssertionError("condition never held")


def test_each_shard_has_exactly_one_owner_and_newcomers_get_a_fair_share(
    database_url: str,
) -> None:
    conns = [connect(database_url) for _ in range(4)]
    try:
        members = [SharedShards(c) for c in conns[:2]]
        for _ in range(3):
            for member, conn in zip(members, conns, strict=False):
                _, excess = member.rebalance(conn)
                member.release(conn, excess)
        assert [len(m.owned) for m in members] == [32, 32]
        assert members[0].owned | members[1].owned == ALL_SHARDS
        holders = _holders(conns[3])
        assert sorted(holders) == list(range(SHARDS))
        assert all(len(pids) == 1 for pids in holders.values())

        members.append(SharedShards(conns[2]))  # a third evaluator starts
        for _ in range(3):
            for member, conn in zip(members, conns, strict=False):
                _, excess = member.rebalance(conn)
                member.release(conn, excess)
        assert sorted(len(m.owned) for m in members) == [20, 22, 22]
        assert frozenset().union(*(m.owned for m in members)) == ALL_SHARDS
        assert all(len(pids) == 1 for pids in _holders(conns[3]).values())

        conns[0].close()  # the first dies: its session, and so its locks, end with it

        def survivors_hold_everything() -> bool:
            for member, conn in zip(members[1:], conns[1:3], strict=True):
                _, excess = member.rebalance(conn)
                member.release(conn, excess)
            return members[1].owned | members[2].owned == ALL_SHARDS

        _until(survivors_hold_everything)
        assert sorted(len(m.owned) for m in members[1:]) == [32, 32]
    finally:
        for conn in conns:
            conn.close()


def _register_bins(url: str) -> None:
    devices = [
        Device(
            d,
            "bin",
            52.63,
            -1.13,
            patch="north",
            waste_stream="general",
            capacity_l=240.0,
            threshold_pct=80.0,
        )
        for d in BINS
    ]
    with connect(url) as conn:
        upsert_devices(conn, devices)


def _estate(url: str) -> list[Any]:
    """Three homes' traces and five bins of one patch whose peers sit in other shards."""
    traces = [trace(name) for name in TRACES]
    register(url, traces)
    _register_bins(url)
    homes = [item for t in traces for item in t.items]
    start = min(r.ts for r in homes).replace(hour=0, minute=30)
    assert len({shard_of(d) for d in BINS}) == len(BINS)
    return sorted([*homes, *_bin_fleet(start, hours=5 * 24)], key=lambda r: r.ts)


def _cycle_until_caught_up(evaluators: list[Evaluator], url: str, worked: dict[int, int]) -> None:
    """Cycle every evaluator until each shard's clock stands at the newest reading; counts
    the readings each evaluated in ``worked``."""
    for _ in range(20):
        for evaluator in evaluators:
            report = evaluator.run_cycle(notify=False)
            worked[id(evaluator)] = worked.get(id(evaluator), 0) + report.readings
        with connect(url) as conn:
            row = conn.execute(
                "SELECT count(DISTINCT cutoff) AS clocks, count(*) AS shards,"
                " (SELECT max(ts) FROM readings) AS newest FROM alert_shards"
            ).fetchone()
            clock = conn.execute("SELECT min(cutoff) AS c FROM alert_shards").fetchone()
        assert row is not None
        assert clock is not None
        if row["clocks"] == 1 and row["shards"] == SHARDS and clock["c"] == row["newest"]:
            return
    raise AssertionError("the evaluators never caught up")


def test_two_evaluators_and_a_takeover_give_the_backfill_result(database_url: str) -> None:
    config = dataclasses.replace(
        _quiet_config(), lateness_allowance=timedelta(0), checkpoint_every=timedelta(days=2)
    )
    readings = _estate(database_url)
    days = by_day(readings)
    first, second = connect(database_url), connect(database_url)
    evaluators = [Evaluator(first, config, share=True), Evaluator(second, config, share=True)]
    worked: dict[int, int] = {}
    for index, day in enumerate(days):
        insert(database_url, day)
        if index == len(days) // 2:
            # The first dies between cycles without writing its detectors: its shards'
            # newest copies are up to two days of data old.
            assert len(evaluators[0].shards) == len(evaluators[1].shards) == SHARDS // 2
            first.close()
            evaluators = evaluators[1:]
            survivor = evaluators[0]
            _until(functools.partial(_takes_all, survivor))
        _cycle_until_caught_up(evaluators, database_url, worked)
        if index == 0:
            with (
                pytest.raises(EvaluatorBusyError),  # a backfill cannot start while they run
                connect(database_url) as third,
            ):
                Evaluator(third, config)
    assert len(worked) == 2
    assert all(worked.values()), worked
    evaluators[0].close()
    second.close()
    live = snapshot(database_url)
    assert live["events"]
    assert live["alerts"]
    assert {e[0] for e in live["events"] if e[1] == "sensor_stuck"} == {"bin-frozen"}
    backfill(database_url, config, since=readings[0].ts)
    assert snapshot(database_url) == live


def _takes_all(evaluator: Evaluator) -> bool:
    evaluator.rebalance()
    return evaluator.shards == ALL_SHARDS


def _start_evaluator(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CIVIC_DATABASE_URL": url,
        "CIVIC_ALERTS_OVERDUE_CHECK_S": "0",  # 2025's statutory dates have all passed
    }
    return subprocess.Popen(
        [sys.executable, "-m", "civic.cli", "alerts", "run", "--no-mqtt", "--interval", "0.2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        start_new_session=True,
    )


def test_an_evaluator_process_killed_mid_stream_loses_and_repeats_nothing(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CIVIC_DATABASE_URL", database_url)
    monkeypatch.setenv("CIVIC_ALERTS_OVERDUE_CHECK_S", "0")
    readings = _estate(database_url)
    days = by_day(readings)
    procs = [_start_evaluator(database_url, tmp_path / f"eval{k}.log") for k in range(2)]
    watcher = connect(database_url)

    def pids() -> set[int]:
        return {p for pids in _holders(watcher).values() for p in pids}

    def caught_up_with(newest: Any) -> Callable[[], bool]:
        # The service's lateness allowance (120 s of data time) holds the clock back.
        def check() -> bool:
            row = watcher.execute(
                "SELECT count(*) AS n FROM alert_shards WHERE cutoff = %s",
                (newest - timedelta(seconds=120),),
            ).fetchone()
            return row is not None and row["n"] == SHARDS

        return check

    try:
        _until(lambda: len(pids()) == 2 and len(_holders(watcher)) == SHARDS)
        for index, day in enumerate(days):
            insert(database_url, day)
            if index == len(days) // 2:
                os.killpg(procs[0].pid, signal.SIGKILL)  # mid-cycle, most likely
                procs[0].wait()
            _until(caught_up_with(max(r.ts for r in day)), tries=1200)
        assert len(pids()) == 1
        assert len(_holders(watcher)) == SHARDS
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    _until(lambda: not pids())  # the server has ended the killed sessions
    watcher.close()
    live = snapshot(database_url)
    assert live["events"]
    assert live["audit"]
    assert main(["alerts", "backfill", "--since", readings[0].ts.isoformat()]) == 0
    assert snapshot(database_url) == live


def test_an_evaluator_whose_session_is_cut_reconnects_and_takes_its_shards_again(
    database_url: str,
) -> None:
    stop = threading.Event()
    service = threading.Thread(
        target=run_service,
        args=(database_url, lambda conn: Evaluator(conn, share=True)),
        kwargs={"stop": stop, "interval_s": 0.1},
    )
    service.start()
    try:
        with connect(database_url) as watcher:
            _until(lambda: len(_holders(watcher)) == SHARDS)
            (pid,) = {p for pids in _holders(watcher).values() for p in pids}
            watcher.execute("SELECT pg_terminate_backend(%s)", (pid,))

            def held_again() -> bool:
                pids = {p for pids in _holders(watcher).values() for p in pids}
                return len(_holders(watcher)) == SHARDS and pids not in ({pid}, set())

            _until(held_again)
    finally:
        stop.set()
        service.join()
    assert not service.is_alive()


def test_the_daily_fill_forecast_is_fitted_once_and_read_by_every_evaluator(
    database_url: str,
) -> None:
    _register_bins(database_url)
    start = datetime(2025, 11, 3, 0, 30, tzinfo=UTC)
    insert(database_url, _bin_fleet(start, hours=3 * 24))
    at = datetime(2025, 11, 5, tzinfo=UTC)  # an instant of the daily forecast
    horizon = timedelta(hours=24)
    halves = (BINS[:2], BINS[2:])
    with connect(database_url) as conn:
        subjects = load_subjects(conn)
        expected = {f.device_id: f for f in fit_fill_forecasts(conn, at, horizon)}
    assert set(expected) == set(BINS)
    conns = [connect(database_url), connect(database_url)]
    inputs = [
        SideInputs(c, subjects, timedelta(hours=48), horizon, own=half)
        for c, half in zip(conns, halves, strict=True)
    ]
    got: dict[str, Any] = {}

    def merged(k: int) -> None:
        for device_id in halves[k]:
            got[device_id] = inputs[k].merge(device_id, [], at - timedelta(hours=1), at)

    def second_cycle() -> None:
        with conns[1].transaction():
            merged(1)

    with conns[0].transaction():  # the first evaluator's cycle (a backfill's, say) stays open
        merged(0)
        second = threading.Thread(target=second_cycle)
        second.start()
        second.join(timeout=60)
        assert not second.is_alive(), "the second evaluator waited for the first's cycle"
    for c in conns:
        c.close()
    forecasts = {d: [i for i in items if isinstance(i, FillForecast)] for d, items in got.items()}
    assert forecasts == {d: [expected[d]] for d in BINS}
    with connect(database_url) as conn:
        instants = conn.execute("SELECT at, horizon, bins FROM bin_forecast_instants").fetchall()
    assert [tuple(r.values()) for r in instants] == [(at, horizon, len(BINS))]
