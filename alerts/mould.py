"""The VTT (Hukka–Viitanen) mould growth index, stepped one reading interval at a time.

Model
-----
Hukka, A. and Viitanen, H. (1999) "A mathematical model of mould growth on wooden
material", Wood Science and Technology 33, 475-485, doi:10.1007/s002260050131; with the
sensitivity classes, Mmax coefficients and decline coefficient of the updated model:
Ojanen, T., Viitanen, H. et al. (2010) "Mold growth modeling of building structures using
sensitivity classes of materials", Thermal Performance of the Exterior Envelopes of Whole
Buildings XI.

Growth, when 0 < T < 50 °C and RH >= RH_crit (t in days)::

    dM/dt = k1 * k2 / (7 * exp(-0.68 ln T - 13.9 ln RH + 0.14 W - 0.33 SQ + 66.02))
    RH_crit = max(-0.00267 T^3 + 0.16 T^2 - 3.13 T + 100, RH_min)
    Mmax = A + B x - C x^2,  x = (RH_crit - RH) / (RH_crit - 100)
    k2 = max(1 - exp(2.3 (M - Mmax)), 0)

Decline, otherwise, by hours since the dry period began (Hukka and Viitanen 1999)::

    dM/dt = C_mat * (-0.032 per day for the first 6 h; 0 from 6 h to 24 h; -0.016 per day after)

Checked against two open implementations: ``mi.py`` in anssilaukkarinen/trh-1 (Finnish
mould growth model, hourly steps; our defaults reproduce it, see the tests) and
``calcMould_VTT.R`` in BhavShah01/ConSciR. The latter writes ``+ 3.13 T`` in RH_crit and
uses a single growth step without decline; we follow the published ``- 3.13 T`` and the
decline law, as trh-1 does.

Inputs
------
W (timber species) is 0 for pine, 1 for spruce; SQ (surface quality) is 0 for a resawn
surface, 1 for a kiln-dried original surface (which grows about 1.4 times faster). Defaults:
the "sensitive" class (RH_min 80 %, as DOMAIN.md's RH_crit), pine, resawn, C_mat 1; with
W = SQ = 0 the growth law is the one trh-1 uses for the updated model.

Readings arrive at irregular intervals, so each step integrates the conditions of the
reading that closes the interval over that interval (explicit Euler, as the references do
with a fixed hour).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "FORMULA",
    "MouldSettings",
    "MouldState",
    "MouldStep",
    "SensitivityClass",
    "SurfaceQuality",
    "TimberSpecies",
    "mould_index_series",
    "mould_step",
    "rh_crit_pct",
]

FORMULA = (
    "VTT mould index (Hukka & Viitanen 1999; Ojanen et al. 2010): growth when 0<T<50 C and "
    "RH>=RH_crit, dM/dt = k1*k2/(7*exp(-0.68 ln T - 13.9 ln RH + 0.14 W - 0.33 SQ + 66.02)) "
    "per day, RH_crit = max(-0.00267 T^3 + 0.16 T^2 - 3.13 T + 100, RH_min), "
    "k2 = max(1 - exp(2.3 (M - Mmax)), 0), Mmax = A + B x - C x^2, x = (RH_crit-RH)/(RH_crit-100); "
    "otherwise decline C_mat*(-0.032/day for 6 h, 0 to 24 h, -0.016/day after)"
)

MAX_INDEX = 6.0
_FAST_DECLINE_HOURS = 6.0
_PAUSE_HOURS = 24.0
_FAST_DECLINE_PER_DAY = -0.032
_SLOW_DECLINE_PER_DAY = -0.016


class SensitivityClass(StrEnum):
    """Ojanen et al. (2010) material classes."""

    VERY_SENSITIVE = "very_sensitive"
    """Untreated pine sapwood."""
    SENSITIVE = "sensitive"
    """Glued wooden boards, PUR with paper surface, spruce; a proxy for plasterboard paper."""
    MEDIUM_RESISTANT = "medium_resistant"
    """Concrete, aerated and cellular concrete, glass wool, polyester wool."""
    RESISTANT = "resistant"
    """PUR with polished surface, glass and metal products."""


@dataclass(frozen=True, slots=True)
class _ClassCoefficients:
    k1_below_1: float
    k1_from_1: float
    a: float
    b: float
    c: float
    rh_min_pct: float


_COEFFICIENTS = {
    SensitivityClass.VERY_SENSITIVE: _ClassCoefficients(1.0, 2.0, 1.0, 7.0, 2.0, 80.0),
    SensitivityClass.SENSITIVE: _ClassCoefficients(0.578, 0.386, 0.3, 6.0, 1.0, 80.0),
    SensitivityClass.MEDIUM_RESISTANT: _ClassCoefficients(0.072, 0.097, 0.0, 5.0, 1.5, 85.0),
    SensitivityClass.RESISTANT: _ClassCoefficients(0.033, 0.014, 0.0, 3.0, 1.0, 85.0),
}


class TimberSpecies(StrEnum):
    PINE = "pine"
    SPRUCE = "spruce"

    @property
    def w(self) -> int:
        return 0 if self is TimberSpecies.PINE else 1


class SurfaceQuality(StrEnum):
    RESAWN = "resawn"
    KILN_DRIED = "kiln_dried"

    @property
    def sq(self) -> int:
        return 0 if self is SurfaceQuality.RESAWN else 1


@dataclass(frozen=True, slots=True)
class MouldSettings:
    """Model inputs; the defaults are the "sensitive" class (see the module docstring)."""

    sensitivity: SensitivityClass = SensitivityClass.SENSITIVE
    species: TimberSpecies = TimberSpecies.PINE
    surface: SurfaceQuality = SurfaceQuality.RESAWN
    decline_coefficient: float = 1.0
    """C_mat of Ojanen et al. (2010): 1 is the timber rate; below 1 mould persists longer."""

    def __post_init__(self) -> None:
        if not 0.0 < self.decline_coefficient <= 1.0:
            raise ValueError(
                f"decline_coefficient must be in (0, 1], got {self.decline_coefficient}"
            )


@dataclass(frozen=True, slots=True)
class MouldState:
    """What the model carries between steps: the index and how long it has been dry."""

    index: float = 0.0
    dry_hours: float = 0.0


@dataclass(frozen=True, slots=True)
class MouldStep:
    """One step of the model with everything needed to re-derive it by hand."""

    index: float
    previous_index: float
    trend_per_day: float
    growing: bool
    temp_c: float
    rh_pct: float
    hours: float
    rh_crit_pct: float
    m_max: float | None
    k1: float | None
    k2: float | None
    dry_hours: float
    settings: MouldSettings

    def explain(self) -> str:
        if self.growing:
            detail = (
                f"growing: T={self.temp_c:.1f} C, RH={self.rh_pct:.1f} % >= RH_crit="
                f"{self.rh_crit_pct:.1f} %, Mmax={self.m_max:.2f}, k1={self.k1:.3f}, "
                f"k2={self.k2:.3f}"
            )
        else:
            detail = (
                f"not growing: T={self.temp_c:.1f} C, RH={self.rh_pct:.1f} % vs RH_crit="
                f"{self.rh_crit_pct:.1f} %, dry for {self.dry_hours:.1f} h"
            )
        return (
            f"M={self.index:.3f} (was {self.previous_index:.3f}, {self.trend_per_day:+.4f}/day "
            f"over {self.hours:.2f} h); {detail}; class={self.settings.sensitivity.value}, "
            f"W={self.settings.species.w}, SQ={self.settings.surface.sq}, "
            f"C_mat={self.settings.decline_coefficient}. {FORMULA}"
        )


def rh_crit_pct(temp_c: float, sensitivity: SensitivityClass = SensitivityClass.SENSITIVE) -> float:
    """Critical RH for growth; 100 % at or below freezing, where the model allows no growth."""
    if temp_c <= 0.0:
        return 100.0
    polynomial = -0.00267 * temp_c**3 + 0.16 * temp_c**2 - 3.13 * temp_c + 100.0
    return max(polynomial, _COEFFICIENTS[sensitivity].rh_min_pct)


def _decline(dry_hours_before: float, hours: float) -> float:
    """Index change from decline over (dry_hours_before, dry_hours_before + hours]."""
    start = dry_hours_before
    end = dry_hours_before + hours
    fast = max(0.0, min(end, _FAST_DECLINE_HOURS) - start)
    slow = max(0.0, end - max(start, _PAUSE_HOURS))
    return (fast * _FAST_DECLINE_PER_DAY + slow * _SLOW_DECLINE_PER_DAY) / 24.0


def mould_step(
    state: MouldState,
    temp_c: float,
    rh_pct: float,
    hours: float,
    settings: MouldSettings = MouldSettings(),
) -> tuple[MouldState, MouldStep]:
    """Advance the index by ``hours`` under constant ``temp_c`` and ``rh_pct``."""
    if hours < 0:
        raise ValueError(f"hours must be non-negative, got {hours}")
    coefficients = _COEFFICIENTS[settings.sensitivity]
    rh_crit = rh_crit_pct(temp_c, settings.sensitivity)
    index = state.index
    if 0.0 < temp_c < 50.0 and rh_pct >= rh_crit:
        x = (rh_crit - rh_pct) / (rh_crit - 100.0) if rh_crit < 100.0 else 1.0
        m_max = max(coefficients.a + coefficients.b * x - coefficients.c * x * x, 0.0)
        k1 = coefficients.k1_below_1 if index < 1.0 else coefficients.k1_from_1
        k2 = max(1.0 - math.exp(2.3 * (index - m_max)), 0.0)
        exponent = (
            -0.68 * math.log(temp_c)
            - 13.9 * math.log(rh_pct)
            + 0.14 * settings.species.w
            - 0.33 * settings.surface.sq
            + 66.02
        )
        rate_per_day = k1 * k2 / (7.0 * math.exp(exponent))
        new_index = min(index + rate_per_day * hours / 24.0, MAX_INDEX)
        new_state = MouldState(index=new_index, dry_hours=0.0)
        step = MouldStep(
            index=new_index,
            previous_index=index,
            trend_per_day=rate_per_day,
            growing=True,
            temp_c=temp_c,
            rh_pct=rh_pct,
            hours=hours,
            rh_crit_pct=rh_crit,
            m_max=m_max,
            k1=k1,
            k2=k2,
            dry_hours=0.0,
            settings=settings,
        )
        return new_state, step
    change = settings.decline_coefficient * _decline(state.dry_hours, hours)
    new_index = max(index + change, 0.0)
    dry_hours = state.dry_hours + hours
    trend = (new_index - index) * 24.0 / hours if hours > 0 else 0.0
    step = MouldStep(
        index=new_index,
        previous_index=index,
        trend_per_day=trend,
        growing=False,
        temp_c=temp_c,
        rh_pct=rh_pct,
        hours=hours,
        rh_crit_pct=rh_crit,
        m_max=None,
        k1=None,
        k2=None,
        dry_hours=dry_hours,
        settings=settings,
    )
    return MouldState(index=new_index, dry_hours=dry_hours), step


def mould_index_series(
    temps_c: list[float] | tuple[float, ...],
    rhs_pct: list[float] | tuple[float, ...],
    step_hours: float = 1.0,
    settings: MouldSettings = MouldSettings(),
    initial: MouldState = MouldState(),
) -> list[float]:
    """Index after each step of a regular series (for reports and comparison with references)."""
    if len(temps_c) != len(rhs_pct):
        raise ValueError("temps_c and rhs_pct must have the same length")
    state = initial
    out: list[float] = []
    for temp_c, rh_pct in zip(temps_c, rhs_pct, strict=True):
        state, _ = mould_step(state, temp_c, rh_pct, step_hours, settings)
        out.append(state.index)
    return out
