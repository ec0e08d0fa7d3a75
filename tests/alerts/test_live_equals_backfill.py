"""Live (piece by piece, with idle time and restarts) and backfill (all at once) must agree."""

import itertools
import pickle
from datetime import timedelta
from functools import cache
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts import Bin, Detector, Home, Reading
from alerts.scenarios import Trace, load_trace
from tests.alerts.helpers import BIN_DEVICE, HOME_DEVICE, T0

DATA = Path(__file__).resolve().parents[1] / "data" / "alerts"
TRACES = ("offline_during_hazard", "kitchen_leak", "bin_round", "void_cold_snap", "dead_battery")


@cache
def trace(name: str) -> Trace:
    loaded = load_trace(DATA / f"{name}.csv")
    # The battery's interesting part is its last thousand readings; keep the test quick.
    return loaded if len(loaded.items) < 1500 else _tail(loaded, 1000)


def _tail(loaded: Trace, count: int) -> Trace:
    import dataclasses

    return dataclasses.replace(loaded, items=loaded.items[-count:])


def backfill(detector_factory, items, until):
    detector = detector_factory()
    return detector.feed(items) + detector.advance(until)


def live(detector_factory, items, until, cuts, idle_fractions, restarts):
    detector = detector_factory()
    events = []
    bounds = [0, *cuts, len(items)]
    for index, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        events += detector.feed(items[lo:hi])
        if hi < len(items):
            gap = items[hi].ts - items[hi - 1].ts
            events += detector.advance(items[hi - 1].ts + gap * idle_fractions[index])
        if restarts[index]:
            detector = pickle.loads(pickle.dumps(detector))  # a worker restarting from a checkpoint
    return events + detector.advance(until)


def split_plan(draw, n):
    cuts = sorted(draw(st.lists(st.integers(1, n - 1), max_size=12, unique=True)))
    parts = len(cuts) + 1
    fractions = draw(st.lists(st.sampled_from([0.0, 0.3, 1.0]), min_size=parts, max_size=parts))
    restarts = draw(st.lists(st.booleans(), min_size=parts, max_size=parts))
    return cuts, fractions, restarts


@settings(max_examples=15, deadline=None)
@given(name=st.sampled_from(TRACES), data=st.data())
def test_trace_split_anywhere_gives_the_same_events(name, data):
    chosen = trace(name)
    items = list(chosen.items)
    cuts, fractions, restarts = split_plan(data.draw, len(items))
    expected = backfill(chosen.detector, items, chosen.until)
    assert expected, "the trace should produce events, or the comparison proves little"
    assert live(chosen.detector, items, chosen.until, cuts, fractions, restarts) == expected


readings_strategy = st.lists(
    st.tuples(
        st.sampled_from([5, 15, 15, 15, 60, 240]),  # minutes since the previous reading
        st.floats(0, 100),  # rh or fill
        st.floats(-5, 90),  # temperature
        st.floats(3.0, 3.7),  # battery
        st.integers(0, 3),  # seq step (0 = duplicate, >1 = losses)
        st.floats(0, 120),  # tilt
    ),
    min_size=2,
    max_size=120,
)


def build(rows, device_id, kind):
    out = []
    ts = T0
    seq = 0
    for minutes, level, temp, volts, seq_step, tilt in rows:
        ts += timedelta(minutes=minutes)
        seq += seq_step
        if kind == "home":
            out.append(Reading(device_id, ts, temp_c=temp, rh_pct=level, battery_v=volts, seq=seq))
        else:
            out.append(
                Reading(
                    device_id,
                    ts,
                    fill_pct=level,
                    temp_c=temp,
                    battery_v=volts,
                    tilt_deg=tilt,
                    seq=seq,
                )
            )
    return out


@settings(max_examples=60, deadline=None)
@given(rows=readings_strategy, kind=st.sampled_from(["home", "void", "bin"]), data=st.data())
def test_random_streams_split_anywhere_give_the_same_events(rows, kind, data):
    if kind == "bin":
        device_id = BIN_DEVICE

        def factory():
            return Detector.for_bin(Bin(device_id=BIN_DEVICE))
    else:
        device_id = HOME_DEVICE
        home = Home(uprn="100000000099", void=kind == "void")

        def factory():
            return Detector.for_home(home, HOME_DEVICE)

    items = build(rows, device_id, "bin" if kind == "bin" else "home")
    until = items[-1].ts + timedelta(hours=6)
    cuts, fractions, restarts = split_plan(data.draw, len(items))
    assert live(factory, items, until, cuts, fractions, restarts) == backfill(factory, items, until)


def _fold_ticking_everything(book, events, until):
    """The lifecycle's definition: tick the whole book at every event, then at ``until``."""
    changed, audit = {}, []
    for event in [*sorted(events, key=lambda e: e.at), None]:
        outcome = book.tick(until if event is None else event.at)
        for step in (outcome, None if event is None else outcome.book.apply(event)):
            if step is None:
                continue
            changed.update((a.alert_id, a) for a in step.changed)
            audit += step.audit
            book = step.book
    return book, changed, audit


@settings(max_examples=25, deadline=None)
@given(
    reminder_h=st.sampled_from([1, 2, 4]),
    escalate_h=st.sampled_from([None, 1, 3, 24]),
    resolve_h=st.sampled_from([1, 2, 24]),
    point_resolve_h=st.sampled_from([None, 1, 5]),
)
def test_fold_ticks_only_due_alerts_with_the_same_outcome(
    reminder_h, escalate_h, resolve_h, point_resolve_h
):
    """fold_events skips alerts with nothing due; the trail must equal ticking every alert."""
    from alerts.lifecycle import AlertBook, LifecycleSettings
    from alerts.service import fold_events

    def hours(n):
        return None if n is None else timedelta(hours=n)

    lifecycle = LifecycleSettings(
        auto_resolve_after=timedelta(hours=resolve_h),
        point_event_auto_resolve_after=hours(point_resolve_h),
        reminder_every=timedelta(hours=reminder_h),
        escalate_unacknowledged_after=hours(escalate_h),
    )
    events, until = [], T0
    for name in TRACES:
        chosen = trace(name)
        events += backfill(chosen.detector, list(chosen.items), chosen.until)
        until = max(until, chosen.until)
    assert len({e.subject_id for e in events}) > 1
    book, changed, audit = fold_events(AlertBook(lifecycle), events, until)
    expected_book, expected_changed, expected_audit = _fold_ticking_everything(
        AlertBook(lifecycle), events, until
    )
    assert audit == expected_audit
    assert changed == expected_changed
    assert dict(book.alerts) == dict(expected_book.alerts)
    assert any(a.action.value == "reminded" for a in audit)
