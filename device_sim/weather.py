"""Outdoor weather for simulated homes and bins: a season's mean and daily swing, and spells of
milder or colder days, so condensation and frost are judged in the weather that makes them.

Seasons are set from UK climate normals (Met Office 1991-2020, England): January mean about
4.5 °C with a daily range of about 5 °C and outdoor RH near 87 %; July mean about 17 °C with a
range of about 9 °C and RH near 72 %. ``november`` (6.5 °C) is the default the demo has always
used. Day-to-day spells are an AR(1) anomaly of the daily mean (a cold snap lasts days).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

__all__ = ["SEASONS", "Season", "Weather"]


@dataclass(frozen=True, slots=True)
class Season:
    name: str
    mean_c: float
    swing_c: float
    """Half the daily range: coldest about 05:00, warmest about 15:00."""
    rh_pct: float
    spell_sd_c: float
    """Standard deviation of the daily mean's anomaly (spells of weather)."""


SEASONS: Final[dict[str, Season]] = {
    "november": Season("november", 6.5, 3.0, 85.0, 0.0),
    "winter": Season("winter", 4.5, 2.5, 87.0, 2.5),
    "summer": Season("summer", 17.0, 4.5, 72.0, 2.0),
}

SPELL_PERSISTENCE = 0.8  # day-to-day correlation of the anomaly: spells of three to five days
SPELL_MEMORY_DAYS = 30  # 0.8^30 < 0.002: older shocks no longer matter


@dataclass
class Weather:
    """One town's weather; every device in it sees the same days."""

    season: Season = field(default_factory=lambda: SEASONS["november"])
    seed: int = 1
    _anomaly: dict[int, float] = field(default_factory=dict)

    @classmethod
    def named(cls, season: str, seed: int = 1) -> Weather:
        try:
            return cls(SEASONS[season], seed)
        except KeyError:
            raise ValueError(f"unknown season {season!r}; seasons: {', '.join(SEASONS)}") from None

    def _innovation(self, day: int) -> float:
        return random.Random(f"{self.seed}:{self.season.name}:{day}").gauss(0, 1)

    def _day_anomaly(self, day: int) -> float:
        """The AR(1) anomaly as a sum of the last weeks' shocks: the same value whatever order
        days are asked in, in any process."""
        if self.season.spell_sd_c == 0:
            return 0.0
        if day not in self._anomaly:
            scale = self.season.spell_sd_c * math.sqrt(1 - SPELL_PERSISTENCE**2)
            self._anomaly[day] = scale * sum(
                SPELL_PERSISTENCE**k * self._innovation(day - k) for k in range(SPELL_MEMORY_DAYS)
            )
        return self._anomaly[day]

    def temp_c(self, ts: datetime, offset_c: float = 0.0) -> float:
        hours = ts.hour + ts.minute / 60
        daily = self.season.swing_c * math.sin((hours - 9) / 24 * 2 * math.pi)
        return self.season.mean_c + self._day_anomaly(ts.toordinal()) + offset_c + daily

    def rh_pct(self, ts: datetime) -> float:
        return self.season.rh_pct
