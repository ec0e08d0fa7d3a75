from datetime import timedelta

import pytest

from alerts import (
    Bin,
    CollectionRecord,
    Detector,
    FillForecast,
    Home,
    OutOfOrderError,
    PeerChange,
    Reading,
    Severity,
    Transition,
)
from tests.alerts.helpers import BIN_DEVICE, HOME_DEVICE, T0, ons, series, transitions

BIN = Bin(device_id=BIN_DEVICE, threshold_pct=80.0)
HOUR = timedelta(hours=1)


def bin_series(rows, start=T0):
    return series(rows, step=HOUR, device_id=BIN_DEVICE, start=start)


def test_overflow_from_level_ignores_one_echo_and_clears_after_emptying():
    rows = [{"fill_pct": 50.0}] * 3 + [{"fill_pct": 100.0}] + [{"fill_pct": 52.0}] * 3
    assert "bin_overflow" not in ons(Detector.for_bin(BIN).feed(bin_series(rows)))
    rows = [{"fill_pct": 70.0 + 4 * i} for i in range(6)] + [{"fill_pct": 4.0}] * 3
    events = Detector.for_bin(BIN).feed(bin_series(rows))
    assert [t for t, _ in transitions(events, "bin_overflow")] == ["on", "off"]


def test_overflow_imminent_from_a_forecast_within_a_day():
    detector = Detector.for_bin(BIN)
    detector.feed(bin_series([{"fill_pct": 40.0}] * 3))
    far = FillForecast(BIN_DEVICE, T0 + 3 * HOUR, T0 + 40 * HOUR, 95.0)
    assert detector.feed([far]) == []
    near = FillForecast(BIN_DEVICE, T0 + 4 * HOUR, T0 + 20 * HOUR, 95.0)
    events = detector.feed([near])
    assert [(e.transition, e.severity) for e in events] == [(Transition.ON, Severity.WATCH)]


def test_fire_ignores_a_single_hot_reading_but_not_a_fast_rise():
    rows = [{"temp_c": 12.0}] * 4 + [{"temp_c": 85.0}] + [{"temp_c": 12.0}] * 4
    quarter = timedelta(minutes=15)
    detector = Detector.for_bin(BIN)
    assert detector.feed(series(rows, step=quarter, device_id=BIN_DEVICE)) == []
    rows = [{"temp_c": 12.0}] * 4 + [{"temp_c": 30.0}, {"temp_c": 50.0}, {"temp_c": 58.0}]
    events = Detector.for_bin(BIN).feed(series(rows, step=quarter, device_id=BIN_DEVICE))
    fire = [e for e in events if e.condition == "bin_fire"]
    assert len(fire) == 1
    assert fire[0].severity is Severity.EMERGENCY
    assert fire[0].at == T0 + 6 * quarter  # confirmed by the second hot reading


def test_knocked_over_needs_two_readings():
    rows = [{"tilt_deg": 2.0}] * 2 + [{"tilt_deg": 80.0}] + [{"tilt_deg": 2.0}] * 2
    assert "bin_knocked_over" not in ons(Detector.for_bin(BIN).feed(bin_series(rows)))
    rows = [{"tilt_deg": 2.0}] * 2 + [{"tilt_deg": 80.0}] * 2 + [{"tilt_deg": 2.0}] * 2
    events = Detector.for_bin(BIN).feed(bin_series(rows))
    assert [t for t, _ in transitions(events, "bin_knocked_over")] == ["on", "off"]


def test_stuck_sensor_needs_peers_that_moved():
    flat = bin_series([{"fill_pct": 43.0}] * 60)
    quiet_peers = PeerChange(BIN_DEVICE, T0 + 50 * HOUR, timedelta(hours=48), 3.0, 10)
    moving_peers = PeerChange(BIN_DEVICE, T0 + 50 * HOUR, timedelta(hours=48), 40.0, 10)
    for peers, expected in ((quiet_peers, []), (moving_peers, ["on"])):
        items = sorted([*flat, peers], key=lambda item: item.ts)
        events = Detector.for_bin(BIN).feed(items)
        assert [t for t, _ in transitions(events, "sensor_stuck")] == expected


def test_unrecorded_emptying_and_wasted_collection():
    rows = [{"fill_pct": 60.0}] * 3 + [{"fill_pct": 3.0}] * 20
    readings = bin_series(rows)
    record = CollectionRecord(BIN_DEVICE, T0 + 3 * HOUR + timedelta(minutes=10))
    with_record = sorted([*readings, record], key=lambda item: item.ts)
    assert ons(Detector.for_bin(BIN).feed(with_record)) == []
    events = Detector.for_bin(BIN).feed(readings)
    emptied = [e for e in events if e.condition == "unrecorded_emptying"]
    assert [e.transition for e in emptied] == [Transition.OCCURRED]
    assert emptied[0].since == T0 + 3 * HOUR
    # Three hours either side match a record; crews report up to 12 h after the round.
    assert emptied[0].at == T0 + 18 * HOUR
    assert Detector.for_bin(BIN).feed(readings[:18]) == []

    nearly_empty = bin_series([{"fill_pct": 12.0}] * 3)
    wasted = [*nearly_empty, CollectionRecord(BIN_DEVICE, T0 + 2 * HOUR + timedelta(minutes=5))]
    assert ons(Detector.for_bin(BIN).feed(wasted)) == ["wasted_collection"]


def test_offline_fires_at_the_deadline_and_clears_on_the_next_reading():
    detector = Detector.for_home(Home(uprn="1"), HOME_DEVICE)
    detector.feed(series([{"temp_c": 20.0}] * 4))
    last = T0 + timedelta(minutes=45)
    assert detector.advance(last + timedelta(minutes=59)) == []
    events = detector.advance(last + timedelta(hours=3))
    assert [(e.condition, e.transition, e.at) for e in events] == [
        ("device_offline", Transition.ON, last + timedelta(hours=1))
    ]
    assert detector.advance(last + timedelta(hours=4)) == []  # already on: no repeat
    events = detector.feed(series([{"temp_c": 20.0}], start=last + timedelta(hours=5)))
    assert transitions(events, "device_offline") == [("off", last + timedelta(hours=5))]


def test_battery_dips_do_not_alert_but_a_flat_cell_does():
    volts = [3.6, 3.6, 3.3, 3.6, 3.25, 3.6, 3.6]
    events = Detector.for_home(Home(uprn="1"), HOME_DEVICE).feed(
        series([{"battery_v": v} for v in volts])
    )
    assert "battery_low" not in ons(events)
    volts = [3.6, 3.3, 3.28, 3.27, 3.05, 3.04, 3.03]
    events = Detector.for_home(Home(uprn="1"), HOME_DEVICE).feed(
        series([{"battery_v": v} for v in volts])
    )
    battery = [e for e in events if e.condition == "battery_low"]
    assert [(e.transition, e.severity) for e in battery] == [
        (Transition.ON, Severity.WATCH),
        (Transition.UPDATE, Severity.ACT),
    ]


def test_sequence_gaps_count_losses_not_resets_or_outages():
    detector = Detector.for_home(Home(uprn="1"), HOME_DEVICE)
    seqs = [1, 2, 3, 5, 6, 8, 10, 11, 13, 14]  # 4 lost of 14
    events = detector.feed(series([{"seq": s, "temp_c": 20.0} for s in seqs]))
    on = [e for e in events if e.condition == "sequence_gaps"]
    assert on
    assert on[0].evidence_map["lost"] >= 3
    detector = Detector.for_home(Home(uprn="1"), HOME_DEVICE)
    seqs = [65533, 65534, 65535, 0, 1, 2, 1, 2, 3, 40, 41, 42]  # wrap, reboot, outage
    events = detector.feed(series([{"seq": s, "temp_c": 20.0} for s in seqs]))
    assert "sequence_gaps" not in ons(events)


def test_items_must_arrive_in_time_order_for_this_device():
    detector = Detector.for_home(Home(uprn="1"), HOME_DEVICE)
    detector.feed(series([{"temp_c": 20.0}] * 3))
    with pytest.raises(OutOfOrderError):
        detector.feed([Reading(HOME_DEVICE, T0, temp_c=20.0)])
    with pytest.raises(ValueError, match="fed to the detector"):
        detector.feed([Reading("other-device", T0 + timedelta(days=1), temp_c=20.0)])
    detector.advance(T0 + timedelta(days=2))
    with pytest.raises(OutOfOrderError):
        detector.feed([Reading(HOME_DEVICE, T0 + timedelta(days=1), temp_c=20.0)])


def test_fill_readings_outside_0_to_100_are_handled_not_dropped():
    # Waste heaped over the rim reads above 100 %: the strongest sign of overflow.
    heaped = Detector.for_bin(BIN).feed(
        bin_series([{"fill_pct": 60.0}] + [{"fill_pct": 105.0}] * 3)
    )
    overflow = [e for e in heaped if e.condition == "bin_overflow"]
    assert overflow
    assert overflow[-1].severity is Severity.URGENT
    # A reading below empty is an empty bin read through noise: it ends the overflow.
    rows = [{"fill_pct": 95.0}] * 3 + [{"fill_pct": -2.0}] * 3
    assert [
        t for t, _ in transitions(Detector.for_bin(BIN).feed(bin_series(rows)), "bin_overflow")
    ] == ["on", "off"]


def test_a_fire_in_an_overflowing_bin_is_detected():
    quarter = timedelta(minutes=15)
    rows = [{"fill_pct": 110.0, "temp_c": 12.0}] * 4 + [
        {"fill_pct": 110.0, "temp_c": t} for t in (35.0, 62.0, 71.0)
    ]
    events = Detector.for_bin(BIN).feed(series(rows, step=quarter, device_id=BIN_DEVICE))
    assert "bin_fire" in ons(events)
    assert "bin_overflow" in ons(events)
