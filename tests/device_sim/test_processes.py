"""``civic sim --processes N``: the estate dealt out to N publishers, one combined report."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from civic.cli import main
from device_sim import SimReport, generate_estate
from device_sim.processes import merge_reports, split_estate
from store.db import connect
from tests.ingest.helpers import register_estate, start_worker, wait_for


def test_the_estate_is_dealt_out_once_each_with_bins_and_homes_in_every_part() -> None:
    estate = generate_estate(10, 5, seed=3)
    parts = split_estate(estate, 3)
    ids = [row["device_id"] for part in parts for row in part]
    assert sorted(ids) == sorted(row["device_id"] for row in estate)
    assert all({row["kind"] for row in part} == {"bin", "env"} for part in parts)
    with pytest.raises(ValueError, match="at least 1"):
        split_estate(estate, 0)
    with pytest.raises(ValueError, match="some would have none"):
        split_estate(estate, 16)


def test_reports_add_up_and_the_wall_time_is_the_slowest_part() -> None:
    a = SimReport(published=10, acked=10, wall_s=2.0, duplicates=1, keys={("a", "t1")})
    a.readings["bin"] = 9
    b = SimReport(published=5, acked=4, wall_s=3.0, late=2, keys={("b", "t1")})
    b.readings["bin"] = 3
    b.malformed["schema"] = 1
    total = merge_reports([a, b])
    assert (total.published, total.acked, total.duplicates, total.late) == (15, 14, 1, 2)
    assert total.readings == Counter(bin=12)
    assert total.malformed == Counter(schema=1)
    assert total.wall_s == 3.0
    assert total.keys == {("a", "t1"), ("b", "t1")}
    assert total.as_dict()["rate_msg_s"] == 5.0


def test_three_simulator_processes_publish_every_device_once_with_the_sim_account(
    civic_env, capsys
) -> None:
    url, mqtt = civic_env
    estate = register_estate(url, bins=24, homes=9)
    worker, stop, thread = start_worker(url, mqtt)
    capsys.readouterr()
    code = main(
        [
            "sim",
            "--bins",
            "24",
            "--homes",
            "9",
            "--interval",
            "5m",
            "--duration",
            "2h",
            "--speed",
            "100000",
            "--processes",
            "3",
            "--client-id",
            f"sim-{mqtt.prefix}",
        ]
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert summary["processes"] == 3
    ticks = 24  # 2 h of 5-minute reports
    assert summary["readings_total"] == len(estate) * ticks
    assert summary["acked"] == summary["published"]
    wait_for(
        lambda: worker.metrics.snapshot()["stored"] >= summary["readings_total"],
        60,
        "ingest to store every reading",
    )
    stop.set()
    thread.join_checked(30)
    with connect(url) as conn:
        rows = conn.execute("SELECT device_id, count(*) AS n FROM readings GROUP BY 1").fetchall()
    # Every device was published by exactly one process: none missing, none twice.
    assert {r["device_id"]: r["n"] for r in rows} == {row["device_id"]: ticks for row in estate}


def test_more_processes_than_devices_is_refused_clearly(civic_env, capsys) -> None:
    assert main(["sim", "--bins", "2", "--homes", "0", "--processes", "3"]) == 2
    assert "--processes" in capsys.readouterr().err


@pytest.mark.parametrize("processes", [1, 2])
def test_the_truth_file_and_round_sheet_are_written_from_one_process_or_several(
    civic_env, tmp_path, capsys, processes
) -> None:
    """``--truth`` labels devices of the simulated estate only; ``--round-sheet`` lists the
    collections of its bins (crews empty bins, not homes) in the sheet's columns."""
    _url, mqtt = civic_env
    truth, sheet = tmp_path / "truth.jsonl", tmp_path / "rounds.csv"
    estate = generate_estate(8, 40, seed=1)
    argv = ["sim", "--bins", "8", "--homes", "40", "--interval", "6h", "--duration", "15d"]
    argv += ["--speed", "10000000", "--processes", str(processes), "--client-id", mqtt.prefix]
    capsys.readouterr()
    assert main([*argv, "--truth", str(truth), "--round-sheet", str(sheet)]) == 0
    err = capsys.readouterr().err
    labels = [json.loads(line) for line in truth.read_text().splitlines()]
    rows = sheet.read_text().splitlines()
    assert f"truth: {len(labels)} labels -> {truth}" in err
    assert f"round sheet: {len(rows) - 1} collections -> {sheet}" in err
    devices = {row["device_id"]: row["kind"] for row in estate}
    assert labels, "forty homes over a fortnight carry some label (e.g. a week away)"
    assert {label["device_id"] for label in labels} <= set(devices)
    assert rows[0] == "device_id,ts,crew"
    assert len(rows) > 8, "two weeks of weekly rounds empty each bin at least once"
    assert {devices[row.split(",")[0]] for row in rows[1:]} == {"bin"}
