import math

import pytest

from alerts.psychrometrics import (
    absolute_humidity_g_m3,
    condensation_margin_c,
    dew_point_c,
    saturation_vapour_pressure_hpa,
    surface_rh_pct,
)


def test_dew_point_equals_temperature_at_saturation():
    for temp_c in (-10.0, 0.0, 12.5, 20.0, 35.0):
        assert dew_point_c(temp_c, 100.0) == pytest.approx(temp_c, abs=1e-9)


def test_dew_point_matches_published_table_values():
    # Psychrometric tables: 20 C at 50 % -> 9.3 C; 25 C at 60 % -> 16.7 C (within Magnus' 0.35 C).
    assert dew_point_c(20.0, 50.0) == pytest.approx(9.3, abs=0.35)
    assert dew_point_c(25.0, 60.0) == pytest.approx(16.7, abs=0.35)


def test_dew_point_inverts_saturation_pressure():
    temp_c, rh_pct = 18.0, 73.0
    vapour = rh_pct / 100 * saturation_vapour_pressure_hpa(temp_c)
    assert saturation_vapour_pressure_hpa(dew_point_c(temp_c, rh_pct)) == pytest.approx(vapour)


def test_condensation_margin_is_surface_minus_dew_point():
    margin = condensation_margin_c(20.0, 80.0, surface_temp_c=15.0)
    assert margin == pytest.approx(15.0 - dew_point_c(20.0, 80.0))
    assert condensation_margin_c(20.0, 80.0) > margin
    assert condensation_margin_c(20.0, 80.0, surface_temp_c=dew_point_c(20.0, 80.0)) == (
        pytest.approx(0.0, abs=1e-9)
    )


def test_surface_rh_rises_at_cold_surfaces_and_caps_at_100():
    assert surface_rh_pct(20.0, 60.0, 20.0) == pytest.approx(60.0)
    colder = surface_rh_pct(20.0, 60.0, 15.0)
    assert 60.0 < colder < 100.0
    assert surface_rh_pct(20.0, 90.0, 5.0) == 100.0


@pytest.mark.parametrize("rh_pct", [0.0, -5.0, 100.5, math.nan])
def test_rejects_impossible_humidity(rh_pct):
    with pytest.raises(ValueError, match="rh_pct"):
        dew_point_c(20.0, rh_pct)


def test_absolute_humidity_matches_published_table_values():
    # Saturated air holds 17.3 g/m3 at 20 C and 4.8 g/m3 at 0 C (psychrometric tables).
    assert absolute_humidity_g_m3(20.0, 100.0) == pytest.approx(17.3, abs=0.1)
    assert absolute_humidity_g_m3(0.0, 100.0) == pytest.approx(4.85, abs=0.05)
    # The same air warmed from 15 to 21 C: RH falls, the water in it does not.
    warm_rh = 80.0 * saturation_vapour_pressure_hpa(15.0) / saturation_vapour_pressure_hpa(21.0)
    assert warm_rh < 60.0
    assert absolute_humidity_g_m3(21.0, warm_rh) == pytest.approx(
        absolute_humidity_g_m3(15.0, 80.0), rel=0.03
    )
