"""Rules files: layered settings per portfolio, patch, property and device, checked on load."""

from datetime import timedelta

import pytest

from alerts import ClockPolicy, Hazard, Severity
from alerts.rule_config import RuleConfigError, load_rule_config

RULES = """
[home]
disabled = ["poor_ventilation"]
[home.cold_home]
limit_c = 17.0
[home.clock_policy.overrides]
condensation_risk = false
[bin.overflow]
forecast_horizon = "12h"
[patch.north.home.cold_home]
limit_c = 21.0
severe_c = 19.0
cold_days = 3
[property.100000000001.home.cold_home]
limit_c = 19.5
severe_c = 17.0
[device.bin-000123.bin.overflow]
overflowing_pct = 90.0
severity = "urgent"
"""


@pytest.fixture
def rules(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    return load_rule_config(path)


def test_layers_apply_in_order_defaults_patch_property(rules):
    anywhere = rules.for_home("100000000009", None, "env-9")
    assert anywhere.cold_home.limit_c == 17.0
    assert anywhere.cold_home.severe_c == 16.0  # untouched fields keep the documented default
    assert anywhere.disabled == frozenset({"poor_ventilation"})
    assert anywhere.clock_policy.overrides == {"condensation_risk": False}
    north = rules.for_home("100000000009", "north", "env-9")
    assert (north.cold_home.limit_c, north.cold_home.cold_days) == (21.0, 3)
    mine = rules.for_home("100000000001", "north", "env-1")
    assert (mine.cold_home.limit_c, mine.cold_home.cold_days) == (19.5, 3)
    bin_ = rules.for_bin("bin-000123", "north")
    assert bin_.overflow.overflowing_pct == 90.0
    assert bin_.overflow.severity is Severity.URGENT
    assert bin_.overflow.forecast_horizon == timedelta(hours=12)
    assert rules.for_bin("bin-000999", None).overflow.overflowing_pct == 95.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[home.cold_home]\nlimit_c = "cold"\n', "home.cold_home.limit_c: expected a number"),
        ("[home.cold_home]\nlimit = 17\n", "home.cold_home.limit: no such setting"),
        ("[home.void_frost]\non_duration = 30\n", 'give a duration such as "2h"'),
        ('[home.mould]\nseverity = "loud"\n', "'loud' is not a severity"),
        ("[home.cold_home]\nlimit_c = 15.0\n", "severe_c must be below limit_c"),
        ("[patch.n.home.cold_home]\nlimit_c = 15.0\n", "patch.n.home.cold_home: severe_c"),
        ("[homes.cold_home]\nlimit_c = 20.0\n", "unknown section(s) homes"),
        ("[home.cold_home\n", "rules.toml"),
    ],
)
def test_a_bad_file_fails_on_load_naming_the_key(tmp_path, text, message):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(RuleConfigError) as caught:
        load_rule_config(path)
    assert message in str(caught.value)


def test_a_council_can_tune_the_moisture_rule_and_keep_it_from_the_clock(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        '[home.moisture_excess]\nfence_iqr = 2.0\nmin_time_over = "4d"\n'
        "[home.clock_policy.overrides]\ndamp_moisture_excess = false\n"
    )
    home = load_rule_config(path).for_home("100000000009", None, "env-9")
    assert home.moisture_excess.fence_iqr == 2.0
    assert home.moisture_excess.min_time_over == timedelta(days=4)
    assert not home.clock_policy.starts_clock("damp_moisture_excess", Hazard.DAMP_MOULD, void=False)
    assert ClockPolicy().starts_clock("damp_moisture_excess", Hazard.DAMP_MOULD, void=False)
