"""The demo plans the next round the crews have not finished, whatever the hour it is run."""

import datetime as dt

from civic.demo import route_day

# The default fleet: Monday to Friday, 07:00-15:00 in Europe/London.


def test_a_morning_run_plans_today_and_an_evening_run_the_next_working_day():
    wednesday_morning = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
    assert route_day(None, wednesday_morning) == "2026-12-02"
    wednesday_evening = dt.datetime(2026, 12, 2, 20, 30, tzinfo=dt.UTC)
    assert route_day(None, wednesday_evening) == "2026-12-03"


def test_a_friday_evening_or_weekend_run_plans_monday():
    assert route_day(None, dt.datetime(2026, 12, 4, 16, 0, tzinfo=dt.UTC)) == "2026-12-07"
    assert route_day(None, dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.UTC)) == "2026-12-07"


def test_the_shift_ends_at_local_time():
    # 14:30 UTC in July is 15:30 in London: that day's shift is over.
    assert route_day(None, dt.datetime(2026, 7, 1, 14, 30, tzinfo=dt.UTC)) == "2026-07-02"
    assert route_day(None, dt.datetime(2026, 1, 7, 14, 30, tzinfo=dt.UTC)) == "2026-01-07"
