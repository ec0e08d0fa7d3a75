"""A home far more humid than its neighbours on most days of a week: damp, `act`."""

from datetime import timedelta

import pytest

from alerts import (
    ClockPolicy,
    Detector,
    Home,
    HomeRuleSettings,
    PeerMoisture,
    Severity,
    Transition,
)
from alerts.rules import MoistureExcessRule, MoistureExcessSettings, RuleContext
from tests.alerts.helpers import HOME_DEVICE, T0, series

OCCUPIED = Home(uprn="100000000020")
VOID = Home(uprn="100000000021", void=True)
EVERY = timedelta(hours=6)
CONDITION = "damp_moisture_excess"


def summaries(home_g_m3, *, median=8.0, spread=1.0, start=T0 + EVERY):
    """One summary every six hours; ``home_g_m3`` gives the home's day mean for each."""
    return [
        PeerMoisture(
            device_id=HOME_DEVICE,
            ts=start + n * EVERY,
            window=timedelta(days=1),
            home_g_m3=value,
            peer_q1_g_m3=median - spread / 2,
            peer_median_g_m3=median,
            peer_q3_g_m3=median + spread / 2,
            peer_count=400,
        )
        for n, value in enumerate(home_g_m3)
    ]


def days(*values: float) -> list[float]:
    """A day of four summaries per value."""
    return [v for v in values for _ in range(4)]


def fed(items, settings=None, home=OCCUPIED):
    detector = Detector.for_home(home, HOME_DEVICE, settings)
    return [e for e in detector.feed(items) if e.condition == CONDITION]


def test_a_home_far_above_its_peers_on_five_days_of_a_week_is_act():
    # Fence: Q3 8.5 + 1.5 x IQR 1.0 = 10.0 g/m3; the home holds 11.
    events = fed(summaries(days(11, 11, 11, 11, 11, 11)))
    assert [e.transition for e in events] == [Transition.ON]
    on = events[0]
    assert on.severity is Severity.ACT
    # Each summary stands for the six hours back to the one before: five days are twenty
    # spans after the first summary, which is when the home was first seen far above.
    assert on.at == T0 + EVERY + 20 * EVERY
    assert on.since == T0 + EVERY
    evidence = on.evidence_map
    assert evidence["fence_g_m3"] == pytest.approx(10.0)
    assert evidence["days_far_above"] == pytest.approx(5.0)
    assert evidence["excess_over_median_g_m3"] == pytest.approx(3.0)
    # Persistence over days: it starts the Awaab's Law clock, unless the council says not.
    assert on.starts_statutory_clock
    surface_first = HomeRuleSettings(clock_policy=ClockPolicy(overrides={CONDITION: False}))
    assert not fed(summaries(days(11, 11, 11, 11, 11, 11)), surface_first)[0].starts_statutory_clock


def test_laundry_on_two_days_of_every_week_never_raises_it():
    weeks = days(11, 8, 8, 11, 8, 8, 8) * 4
    assert fed(summaries(weeks)) == []


def test_just_under_the_fence_all_month_raises_nothing():
    assert fed(summaries(days(*[9.9] * 30))) == []


def test_it_clears_once_the_home_is_back_among_its_peers_for_days():
    events = fed(summaries(days(11, 11, 11, 11, 11, 11, 8, 8, 8, 8, 8)))
    assert [e.transition for e in events] == [Transition.ON, Transition.OFF]
    # Off once no more than two of the last seven days were far above.
    assert events[1].evidence_map["days_far_above"] <= 2.0
    assert events[1].at - events[0].at >= timedelta(days=3)


def test_the_fence_follows_how_much_homes_differ():
    # Summer: windows open, homes differ less (IQR 0.7); 2 g/m3 over the median is far above.
    summer = summaries(days(*[10.0] * 6), median=8.0, spread=0.7)
    assert [e.transition for e in fed(summer)] == [Transition.ON]
    # Winter: homes differ more (IQR 1.6); the same 2 g/m3 is among the wetter ordinary homes.
    winter = summaries(days(*[10.0] * 6), median=8.0, spread=1.6)
    assert fed(winter) == []


def test_on_an_estate_of_identical_homes_a_hair_above_the_median_is_not_far_above():
    alike = summaries(days(*[8.5] * 8), median=8.0, spread=0.0)
    assert fed(alike) == []
    wet = summaries(days(*[9.1] * 8), median=8.0, spread=0.0)
    assert [e.transition for e in fed(wet)] == [Transition.ON]


def test_a_stuck_sensors_repeated_values_are_not_compared():
    # A sensor that froze in a shower's steam: its day means are the steam's, not the room's.
    frozen = series([{"temp_c": 21.0, "rh_pct": 95.0}] * (4 * 24 * 7), start=T0)
    items = sorted(
        [*frozen, *summaries(days(15, 15, 15, 15, 15, 15))],
        key=lambda i: (i.ts, isinstance(i, PeerMoisture)),
    )
    detector = Detector.for_home(OCCUPIED, HOME_DEVICE)
    events = detector.feed(items)
    assert "sensor_frozen" in {e.condition for e in events}
    assert [e for e in events if e.condition == CONDITION] == []


def test_void_homes_have_no_moisture_rule():
    assert fed(summaries(days(11, 11, 11, 11, 11, 11)), home=VOID) == []
    assert CONDITION in {r.condition for r in Detector.for_home(OCCUPIED, HOME_DEVICE).rules}


def test_moisture_settings_are_validated():
    for bad, message in (
        ({"fence_iqr": 0.0}, "fence_iqr"),
        ({"min_over_median_g_m3": -1.0}, "min_over_median_g_m3"),
        ({"min_time_over": timedelta(days=8)}, "min_time_over"),
        ({"clear_time_over": timedelta(days=5)}, "clear_time_over"),
        ({"min_coverage": 0.0}, "min_coverage"),
    ):
        with pytest.raises(ValueError, match=message):
            MoistureExcessSettings(**bad)
    rule = MoistureExcessRule(RuleContext("100000000020", HOME_DEVICE))
    assert rule.settings.fence_iqr == 1.5
