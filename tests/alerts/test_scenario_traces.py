"""Labelled traces: the expected conditions fire in time, and nothing else fires."""

from functools import cache
from pathlib import Path

import pytest

from alerts import AlertBook, Severity, Transition
from alerts.scenarios import TraceResult, load_trace, load_traces, markdown_table, run_trace, score

DATA = Path(__file__).resolve().parents[1] / "data" / "alerts"
NAMES = sorted(path.stem for path in DATA.glob("*.csv"))


@cache
def result(name: str) -> TraceResult:
    return run_trace(load_trace(DATA / f"{name}.csv"))


def test_the_required_scenarios_are_present():
    assert {
        "bathroom_showers",
        "damp_bedroom",
        "void_cold_snap",
        "dead_battery",
        "bin_fire",
        "bin_stuck",
        "offline_during_hazard",
    } <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_expected_alerts_fire_within_their_bound_and_only_those(name):
    outcome = result(name)
    for label in outcome.trace.labels:
        delay = outcome.delay(label)
        assert delay is not None, f"{label.condition} never detected ({label.truth})"
        assert delay <= label.max_delay, f"{label.condition} took {delay}, bound {label.max_delay}"
    unexpected = [d.event for d in outcome.detections if d.label is None]
    assert unexpected == [], [f"{e.condition} at {e.at}: {e.reason}" for e in unexpected]


def test_showers_alone_raise_nothing():
    assert list(result("bathroom_showers").detections) == []


def test_offline_sensor_never_clears_the_open_hazard():
    outcome = result("offline_during_hazard")
    damp = [e for e in outcome.events if e.condition == "damp_adf2006"]
    assert [e.transition for e in damp] == [Transition.ON]
    offline_on = next(
        e for e in outcome.events if e.condition == "device_offline" and e.transition == "on"
    )
    assert "damp_adf2006" in str(offline_on.evidence_map["open_conditions"])
    # Folded into alerts, the damp alert survives the outage and the day after it.
    book = AlertBook().apply_all(outcome.events).book
    book = book.tick(outcome.trace.until).book
    assert any(alert.alert_type == "damp_mould" for alert in book.alerts.values())


def test_void_home_alerts_do_not_start_the_statutory_clock():
    events = result("void_cold_snap").events
    assert events
    assert not any(e.starts_statutory_clock for e in events)
    damp = [e for e in result("damp_bedroom").events if e.alert_type == "damp_mould"]
    assert any(e.starts_statutory_clock for e in damp)
    # Only act-level evidence (persistence over days) starts the clock; advice does not.
    assert all(e.starts_statutory_clock == (e.severity >= Severity.ACT) for e in damp)


def test_quality_table_lists_every_labelled_condition():
    results = [run_trace(t) for t in load_traces(DATA)]
    table = markdown_table(score(results))
    for condition in {lab.condition for r in results for lab in r.trace.labels}:
        assert f"| {condition} |" in table
