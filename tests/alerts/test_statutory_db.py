"""Awaab's Law follow-through against a real database: recording steps, chasing overdue ones."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from alerts import AlertType, Home, LifecycleSettings, Milestone, Severity
from alerts.recipients import Officer, upsert_officer
from alerts.service import Evaluator, EvaluatorConfig
from alerts.statutory import escalate_overdue, record_milestone
from civic.cli import main
from store.db import connect
from tests.alerts.test_service_db import insert, register, trace

# A Monday, after the damp alert's investigation was due (its clock starts on the week's
# mean RH, 26 November: 10 working days -> 10 December).
ENDED = "2025-12-15T10:00:00Z"


def _cli_json(capsys, *argv: str):
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def _damp_alert(url: str, *, escalate: bool = True) -> dict:
    damp = trace("damp_bedroom")
    register(url, [damp])
    insert(url, list(damp.items))
    lifecycle = (
        LifecycleSettings() if escalate else LifecycleSettings(escalate_unacknowledged_after=None)
    )
    with connect(url) as conn:
        evaluator = Evaluator(conn, EvaluatorConfig(lifecycle=lifecycle))
        evaluator.run_cycle(notify=False)
        evaluator.close()
        row = conn.execute(
            "SELECT * FROM alerts WHERE alert_type = %s", (AlertType.DAMP_MOULD.value,)
        ).fetchone()
    assert row is not None
    assert row["statutory_clock_started_at"] is not None
    assert row["statutory_clock_started_at"] < datetime.fromisoformat(ENDED)
    return dict(row)


def _overdue_ids(capsys) -> list[str]:
    return [a["id"] for a in _cli_json(capsys, "alerts", "list", "--overdue", "--format", "json")]


def test_investigated_sets_later_due_dates_and_clears_overdue_when_all_done(
    civic_env, capsys
) -> None:
    url, _ = civic_env
    alert = _damp_alert(url)
    assert alert["summary_due_at"] is None
    assert alert["safety_work_due_at"] is None
    # Investigation due 10 working days after the clock started; long past by now.
    assert _overdue_ids(capsys) == [alert["id"]]

    recorded = _cli_json(
        capsys,
        "alerts",
        "investigated",
        alert["id"],
        "--by",
        "jo.smith",
        "--at",
        ENDED,
        "--note",
        "surveyor visit",
        "--format",
        "json",
    )
    # Monday 15 December: 3 working days -> Thursday 18th, 5 -> Monday 22nd (ends of UK days).
    assert recorded["summary_due_at"] == "2025-12-19T00:00:00Z"
    assert recorded["safety_work_due_at"] == "2025-12-23T00:00:00Z"
    milestones = {d["milestone"] for d in recorded["deadlines"]}
    assert {"investigate", "written_summary", "safety_work"} <= milestones

    assert main(["alerts", "investigated", alert["id"], "--by", "jo.smith", "--at", ENDED]) == 2
    assert "already recorded" in capsys.readouterr().err
    assert (
        main(
            [
                "alerts",
                "milestone",
                alert["id"],
                "written_summary",
                "--by",
                "jo",
                "--at",
                "2025-11-01",
            ]
        )
        == 2
    )
    assert "before the clock started" in capsys.readouterr().err

    shown = _cli_json(capsys, "alerts", "show", alert["id"], "--format", "json")
    entry = next(a for a in shown["audit"] if a["action"] == "milestone_recorded")
    assert entry["actor"] == "jo.smith"
    assert "LATE" in entry["detail"]["text"]
    assert "surveyor visit" in entry["detail"]["text"]

    # The later steps are overdue too, until each is recorded.
    assert _overdue_ids(capsys) == [alert["id"]]
    for step in (
        "written_summary",
        "safety_work",
        "preventative_work_start",
        "preventative_work_physical_start",
    ):
        assert (
            main(["alerts", "milestone", alert["id"], step, "--by", "jo", "--at", "2025-12-17"])
            == 0
        )
    assert _overdue_ids(capsys) == []


def test_overdue_due_dates_escalate_once_with_audit_and_notification(database_url) -> None:
    alert = _damp_alert(database_url, escalate=False)
    due = alert["investigate_due_at"]
    before = Severity[alert["severity"].upper()]
    home = trace("damp_bedroom").subject
    assert isinstance(home, Home)
    with connect(database_url) as conn:
        upsert_officer(
            conn, Officer("o1", "Jo Smith", email="jo@council.example"), [home.patch or "*"]
        )
        assert escalate_overdue(conn, due - timedelta(seconds=1)) == []

        items = escalate_overdue(conn, due + timedelta(seconds=1))
        assert [(i.alert_id, i.deadline.milestone) for i in items] == [
            (alert["id"], Milestone.INVESTIGATE)
        ]
        row = conn.execute("SELECT * FROM alerts WHERE id = %s", (alert["id"],)).fetchone()
        assert Severity[row["severity"].upper()] == min(Severity(before + 1), Severity.URGENT)
        assert row["overdue_notified"] == ["investigate"]
        audit = conn.execute(
            "SELECT at, actor, detail FROM alert_events WHERE alert_id = %s"
            " AND action = 'statutory_overdue'",
            (alert["id"],),
        ).fetchall()
        assert [(a["at"], a["actor"]) for a in audit] == [(due, "system")]
        assert "investigate" in audit[0]["detail"]["text"]
        sent = conn.execute(
            "SELECT kind, target FROM notifications WHERE alert_id = %s", (alert["id"],)
        ).fetchall()
        assert [(n["kind"], n["target"]) for n in sent] == [("overdue", "jo@council.example")]

        # Once per milestone: a later check does not escalate or notify again.
        assert escalate_overdue(conn, due + timedelta(days=3)) == []
        count = conn.execute("SELECT count(*) AS n FROM notifications").fetchone()
        assert count["n"] == 1

        # The investigation ends (late); the written summary then runs its own clock.
        ended = due + timedelta(hours=2)
        row = record_milestone(
            conn, alert["id"], Milestone.INVESTIGATE, by="jo", at=ended, now=ended
        )
        summary_due = row["summary_due_at"]
        assert escalate_overdue(conn, summary_due - timedelta(seconds=1)) == []
        items = escalate_overdue(conn, summary_due + timedelta(seconds=1))
        assert [i.deadline.milestone for i in items] == [Milestone.WRITTEN_SUMMARY]

        # A resolved alert is no longer chased.
        conn.execute(
            "UPDATE alerts SET state = 'resolved', resolved_at = now() WHERE id = %s",
            (alert["id"],),
        )
        assert escalate_overdue(conn, summary_due + timedelta(days=400)) == []


def test_overdue_command_escalates_as_of_a_time(civic_env, capsys) -> None:
    url, _ = civic_env
    alert = _damp_alert(url, escalate=False)
    due = alert["investigate_due_at"].isoformat()
    assert _cli_json(capsys, "alerts", "overdue", "--at", "2025-11-01", "--format", "json") == []
    chased = _cli_json(capsys, "alerts", "overdue", "--format", "json")
    assert [(c["id"], c["milestone"], c["due_at"]) for c in chased] == [
        (alert["id"], "investigate", due.replace("+00:00", "Z"))
    ]
    assert _cli_json(capsys, "alerts", "overdue", "--format", "json") == []


def test_the_running_service_chases_overdue_due_dates_itself(civic_env, monkeypatch) -> None:
    url, _ = civic_env
    alert = _damp_alert(url, escalate=False)
    # The trace is from 2025: by today's clock its investigation is long overdue.
    monkeypatch.setenv("CIVIC_ALERTS_OVERDUE_CHECK_S", "0")
    assert main(["alerts", "run", "--once", "--no-mqtt"]) == 0
    with connect(url) as conn:
        row = conn.execute("SELECT overdue_notified FROM alerts WHERE id = %s", (alert["id"],))
        assert row.fetchone()["overdue_notified"] in (None, [])
    monkeypatch.delenv("CIVIC_ALERTS_OVERDUE_CHECK_S")
    assert main(["alerts", "run", "--once", "--no-mqtt"]) == 0
    with connect(url) as conn:
        row = conn.execute("SELECT overdue_notified FROM alerts WHERE id = %s", (alert["id"],))
        assert "investigate" in row.fetchone()["overdue_notified"]
        chased = conn.execute(
            "SELECT count(*) AS n FROM alert_events WHERE alert_id = %s"
            " AND action = 'statutory_overdue'",
            (alert["id"],),
        ).fetchone()
        assert chased["n"] >= 1
