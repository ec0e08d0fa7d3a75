"""What a property page draws, from the readings the API gave: dew point, the mould index and
the thresholds the home's alert rules use. Pure functions over plain values."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from alerts.mould import MouldState, mould_step
from alerts.psychrometrics import dew_point_c, surface_rh_pct
from alerts.thresholds import Threshold, configured_rules, home_thresholds

__all__ = ["Threshold", "home_series", "thresholds"]


def thresholds(uprn: str, patch: str | None, device_id: str, void: bool) -> list[Threshold]:
    """The limits this home's rules apply (the rules file's, as ``civic alerts run`` reads
    it), per chart."""
    return home_thresholds(configured_rules().for_home(uprn, patch, device_id), void=void)


def home_series(
    points: Sequence[Any], surface_offset_c: float = 3.0
) -> dict[str, list[float | None]]:
    """Columns for the charts: time (epoch seconds), temperature, RH, dew point, and the VTT
    mould index at a surface ``surface_offset_c`` colder than the air (as the mould rule
    applies it), accumulated from the start of the window."""
    ts: list[float | None] = []
    temps: list[float | None] = []
    rhs: list[float | None] = []
    dews: list[float | None] = []
    mould: list[float | None] = []
    state = MouldState()
    previous: datetime | None = None
    for p in points:
        when: datetime = p.ts
        ts.append(when.timestamp())
        temps.append(_round(p.temp_c))
        rhs.append(_round(p.rh_pct))
        if p.temp_c is None or not p.rh_pct:
            dews.append(None)
            mould.append(None)
            continue
        dews.append(_round(dew_point_c(p.temp_c, min(p.rh_pct, 100.0))))
        hours = 0.0 if previous is None else (when - previous).total_seconds() / 3600
        surface = p.temp_c - surface_offset_c
        rh = surface_rh_pct(p.temp_c, min(p.rh_pct, 100.0), surface)
        state, _ = mould_step(state, surface, rh, min(hours, 1.0))
        mould.append(round(state.index, 3))
        previous = when
    return {"ts": ts, "temp_c": temps, "rh_pct": rhs, "dew_point_c": dews, "mould_index": mould}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
