"""The VTT mould index against the published model and an independent transcription of it."""

import math

import numpy as np
import pytest

from alerts.mould import (
    MouldSettings,
    MouldState,
    SensitivityClass,
    SurfaceQuality,
    TimberSpecies,
    mould_index_series,
    mould_step,
    rh_crit_pct,
)


def reference_trh1(temps, rhs, k1_low, k1_high, a, b, c, rh_min, c_mat=1.0):
    """Hourly loop following anssilaukkarinen/trh-1 mi.py (the updated Finnish model)."""
    m = np.zeros(len(temps) + 1)
    tfr = 0
    for k in range(len(temps)):
        t, rh = temps[k], rhs[k]
        rh_crit = 100 if t < 0 else max(-0.00267 * t**3 + 0.16 * t**2 - 3.13 * t + 100, rh_min)
        if 0 < t < 50 and rh >= rh_crit:
            x = (rh_crit - rh) / (rh_crit - 100)
            m_max = max(a + b * x - c * x**2, 0)
            k1 = k1_low if m[k] < 1 else k1_high
            tfr = 0
            k2 = max(1 - math.exp(2.3 * (m[k] - m_max)), 0)
            dmdt = (
                1 / (7 * math.exp(-0.68 * math.log(t) - 13.9 * math.log(rh) + 66.02)) * k1 * k2 / 24
            )
        else:
            tfr += 1
            rate = -0.032 / 24 if tfr <= 6 else (0 if tfr <= 24 else -0.016 / 24)
            dmdt = c_mat * rate
        m[k + 1] = max(m[k] + dmdt, 0)
    return m[1:]


def test_rh_crit_follows_published_polynomial_with_floor():
    assert rh_crit_pct(10.0) == pytest.approx(-2.67 + 16 - 31.3 + 100)
    assert rh_crit_pct(30.0) == 80.0  # the polynomial falls below 80 in warm rooms
    assert rh_crit_pct(30.0, SensitivityClass.MEDIUM_RESISTANT) == 85.0
    assert rh_crit_pct(-1.0) == 100.0


def test_single_growth_step_matches_hand_calculation():
    state, step = mould_step(MouldState(), 20.0, 97.0, 24.0)
    expected_rate = 0.578 / (7 * math.exp(-0.68 * math.log(20) - 13.9 * math.log(97) + 66.02))
    k2 = 1 - math.exp(2.3 * (0 - step.m_max))
    assert step.growing
    assert state.index == pytest.approx(expected_rate * k2)
    assert "RH_crit" in step.explain()


def test_kiln_dried_surface_grows_faster_and_spruce_slower():
    base = mould_step(MouldState(), 20.0, 95.0, 24.0)[0].index
    kiln = mould_step(
        MouldState(), 20.0, 95.0, 24.0, MouldSettings(surface=SurfaceQuality.KILN_DRIED)
    )[0].index
    spruce = mould_step(
        MouldState(), 20.0, 95.0, 24.0, MouldSettings(species=TimberSpecies.SPRUCE)
    )[0].index
    assert kiln == pytest.approx(base * math.exp(0.33))
    assert spruce == pytest.approx(base * math.exp(-0.14))


@pytest.mark.parametrize(
    ("sensitivity", "coefficients", "reaches"),
    [
        (SensitivityClass.VERY_SENSITIVE, (1, 2, 1, 7, 2, 80), 1.0),
        (SensitivityClass.SENSITIVE, (0.578, 0.386, 0.3, 6, 1, 80), 1.0),
        (SensitivityClass.MEDIUM_RESISTANT, (0.072, 0.097, 0, 5, 1.5, 85), 0.05),
    ],
)
def test_series_matches_reference_loop(sensitivity, coefficients, reaches):
    rng = np.random.default_rng(7)
    hours = 24 * 120
    # Wet spells and dry spells, so growth, the k1 switch at M=1 and all decline phases occur.
    wet = (np.arange(hours) // (24 * 9)) % 3 != 2
    temps = 18 + 4 * rng.standard_normal(hours).clip(-2, 2)
    rhs = np.where(wet, 93 + 4 * rng.random(hours), 60 + 10 * rng.random(hours))
    ours = mould_index_series(list(temps), list(rhs), 1.0, MouldSettings(sensitivity=sensitivity))
    theirs = reference_trh1(temps, rhs, *coefficients)
    # Sensitive classes pass M = 1, so the comparison covers the second growth phase too.
    assert max(ours) > reaches
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_no_growth_below_rh_crit_or_out_of_temperature_range():
    for temp_c, rh_pct in ((20.0, 79.0), (0.0, 99.0), (-5.0, 99.0), (55.0, 99.0)):
        state, step = mould_step(MouldState(index=0.0), temp_c, rh_pct, 24.0)
        assert not step.growing
        assert state.index == 0.0


def test_decline_rates_by_dry_period():
    start = MouldState(index=2.0)
    after_6h, _ = mould_step(start, 20.0, 50.0, 6.0)
    assert after_6h.index == pytest.approx(2.0 - 0.032 / 4)
    after_24h, _ = mould_step(after_6h, 20.0, 50.0, 18.0)
    assert after_24h.index == pytest.approx(after_6h.index)  # the 6-24 h pause
    after_48h, _ = mould_step(after_24h, 20.0, 50.0, 24.0)
    assert after_48h.index == pytest.approx(after_24h.index - 0.016)
    # Irregular steps integrate the same piecewise law.
    state = start
    for hours in (0.5, 2.5, 4.0, 10.0, 31.0):
        state, _ = mould_step(state, 20.0, 50.0, hours)
    assert state.index == pytest.approx(after_48h.index)


def test_index_never_exceeds_class_maximum():
    state = MouldState()
    for _ in range(24 * 400):
        state, step = mould_step(state, 25.0, 100.0, 1.0)
    assert state.index <= 5.3 + 1e-9  # sensitive class: Mmax = 0.3 + 6 - 1
    assert step.m_max == pytest.approx(5.3)
