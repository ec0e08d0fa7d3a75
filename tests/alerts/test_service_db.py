"""The evaluator against a real database: live cycles equal a backfill, late data replays."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts import AuditAction, DeviceRuleSettings, Home, HomeRuleSettings, Reading
from alerts.errors import CheckpointFormatError
from alerts.rules import OfflineSettings
from alerts.scenarios import Trace, load_trace
from alerts.service import Evaluator, EvaluatorBusyError, EvaluatorConfig
from alerts.state_format import state_format
from civic.cli import main
from store.db import connect
from store.registry import Device, upsert_devices

TRACES = ("void_cold_snap", "kitchen_leak", "offline_during_hazard")


def _cli_json(capsys, *argv: str):
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_live_cycles_and_backfill_give_the_same_alerts(civic_env, capsys, monkeypatch) -> None:
    url, _ = civic_env
    # Replaying 2025 data: by today's wall clock every statutory date has passed, and a
    # backfill does not chase them, so the live side must not either.
    monkeypatch.setenv("CIVIC_ALERTS_OVERDUE_CHECK_S", "0")
    traces = [trace(name) for name in TRACES]
    register(url, traces)
    readings = [item for t in traces for item in t.items]
    for day in by_day(readings):
        insert(url, day)
        assert main(["alerts", "run", "--once", "--no-mqtt", "--format", "json"]) == 0
    live = snapshot(url)
    kinds = {row[2] for row in live["alerts"]}
    assert {"frost_risk", "void_heating_off", "suspected_leak", "damp_mould"} <= kinds
    assert "device_offline" in kinds
    # Open alerts have a condition still on; the others cleared, then resolved themselves.
    for row in live["alerts"]:
        state, active_sources, cleared_at, resolved_at = row[3], row[8], row[10], row[11]
        if state == "open":
            assert active_sources, row
            assert (cleared_at, resolved_at) == (None, None), row
        else:
            assert state == "resolved", row
            assert active_sources == [], row
            assert cleared_at < resolved_at, row
    assert {row[3] for row in live["alerts"]} == {"open", "resolved"}

    summary = _cli_json(capsys, "alerts", "backfill", "--since", "2025-10-01", "--format", "json")
    assert summary["events"] == len(live["events"])
    backfilled = snapshot(url)
    assert backfilled["events"] == live["events"]
    for again, first in zip(backfilled["alerts"], live["alerts"], strict=True):
        assert again == first, [
            (i, x, y) for i, (x, y) in enumerate(zip(again, first, strict=True)) if x != y
        ]
    assert backfilled["audit"] == live["audit"]

    # Listing filters, as a script would use them.
    frost = _cli_json(capsys, "alerts", "list", "--type", "frost_risk", "--format", "json")
    assert [a["subject_id"] for a in frost] == ["100000000003"]
    south = _cli_json(capsys, "alerts", "list", "--patch", "south", "--format", "json")
    assert {a["patch"] for a in south} == {"south"}
    assert _cli_json(capsys, "alerts", "list", "--since", "2030-01-01", "--format", "json") == []


def _quiet_config() -> EvaluatorConfig:
    # The trace reports every 30 minutes: offline after 2 h of silence, not 1 h.
    offline = OfflineSettings(expected_interval=timedelta(minutes=30))
    return EvaluatorConfig(home_rules=HomeRuleSettings(device=DeviceRuleSettings(offline=offline)))


def test_a_late_reading_replays_its_device_to_the_backfill_result(database_url: str) -> None:
    void = trace("void_cold_snap")
    register(database_url, [void])
    days = by_day(void.items)
    # One reading of day 2 is held back until day 4 has been evaluated.
    held = days[1][20]
    days[1] = [r for r in days[1] if r is not held]
    with connect(database_url) as conn:
        evaluator = Evaluator(conn, _quiet_config())
        replays = []
        for index, day in enumerate(days):
            insert(database_url, day)
            if index == 4:
                insert(database_url, [held])
            replays.append(evaluator.run_cycle().replays)
        assert replays[4] == 1
        assert sum(replays) == 1
        live = snapshot(database_url)["events"]
        evaluator.reset(void.items[0].ts)
        evaluator.run_cycle()
        assert snapshot(database_url)["events"] == live
        evaluator.close()


def test_an_evaluator_killed_between_cycles_loses_and_repeats_nothing(database_url: str) -> None:
    """Detectors are written to the database only now and then; a process that dies without
    :meth:`Evaluator.close` restarts each device from its older copy and re-reads from there.
    Whatever it evaluates twice must be recognised, so the result equals one backfill."""
    traces = [trace(name) for name in TRACES]
    register(database_url, traces)
    config = dataclasses.replace(_quiet_config(), checkpoint_every=timedelta(days=2))
    readings = [item for t in traces for item in t.items]
    saved_horizons = []
    for day in by_day(readings):
        insert(database_url, day)
        with connect(database_url) as conn:
            Evaluator(conn, config).run_cycle()  # then the process dies: no close()
            row = conn.execute("SELECT max(horizon) AS h FROM alert_checkpoints").fetchone()
            saved_horizons.append(row["h"] if row else None)
    live = snapshot(database_url)
    assert live["events"]
    # The copies really did lag behind the evaluation, so restarts re-read readings.
    assert len(set(saved_horizons)) < len(saved_horizons)
    backfill(database_url, config, since=min(r.ts for r in readings))
    assert snapshot(database_url) == live


def test_only_one_evaluator_runs_per_database(database_url: str) -> None:
    with connect(database_url) as first, connect(database_url) as second:
        evaluator = Evaluator(first)
        with pytest.raises(EvaluatorBusyError):
            Evaluator(second)
        evaluator.close()
        Evaluator(second).close()


def test_ack_and_resolve_through_the_cli(civic_env, capsys) -> None:
    url, _ = civic_env
    leak = trace("kitchen_leak")
    register(url, [leak])
    insert(url, list(leak.items))
    main(["alerts", "run", "--once", "--no-mqtt"])
    alerts = _cli_json(capsys, "alerts", "list", "--type", "suspected_leak", "--format", "json")
    alert_id = alerts[0]["id"]
    acked = _cli_json(
        capsys,
        "alerts",
        "ack",
        alert_id,
        "--by",
        "jo.smith",
        "--note",
        "tenant called",
        "--format",
        "json",
    )
    assert acked["state"] == "acknowledged"
    assert main(["alerts", "ack", alert_id, "--by", "jo.smith"]) == 2  # already acknowledged
    # Still leaking: resolving needs --force, and says so.
    assert main(["alerts", "resolve", alert_id, "--by", "jo.smith", "--note", "fixed"]) == 2
    assert "--force" in capsys.readouterr().err
    resolved = _cli_json(
        capsys,
        "alerts",
        "resolve",
        alert_id,
        "--by",
        "jo.smith",
        "--note",
        "plumber fixed it",
        "--force",
        "--format",
        "json",
    )
    assert resolved["state"] == "resolved"
    shown = _cli_json(capsys, "alerts", "show", alert_id, "--format", "json")
    actions = [a["action"] for a in shown["audit"]]
    assert actions[0] == "opened"
    assert actions[-2:] == ["acknowledged", "resolved"]
    acknowledged, resolved_entry = shown["audit"][-2:]
    assert acknowledged["actor"] == "jo.smith"
    assert acknowledged["detail"]["text"] == "tenant called"
    assert resolved_entry["actor"] == "jo.smith"
    assert "resolved while on" in resolved_entry["detail"]["text"]
    assert "plumber fixed it" in resolved_entry["detail"]["text"]


def test_evidence_pack_has_readings_rule_and_timeline(civic_env, capsys, tmp_path) -> None:
    url, _ = civic_env
    void = trace("void_cold_snap")
    register(url, [void])
    insert(url, list(void.items))
    main(["alerts", "run", "--once", "--no-mqtt"])
    frost = _cli_json(capsys, "alerts", "list", "--type", "frost_risk", "--format", "json")[0]
    pack = _cli_json(capsys, "alerts", "evidence", frost["id"], "--format", "json")
    assert pack["rule"]["fired"]["condition"] == "void_frost"
    assert "below 5 C" in pack["rule"]["why"]
    assert pack["rule"]["fired"]["evidence"]["limit_c"] == 5.0
    readings = pack["readings"]["env-void-03"]
    assert readings[0]["ts"] < frost["since"] < readings[-1]["ts"]
    assert next(t["action"] for t in pack["timeline"]) == "opened"
    out = tmp_path / "pack.html"
    assert main(["alerts", "evidence", frost["id"], "--format", "html", "-o", str(out)]) == 0
    page = out.read_text()
    assert '<html lang="en-GB">' in page
    assert "void_frost" in page
    assert "Test Road" in page
    assert main(["alerts", "evidence", frost["id"], "--format", "pdf"]) == 2  # needs -o
    pdf_path = tmp_path / "pack.pdf"
    assert main(["alerts", "evidence", frost["id"], "--format", "pdf", "-o", str(pdf_path)]) == 0
    pdf = pdf_path.read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert len(pdf) > 3000  # summary, rule, chart, deadlines and timeline, not an empty page


# -- helpers shared with the other alerts database tests --
DATA = Path(__file__).resolve().parents[1] / "data" / "alerts"


def trace(name: str) -> Trace:
    return load_trace(DATA / f"{name}.csv")


def register(url: str, traces: Iterable[Trace]) -> None:
    devices = []
    for t in traces:
        assert isinstance(t.subject, Home)
        devices.append(
            Device(
                device_id=t.device_id,
                kind="env",
                lat=52.63,
                lon=-1.13,
                uprn=t.subject.uprn,
                address=f"{t.subject.uprn[-2:]} Test Road",
                patch=t.subject.patch,
                void=t.subject.void,
            )
        )
    with connect(url) as conn:
        upsert_devices(conn, devices)


def insert(url: str, readings: Sequence[Any]) -> None:
    if not readings:
        return
    with connect(url) as conn, conn.transaction():
        first = min(r.ts for r in readings)
        last = max(r.ts for r in readings)
        conn.execute("SELECT civic_ensure_partitions(%s, %s)", (first - timedelta(days=7), last))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO readings (device_id, ts, seq, fill_pct, temp_c, rh_pct, battery_v,"
                " co2_ppm, received_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp())",
                [
                    (
                        r.device_id,
                        r.ts,
                        r.seq,
                        r.fill_pct,
                        r.temp_c,
                        r.rh_pct,
                        r.battery_v,
                        r.co2_ppm,
                    )
                    for r in readings
                ],
            )


def backfill(url: str, config: EvaluatorConfig, *, since: datetime) -> None:
    """What ``civic alerts backfill`` does, with this configuration."""
    with connect(url) as conn:
        evaluator = Evaluator(conn, config)
        evaluator.reset(since)
        evaluator.run_cycle(notify=False)
        evaluator.close()


def by_day(readings: Iterable[Reading]) -> list[list[Reading]]:
    days: dict[datetime, list[Reading]] = {}
    for r in sorted(readings, key=lambda r: r.ts):
        days.setdefault(r.ts.replace(hour=0, minute=0, second=0, microsecond=0), []).append(r)
    return [days[d] for d in sorted(days)]


ALERT_COLUMNS = (
    "id, subject_id, alert_type, state, severity, opened_at, since, reason, active_sources,"
    " sources, cleared_at, resolved_at, resolved_by, escalated_at, statutory_clock_started_at,"
    " investigate_due_at, make_safe_due_at, patch, uprn"
)


def snapshot(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Alerts, their lifecycle audit trail and condition events.

    Reminders are left out (their count depends on how often the book is ticked), and so are
    commands, which only a live run (with notifications on) issues.
    """
    with connect(url) as conn:
        alerts = conn.execute(f"SELECT {ALERT_COLUMNS} FROM alerts ORDER BY id").fetchall()
        audit = conn.execute(
            "SELECT alert_id, at, actor, action, severity, detail FROM alert_events"
            " WHERE action <> 'reminded' AND action = ANY(%s)"
            " ORDER BY alert_id, at, action, detail::text",
            ([a.value for a in AuditAction],),
        ).fetchall()
        events = conn.execute(
            "SELECT device_id, condition, transition, at, since, severity, reason"
            " FROM condition_events WHERE superseded_at IS NULL"
            " ORDER BY device_id, at, condition, transition"
        ).fetchall()
    return {
        "alerts": [tuple(r.values()) for r in alerts],
        "audit": [tuple(r.values()) for r in audit],
        "events": [tuple(r.values()) for r in events],
    }


def _bin_fleet(start: datetime, hours: int) -> list[Reading]:
    """Four bins in one patch filling and being emptied, and one whose sensor froze."""
    readings = []
    for k in range(hours):
        ts = start + timedelta(hours=k)
        for n in range(4):
            fill = min(((k + 9 * n) % 40) * 2.2, 100.0)  # emptied every 40 h, staggered
            readings.append(Reading(f"bin-peer-{n}", ts, fill_pct=fill, battery_v=3.6, seq=k))
        frozen = 42.0 + (0.3 if k % 5 == 0 else 0.0)  # inside the 1 % flat tolerance
        readings.append(Reading("bin-frozen", ts, fill_pct=frozen, battery_v=3.6, seq=k))
    return readings


def test_bins_get_peer_summaries_and_forecasts_live_as_in_backfill(
    database_url: str,
) -> None:
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
        for d in ("bin-peer-0", "bin-peer-1", "bin-peer-2", "bin-peer-3", "bin-frozen")
    ]
    with connect(database_url) as conn:
        upsert_devices(conn, devices)
    start = datetime(2025, 11, 3, 0, 30, tzinfo=UTC)
    readings = _bin_fleet(start, hours=5 * 24)
    with connect(database_url) as conn:
        evaluator = Evaluator(conn, EvaluatorConfig())
        for half_day in range(10):
            lo = start + timedelta(hours=12 * half_day)
            hi = lo + timedelta(hours=12)
            insert(database_url, [r for r in readings if lo <= r.ts < hi])
            evaluator.run_cycle(notify=False)
        evaluator.close()
    live = snapshot(database_url)
    stuck = [e for e in live["events"] if "sensor_stuck" in e]
    assert stuck, live["events"]
    assert {e[0] for e in stuck} == {"bin-frozen"}
    # Routing's fill forecast warns of overflows a day ahead, before the bins reach 80 %.
    overflow = [e for e in live["events"] if e[1] == "bin_overflow"]
    assert any(str(e[6]).startswith("forecast") for e in overflow), overflow
    backfill(database_url, EvaluatorConfig(), since=start)
    assert snapshot(database_url) == live


def test_offline_waits_for_the_report_interval_the_registry_gives(database_url: str) -> None:
    two_hourly = {"report_interval_s": "7200"}
    devices = [
        Device("env-slow", "env", 52.6, -1.1, uprn="100000000071", patch="n", void=False),
        Device(
            "env-told",
            "env",
            52.6,
            -1.1,
            uprn="100000000072",
            patch="n",
            void=False,
            extra=two_hourly,
        ),
        Device(
            "env-typo",
            "env",
            52.6,
            -1.1,
            uprn="100000000073",
            patch="n",
            void=False,
            extra={"report_interval_s": "hourly"},
        ),
    ]
    with connect(database_url) as conn:
        upsert_devices(conn, devices)
    start = datetime(2025, 11, 3, 0, 0, tzinfo=UTC)
    readings = [
        Reading(d.device_id, start + timedelta(hours=2 * k), temp_c=20.0, rh_pct=50.0, seq=k)
        for k in range(12)
        for d in devices
    ]
    insert(database_url, readings)
    with connect(database_url) as conn:
        evaluator = Evaluator(conn, EvaluatorConfig())
        evaluator.run_cycle(notify=False)
        evaluator.close()
    offline = {e[0] for e in snapshot(database_url)["events"] if e[1] == "device_offline"}
    # Two-hourly reports look like silence to the 15-minute default (offline after 4 missed),
    # not to a device said to report every 2 h; a value that is not a number is ignored.
    assert offline == {"env-slow", "env-typo"}


def test_crew_records_arriving_after_the_round_silence_unrecorded_emptyings(
    civic_env, capsys, tmp_path
) -> None:
    url, _ = civic_env
    bins = ("bin-crew-1", "bin-crew-2")
    with connect(url) as conn:
        upsert_devices(
            conn,
            [
                Device(
                    b,
                    "bin",
                    52.63,
                    -1.13,
                    patch="east",
                    waste_stream="general",
                    capacity_l=240.0,
                    threshold_pct=80.0,
                )
                for b in bins
            ],
        )
    start = datetime(2025, 11, 3, 0, 0, tzinfo=UTC)
    readings = [
        Reading(
            b,
            start + timedelta(hours=k),
            fill_pct=(70.0 if k < 10 else 3.0) + 0.1 * (k % 3),
            battery_v=3.6,
            seq=k,
        )
        for k in range(48)
        for b in bins
    ]
    sheet = tmp_path / "round.csv"
    sheet.write_text("device_id,ts,crew\nbin-crew-1,2025-11-03T10:10:00Z,crew A\n")
    config = EvaluatorConfig(lateness_allowance=timedelta(0))
    with connect(url) as conn:
        evaluator = Evaluator(conn, config)
        for block in range(0, 48, 2):
            lo, hi = start + timedelta(hours=block), start + timedelta(hours=block + 2)
            insert(url, [r for r in readings if lo <= r.ts < hi])
            if block == 16:  # the round sheet comes in six hours after the emptying
                capsys.readouterr()
                assert main(["routes", "collected", str(sheet)]) == 0
                assert "1 new of 1" in capsys.readouterr().out
            evaluator.run_cycle(notify=False)
        evaluator.close()
    live = snapshot(url)
    unrecorded = [e for e in live["events"] if e[1] == "unrecorded_emptying"]
    assert [e[0] for e in unrecorded] == ["bin-crew-2"]
    backfill(url, config, since=start)
    assert snapshot(url) == live

    bad = tmp_path / "bad.csv"
    bad.write_text("device_id,ts\nbin-crew-1,yesterday\nno-such-bin,2025-11-03T10:00:00Z\n")
    assert main(["routes", "collected", str(bad)]) != 0
    assert "line 2" in capsys.readouterr().err


def test_a_rules_file_sets_thresholds_per_patch(civic_env, monkeypatch, tmp_path, capsys) -> None:
    url, _ = civic_env
    homes = [
        Device("env-warm", "env", 52.6, -1.1, uprn="100000000081", patch="warm", void=False),
        Device("env-cool", "env", 52.6, -1.1, uprn="100000000082", patch="cool", void=False),
    ]
    with connect(url) as conn:
        upsert_devices(conn, homes)
    start = datetime(2025, 11, 3, 0, 0, tzinfo=UTC)
    # Heated from 07:00 to 22:00 to 19.5 C, 14 C at night, for six days.
    insert(
        url,
        [
            Reading(
                h.device_id,
                start + timedelta(hours=k),
                temp_c=19.5 if 7 <= k % 24 < 22 else 14.0,
                rh_pct=50.0,
                seq=k,
            )
            for k in range(24 * 6)
            for h in homes
        ],
    )
    rules = tmp_path / "rules.toml"
    # A patch of sheltered housing kept warmer than the 18 C default.
    rules.write_text("[patch.warm.home.cold_home]\nlimit_c = 21.0\nsevere_c = 17.0\n")
    monkeypatch.setenv("CIVIC_ALERTS_RULES", str(rules))
    monkeypatch.setenv("CIVIC_ALERTS_OVERDUE_CHECK_S", "0")
    assert main(["alerts", "run", "--once", "--no-mqtt"]) == 0
    cold = _cli_json(capsys, "alerts", "list", "--type", "excess_cold", "--format", "json")
    assert [a["subject_id"] for a in cold] == ["100000000081"]

    rules.write_text("[patch.warm.home.cold_home]\nlimit_c = 15.0\n")  # severe_c left at 16
    capsys.readouterr()
    assert main(["alerts", "run", "--once", "--no-mqtt"]) == 2
    assert "patch.warm.home.cold_home: severe_c must be below limit_c" in capsys.readouterr().err


def test_out_of_range_fill_readings_are_evaluated_and_counted(database_url: str) -> None:
    start = datetime(2026, 1, 5, tzinfo=UTC)
    with connect(database_url) as conn:
        upsert_devices(
            conn,
            [
                Device(
                    "bin-odd",
                    "bin",
                    52.6,
                    -1.1,
                    waste_stream="general",
                    capacity_l=240,
                    threshold_pct=80,
                )
            ],
        )
    fills = [60.0, 105.0, 106.0, 107.0, -2.0, -1.0, -2.0]
    # The last reading sets the data clock; it is evaluated in a later cycle.
    insert(
        database_url,
        [
            Reading("bin-odd", start + timedelta(hours=k), seq=k, fill_pct=f, battery_v=3.6)
            for k, f in enumerate([*fills, 0.0])
        ],
    )
    with connect(database_url) as conn:
        evaluator = Evaluator(conn, _quiet_config(), wall_clock=lambda: start + timedelta(days=1))
        report = evaluator.run_cycle(notify=False)
        evaluator.close()
        rows = conn.execute(
            "SELECT condition, transition FROM condition_events WHERE device_id = 'bin-odd'"
            " ORDER BY at, id"
        ).fetchall()
    assert report.readings == len(fills)
    assert (report.fill_over_full, report.fill_below_empty) == (3, 3)
    overflow = [r["transition"] for r in rows if r["condition"] == "bin_overflow"]
    assert overflow[0] == "on"
    assert overflow[-1] == "off"


def test_checkpoints_of_another_rules_version_are_refused_until_a_backfill(
    database_url: str,
) -> None:
    void = trace("void_cold_snap")
    register(database_url, [void])
    days = by_day(r for r in void.items if isinstance(r, Reading))
    insert(database_url, days[0])
    with connect(database_url) as conn:
        evaluator = Evaluator(conn, _quiet_config())
        evaluator.run_cycle(notify=False)
        evaluator.close()  # writes every detector's state
        # As if an upgrade changed a rule's fields after these states were written.
        changed = conn.execute(
            "UPDATE alert_checkpoints SET state_format = 'from-an-older-version'"
        ).rowcount
    assert changed > 0
    insert(database_url, days[1])
    with connect(database_url) as conn:
        evaluator = Evaluator(conn, _quiet_config())
        with pytest.raises(CheckpointFormatError, match="civic alerts backfill"):
            evaluator.run_cycle(notify=False)
        evaluator.close()
    backfill(database_url, _quiet_config(), since=days[0][0].ts)
    with connect(database_url) as conn:
        evaluator = Evaluator(conn, _quiet_config())
        evaluator.run_cycle(notify=False)  # the backfill's own checkpoints load
        evaluator.close()
        layouts = conn.execute("SELECT DISTINCT state_format FROM alert_checkpoints").fetchall()
    assert [r["state_format"] for r in layouts] == [state_format()]
