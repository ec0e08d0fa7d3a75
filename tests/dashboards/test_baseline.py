"""The waste screen's baseline: a closed-loop results table read by policy and figure."""

from __future__ import annotations

from dashboards.baseline import read_closed_loop

PAGE = """Command: `.venv/bin/python bench/routing_closed_loop.py --bins 30`

| policy | km | truck-shifts | bins lifted | overflow-hours | mean fill lifted (%) |
|---|---:|---:|---:|---:|---:|
| fixed | 200 | 10 | 400 | 50 | 59 |
| weekly | 180 | 9 | 300 | 90 | 65 |
| dynamic 80 % | 150 | 8 | 350 | 40 | 71 |
| dynamic 90 % | 140 | 8 | 330 | 45 | 75 |

Notes.
"""


def test_the_first_dynamic_policy_is_compared_with_the_fixed_round() -> None:
    loop = read_closed_loop(PAGE)
    assert loop is not None
    assert loop.command == ".venv/bin/python bench/routing_closed_loop.py --bins 30"
    assert loop.dynamic_name == "dynamic 80 %"
    assert loop.fixed == {"km": 200.0, "collected": 400.0, "overflow_hours": 50.0}
    assert loop.change("km") == 150 / 200 - 1
    assert loop.change("overflow_hours") == 40 / 50 - 1


def test_a_page_without_a_fixed_round_has_no_baseline() -> None:
    assert read_closed_loop(PAGE.replace("| fixed |", "| other |")) is None
    assert read_closed_loop("no table here") is None
