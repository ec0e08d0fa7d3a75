"""``civic devices import`` and ``civic readings import``: all or nothing, clear errors."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from civic.cli import main
from firmware_contracts import parse_rfc3339
from store.db import connect

HEADER = "device_id,kind,lat,lon,uprn,address,patch,void,waste_stream,capacity_l,threshold_pct,ward"
GOOD = [
    "bin-1,bin,52.63,-1.13,,,,,general,240,85,Castle",
    "bin-2,bin,52.64,-1.12,,,,,recycling,1100,,Abbey",
    'env-1,env,52.62,-1.14,100030000001,"1 High Street, Leicester",north,true,,,,Castle',
]


def _write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _count(url: str, table: str) -> int:
    with connect(url) as conn:
        return int(conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"])


def test_devices_import_then_update(civic_env, tmp_path: Path, capsys) -> None:
    url, _ = civic_env
    assert main(["devices", "import", str(_write(tmp_path, "d.csv", [HEADER, *GOOD]))]) == 0
    assert "3 added, 0 updated" in capsys.readouterr().out
    changed = [GOOD[0].replace(",85,", ",70,"), *GOOD[1:]]
    assert main(["devices", "import", str(_write(tmp_path, "d2.csv", [HEADER, *changed]))]) == 0
    assert "0 added, 3 updated" in capsys.readouterr().out
    with connect(url) as conn:
        rows = {r["device_id"]: r for r in conn.execute("SELECT * FROM devices")}
    assert rows["bin-1"]["threshold_pct"] == 70
    assert rows["bin-2"]["threshold_pct"] == 80  # the default when the cell is empty
    assert rows["env-1"]["void"] is True
    assert rows["env-1"]["uprn"] == "100030000001"
    assert rows["env-1"]["extra"] == {"ward": "Castle"}


def test_devices_import_reports_every_bad_row_and_imports_nothing(civic_env, tmp_path, capsys):
    url, _ = civic_env
    bad = [
        HEADER,
        GOOD[0],
        "bin-3,bin,95,-1.1,,,,,general,240,80,",  # latitude out of range
        "env-2,env,52.6,-1.1,,,north,false,,,,",  # home without UPRN
        "bin-4,lorry,52.6,-1.1,,,,,general,240,80,",  # unknown kind
        GOOD[0],  # repeated id
    ]
    assert main(["devices", "import", str(_write(tmp_path, "bad.csv", bad))]) == 2
    err = capsys.readouterr().err
    assert "line 3: lat must be between -90 and 90" in err
    assert "line 4: uprn is required" in err
    assert "line 5: kind must be 'bin' or 'env'" in err
    assert "line 6: device_id bin-1 repeats line 2" in err
    assert _count(url, "devices") == 0


def test_devices_import_missing_header_column(civic_env, tmp_path, capsys) -> None:
    path = _write(tmp_path, "h.csv", ["device_id,kind,lat,lon", "bin-1,bin,52,-1"])
    assert main(["devices", "import", str(path)]) == 2
    assert "header is missing column(s): uprn" in capsys.readouterr().err


@pytest.fixture
def registered(civic_env, tmp_path: Path) -> str:
    url, _ = civic_env
    assert main(["devices", "import", str(_write(tmp_path, "d.csv", [HEADER, *GOOD]))]) == 0
    return url


def test_readings_import_all_or_nothing(registered: str, tmp_path: Path, capsys) -> None:
    rows = [
        "device_id,ts,fill_pct,temp_c,rh_pct",
        "bin-1,2026-01-05T10:00:00Z,40,5,",
        "bin-1,2026-01-05T11:00:00+01:00,41,5,",  # the same instant as above: a duplicate
        "bin-2,2026-01-05T10:00:00Z,140,5,",  # out of range
        "bin-9,2026-01-05T10:00:00Z,10,5,",  # not registered
        "env-1,2026-01-05T10:00:00Z,,12.5,81",
    ]
    path = _write(tmp_path, "r.csv", rows)
    assert main(["readings", "import", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 4: out_of_range" in err
    assert "line 5: unknown_device" in err
    assert _count(registered, "readings") == 0

    assert main(["readings", "import", "--skip-invalid", str(path)]) == 0
    out = capsys.readouterr().out
    assert "rows: 5; stored: 2; duplicates: 1; dead-lettered: 2" in out
    assert _count(registered, "readings") == 2
    with connect(registered) as conn:
        reasons = sorted(r["reason"] for r in conn.execute("SELECT reason FROM deadletters"))
    assert reasons == ["out_of_range", "unknown_device"]


def test_export_readings_window_csv_and_json(registered: str, tmp_path: Path, capsys) -> None:
    rows = (
        ["device_id,ts,fill_pct,rh_pct,temp_c,battery_v,co2_ppm,tilt_deg,rssi_dbm,seq"]
        + [f"bin-1,2026-01-05T{h:02d}:00:00Z,{h},,,,,,," for h in range(10)]
        # Every value distinct, so a column out of place shows.
        + ["env-1,2026-01-05T03:30:00Z,,70.5,14.2,3.4,812,2.5,-97,42"]
    )
    assert main(["readings", "import", str(_write(tmp_path, "r.csv", rows))]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "export",
                "readings",
                "--since",
                "2026-01-05T02:00:00Z",
                "--until",
                "2026-01-05T05:00:00Z",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "device_id,ts,fill_pct,temp_c,battery_v,rh_pct,co2_ppm,tilt_deg,rssi_dbm,"
        "seq,uprn,received_at"
    )
    table = list(csv.reader(lines[1:]))
    assert [r[:2] for r in table] == [
        ["bin-1", "2026-01-05T02:00:00Z"],
        ["bin-1", "2026-01-05T03:00:00Z"],
        ["env-1", "2026-01-05T03:30:00Z"],  # every property export carries the UPRN
        ["bin-1", "2026-01-05T04:00:00Z"],
    ]
    received = [parse_rfc3339(r.pop()) for r in table]
    assert all(abs(datetime.now(UTC) - t) < timedelta(minutes=5) for t in received)
    assert table[0][2:] == ["2.0", "", "", "", "", "", "", "", ""]
    assert table[2][2:] == [
        "",
        "14.2",
        "3.4",
        "70.5",
        "812.0",
        "2.5",
        "-97.0",
        "42",
        "100030000001",
    ]

    assert (
        main(
            [
                "export",
                "readings",
                "--since",
                "2026-01-05T00:00:00Z",
                "--device",
                "env-1",
                "--format",
                "json",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data == [data[0]]
    assert data[0]["rh_pct"] == 70.5
    assert data[0]["ts"] == "2026-01-05T03:30:00Z"


def test_export_rejects_bad_time(registered: str, capsys) -> None:
    assert main(["export", "readings", "--since", "last tuesday"]) == 2
    assert "is not a time" in capsys.readouterr().err


def test_deadletters_json_filter(registered: str, tmp_path: Path, capsys) -> None:
    rows = [
        "device_id,ts,rh_pct",
        "env-1,2026-01-05T10:00:00Z,120",
        "env-1,2999-01-01T00:00:00Z,50",
    ]
    path = _write(tmp_path, "r.csv", rows)
    assert main(["readings", "import", "--skip-invalid", str(path)]) == 0
    capsys.readouterr()
    assert main(["deadletters", "--reason", "future_ts", "--format", "json"]) == 0
    letters = json.loads(capsys.readouterr().out)
    assert [d["reason"] for d in letters] == ["future_ts"]
    assert letters[0]["source"] == "import"
    assert "2999" in letters[0]["payload"]


def test_devices_import_names_every_bad_value(civic_env, tmp_path, capsys) -> None:
    url, _ = civic_env
    bad = [
        HEADER,
        "bin-5,bin,north,-1.1,,,,,general,240,80,",
        "bin-6,bin,52.6,-181,,,,,general,240,80,",
        "bin 7,bin,52.6,-1.1,,,,,general,240,80,",
        "env-3,env,52.6,-1.1,UPRN-1,,north,false,,,,",
        "env-4,env,52.6,-1.1,100030000004,,north,maybe,,,,",
        "bin-8,bin,52.6,-1.1,,,,,compost,240,80,",
        "bin-9,bin,52.6,-1.1,,,,,general,0,80,",
        "bin-10,bin,52.6,-1.1,,,,,general,240,101,",
        "env-5,env,52.6,-1.1,100030000005,,,false,,,,",
        "bin-11,bin,52.6,-1.1,,,,,general,lots,80,",
        GOOD[0],
    ]
    assert main(["devices", "import", str(_write(tmp_path, "bad.csv", bad))]) == 2
    err = capsys.readouterr().err.splitlines()
    path = tmp_path / "bad.csv"
    assert err == [
        f"{path}: line 2: lat must be a number (got 'north')",
        f"{path}: line 3: lon must be between -180 and 180 (got -181)",
        f"{path}: line 4: device_id 'bin 7' must be 1-64 letters, digits, '.', '_' or '-'",
        f"{path}: line 5: uprn must be 1-12 digits (got 'UPRN-1')",
        f"{path}: line 6: void must be true/false (got 'maybe')",
        f"{path}: line 7: waste_stream must be one of"
        " ['food', 'garden', 'general', 'glass', 'recycling'] (got 'compost')",
        f"{path}: line 8: capacity_l must be between 1 and 100000 (got 0)",
        f"{path}: line 9: threshold_pct must be between 1 and 100 (got 101)",
        f"{path}: line 10: patch is required for a home sensor (kind env)",
        f"{path}: line 11: capacity_l must be a number (got 'lots')",
        "civic devices: error: 10 bad row(s); nothing imported",
    ]
    assert _count(url, "devices") == 0
