"""Moist-air arithmetic: saturation vapour pressure, dew point, condensation margin, absolute
humidity.

The Magnus form with a = 17.625, b = 243.04 °C and c = 6.1094 hPa is the Alduchov and
Eskridge (1996) fit, accurate to about ±0.35 °C in dew point for -40..50 °C over water.
"""

from __future__ import annotations

import math

__all__ = [
    "GAS_CONSTANT_FACTOR",
    "MAGNUS_A",
    "MAGNUS_B_C",
    "MAGNUS_C_HPA",
    "ZERO_C_K",
    "absolute_humidity_g_m3",
    "condensation_margin_c",
    "dew_point_c",
    "saturation_vapour_pressure_hpa",
    "surface_rh_pct",
]

MAGNUS_A = 17.625
MAGNUS_B_C = 243.04
MAGNUS_C_HPA = 6.1094
GAS_CONSTANT_FACTOR = 216.7
"""g K / (m³ hPa): 100 Pa/hPa × 1000 g/kg / 461.5 J/(kg K), water vapour's gas constant."""
ZERO_C_K = 273.15


def _check_rh(rh_pct: float) -> None:
    if not 0.0 < rh_pct <= 100.0:
        raise ValueError(f"rh_pct must be in (0, 100], got {rh_pct}")


def saturation_vapour_pressure_hpa(temp_c: float) -> float:
    """Saturation vapour pressure over water, hPa: c * exp(a T / (b + T))."""
    return MAGNUS_C_HPA * math.exp(MAGNUS_A * temp_c / (MAGNUS_B_C + temp_c))


def absolute_humidity_g_m3(temp_c: float, rh_pct: float) -> float:
    """Water vapour in the air, g/m³: the ideal gas law on the vapour pressure.

    Unlike RH it does not change when the room warms or cools, so it compares the moisture of
    homes heated to different temperatures, and of the same home on different days.
    """
    vapour_hpa = rh_pct / 100.0 * saturation_vapour_pressure_hpa(temp_c)
    return GAS_CONSTANT_FACTOR * vapour_hpa / (ZERO_C_K + temp_c)


def dew_point_c(temp_c: float, rh_pct: float) -> float:
    """Dew point, °C: Td = b γ / (a - γ) with γ = ln(RH/100) + a T / (b + T)."""
    _check_rh(rh_pct)
    # log(rh) - log(100), not log(rh / 100): the quotient underflows to 0 for tiny RH.
    gamma = math.log(rh_pct) - math.log(100.0) + MAGNUS_A * temp_c / (MAGNUS_B_C + temp_c)
    return MAGNUS_B_C * gamma / (MAGNUS_A - gamma)


def surface_rh_pct(temp_c: float, rh_pct: float, surface_temp_c: float) -> float:
    """RH at a surface colder (or warmer) than the room air, capped at 100 %.

    The room's vapour pressure is the same at the wall, but the wall's saturation pressure is
    lower, so a cold corner sees a higher RH than the sensor in the middle of the room.
    """
    _check_rh(rh_pct)
    vapour_hpa = rh_pct / 100.0 * saturation_vapour_pressure_hpa(temp_c)
    return min(100.0, 100.0 * vapour_hpa / saturation_vapour_pressure_hpa(surface_temp_c))


def condensation_margin_c(
    temp_c: float, rh_pct: float, surface_temp_c: float | None = None
) -> float:
    """Surface temperature minus dew point, °C; at or below zero water condenses.

    Without a surface sensor ``surface_temp_c`` defaults to the air temperature, which is the
    optimistic case: thermal bridges are colder, so rules subtract an allowance first.
    """
    surface = temp_c if surface_temp_c is None else surface_temp_c
    return surface - dew_point_c(temp_c, rh_pct)
