"""Physical models of simulated devices: pure, stepped by the caller's clock.

Bins fill through the day at per-bin rates with weekday patterns and are emptied by a weekly
round (or by a planned route, via :meth:`BinModel.collect`). Homes follow outdoor temperature,
heating schedules and moisture from showers and cooking; indoor RH comes from absolute
humidity, so a cold home is a damp home, as in real housing stock.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from device_sim.truth import HomeTruth
from device_sim.weather import Weather

# Relative filling by weekday (Mon..Sun): weekends and Mondays are heavier on streets.
WEEKDAY_FACTOR = (1.15, 0.95, 0.9, 0.95, 1.05, 1.25, 1.2)
# Relative filling by hour: almost nothing overnight, peaks late morning and early evening.
HOURLY_FACTOR = (
    0.1,
    0.05,
    0.05,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    1.4,
    1.5,
    1.6,
    1.7,
    1.7,
    1.6,
    1.5,
    1.5,
    1.6,
    1.8,
    1.7,
    1.4,
    1.1,
    0.8,
    0.5,
    0.2,
)
STREAM_RATE_PCT_PER_DAY = {"general": 16.0, "recycling": 11.0, "garden": 8.0}
OUTDOOR_MEAN_C, OUTDOOR_SWING_C = 6.5, 3.0  # a UK November
OUTDOOR_RH_PCT = 85.0


def outdoor_temp_c(ts: datetime, offset_c: float = 0.0) -> float:
    hours = ts.hour + ts.minute / 60
    # Coldest around 05:00, warmest around 15:00.
    return OUTDOOR_MEAN_C + offset_c + OUTDOOR_SWING_C * math.sin((hours - 9) / 24 * 2 * math.pi)


def saturation_ah_g_m3(temp_c: float) -> float:
    """Water vapour density at saturation (Magnus form), g/m³."""
    return 6.112 * math.exp(17.67 * temp_c / (temp_c + 243.5)) * 100 * 2.1674 / (273.15 + temp_c)


@dataclass
class BinModel:
    device_id: str
    stream: str
    rng: random.Random
    fill_pct: float = 0.0
    rate_pct_per_day: float = 12.0
    collection_weekday: int = 0  # the fixed weekly round's day (0 = Monday)
    collection_hour: float = 9.0
    battery_v: float = 3.6
    noise_pct: float = 1.5
    last_ts: datetime | None = None
    last_collected_on: int | None = None  # ordinal of the day of the last weekly round
    weekly_round: bool = True
    rounds: list[datetime] = field(default_factory=list)
    """When the weekly round emptied the bin: what the crew's round sheet says."""

    @classmethod
    def create(cls, device_id: str, stream: str, rng: random.Random) -> BinModel:
        base = STREAM_RATE_PCT_PER_DAY.get(stream, 12.0)
        return cls(
            device_id=device_id,
            stream=stream,
            rng=rng,
            fill_pct=rng.uniform(0, 60),
            rate_pct_per_day=base * rng.lognormvariate(0, 0.45),
            collection_weekday=rng.randrange(5),
            collection_hour=rng.uniform(7.5, 14.5),
            # Lithium cells sit near 3.6 V; a few are near the end of their life.
            battery_v=rng.uniform(3.2, 3.35) if rng.random() < 0.03 else rng.uniform(3.45, 3.65),
        )

    def collect(self) -> None:
        """A crew empties the bin."""
        self.fill_pct = self.rng.uniform(0, 3)

    def advance(self, ts: datetime) -> None:
        if self.last_ts is not None and ts > self.last_ts:
            hours = (ts - self.last_ts).total_seconds() / 3600
            factor = WEEKDAY_FACTOR[ts.weekday()] * HOURLY_FACTOR[ts.hour]
            self.fill_pct = min(self.fill_pct + self.rate_pct_per_day / 24 * hours * factor, 108.0)
            self.battery_v = max(self.battery_v - 0.00002 * hours, 2.5)
        day = ts.toordinal()
        if (
            self.weekly_round
            and ts.weekday() == self.collection_weekday
            and ts.hour + ts.minute / 60 >= self.collection_hour
            and self.last_collected_on != day
        ):
            self.collect()
            self.last_collected_on = day
            midnight = ts.replace(hour=0, minute=0, second=0, microsecond=0)
            self.rounds.append(midnight + timedelta(hours=self.collection_hour))
        self.last_ts = ts

    def reading(self, ts: datetime) -> dict[str, float]:
        self.advance(ts)
        measured = self.fill_pct + self.rng.gauss(0, self.noise_pct)
        return {
            "fill_pct": round(min(max(measured, -5.0), 110.0), 1),
            "temp_c": round(outdoor_temp_c(ts, 1.5) + self.rng.gauss(0, 0.3), 1),
            "battery_v": round(self.battery_v, 3),
            "tilt_deg": round(abs(self.rng.gauss(2, 1)), 1),
        }


# Background heat a council keeps in an empty home so pipes do not freeze (10-15 °C is the
# usual guidance; DOMAIN.md *default* 12 °C as the alert line, so voids are kept a little above).
VOID_BACKGROUND_C = 13.5
# What an under-heated home reaches when it heats: it cannot, or cannot afford to, get to 18 °C.
UNDER_HEATED_SETPOINT_C = (14.5, 16.5)
# Summer: windows open, so a household's moisture leaves faster.
SUMMER_VENTILATION = 0.7
LEAK_MOISTURE_G_M3 = 8.0  # a dripping pipe or a wet wall adds this much water vapour
DRYING_MOISTURE_G_M3 = 3.0  # a rack of laundry drying indoors


@dataclass
class HomeModel:
    device_id: str
    void: bool
    rng: random.Random
    temp_c: float = 18.0
    excess_ah_g_m3: float = 3.0  # moisture the household adds over outdoor air
    setpoint_c: float | None = 20.0  # None: heating off
    heating_hours: tuple[tuple[int, int], ...] = ((6, 9), (17, 22))
    shower_hour: float = 7.0
    has_co2: bool = False
    battery_v: float = 3.1
    battery_drain_v_per_h: float = 0.00001
    time_constant_h: float = 14.0  # how fast the fabric follows outdoor temperature
    weather: Weather = field(default_factory=Weather)
    truth: HomeTruth = field(default_factory=HomeTruth)
    last_ts: datetime | None = None
    stuck_values: dict[str, float] | None = None
    remote_setpoint: bool = False
    """A setpoint sent remotely: a void's heating that had gone off is back on."""
    events: list[str] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        device_id: str,
        void: bool,
        rng: random.Random,
        *,
        weather: Weather | None = None,
        truth: HomeTruth | None = None,
    ) -> HomeModel:
        """A home whose behaviour follows its labels (:mod:`device_sim.truth`); without
        ``truth`` it gets an ordinary occupied or void home."""
        truth = truth or HomeTruth(void=void)
        if void:
            setpoint: float | None = VOID_BACKGROUND_C
        elif truth.under_heated:
            setpoint = rng.uniform(*UNDER_HEATED_SETPOINT_C)
        else:
            setpoint = rng.uniform(18.5, 21.5)
        dying = truth.first("battery_dying") is not None
        return cls(
            device_id=device_id,
            void=void,
            rng=rng,
            temp_c=rng.uniform(12, 16) if void else rng.uniform(17, 21),
            excess_ah_g_m3=(
                0.3
                if void
                else rng.uniform(5.0, 6.5)
                if truth.damp_prone
                else rng.uniform(1.5, 3.5)
            ),
            setpoint_c=setpoint,
            heating_hours=((0, 24),) if void else ((6, 9), (17, 22)),
            shower_hour=rng.uniform(6.5, 8.5),
            has_co2=rng.random() < 0.3,
            battery_v=rng.uniform(3.2, 3.3) if dying else rng.uniform(3.45, 3.65),
            battery_drain_v_per_h=0.0005 if dying else 0.00001,
            weather=weather or Weather(),
            truth=truth,
        )

    def set_heating(self, setpoint_c: float | None) -> None:
        """Remote heating control (e.g. frost protection for a void home)."""
        self.setpoint_c = setpoint_c
        self.remote_setpoint = True
        # Remote setpoints hold all day, unlike an occupied home's timed schedule.
        self.heating_hours = ((0, 24),) if self.void else self.heating_hours

    def _heating_on(self, ts: datetime) -> bool:
        if self.setpoint_c is None:
            return False
        if self.truth.active("void_heating_failed", ts) and not self.remote_setpoint:
            return False  # switched off or tripped, until someone turns it back on
        if self.truth.active("away_week", ts) or self.truth.active("cold_night", ts):
            return False
        return any(a <= ts.hour < b for a, b in self.heating_hours)

    def advance(self, ts: datetime) -> None:
        if self.last_ts is not None and ts > self.last_ts:
            hours = (ts - self.last_ts).total_seconds() / 3600
            free_running = self.weather.temp_c(ts) + (2.0 if self.void else 5.0)
            if self._heating_on(ts) and float(self.setpoint_c or 0.0) > free_running:
                target, tau = float(self.setpoint_c or 0.0), 0.7
            else:
                target, tau = free_running, self.time_constant_h
            self.temp_c += (target - self.temp_c) * (1 - math.exp(-hours / tau))
            self.battery_v = max(self.battery_v - self.battery_drain_v_per_h * hours, 2.0)
        self.last_ts = ts

    def _moisture(self, ts: datetime) -> float:
        hour = ts.hour + ts.minute / 60
        away = self.truth.active("away_week", ts)
        excess = 0.3 if away else self.excess_ah_g_m3
        if not self.void and not away:
            since_shower = hour - self.shower_hour
            if 0 <= since_shower < 1.5:  # a shower: a sharp moisture spike that clears
                excess += 7.0 * math.exp(-since_shower / 0.4)
            if 17.5 <= hour < 19.0:  # cooking
                excess += 2.0
            if self.truth.active("drying_clothes", ts):
                excess += DRYING_MOISTURE_G_M3
        if self.weather.season.name == "summer" and not self.void:
            excess *= SUMMER_VENTILATION
        if self.truth.active("leak", ts):
            excess += LEAK_MOISTURE_G_M3
        return excess

    def reading(self, ts: datetime) -> dict[str, float]:
        self.advance(ts)
        outdoor_ah = saturation_ah_g_m3(self.weather.temp_c(ts)) * self.weather.rh_pct(ts) / 100
        rh = 100 * (outdoor_ah + self._moisture(ts)) / saturation_ah_g_m3(self.temp_c)
        values = {
            "temp_c": round(self.temp_c + self.rng.gauss(0, 0.1), 2),
            "rh_pct": round(min(max(rh + self.rng.gauss(0, 0.8), 0.0), 100.0), 1),
            "battery_v": round(self.battery_v, 3),
        }
        if self.has_co2:
            hour = ts.hour + ts.minute / 60
            home = not self.void and not self.truth.active("away_week", ts)
            occupied_now = home and (hour < 8.5 or hour > 17)
            values["co2_ppm"] = round(430 + (700 if occupied_now else 80) + self.rng.gauss(0, 30))
        if self.truth.active("sensor_stuck", ts):
            # A stuck sensor repeats its last good values (the battery still reports).
            self.stuck_values = self.stuck_values or {
                k: v for k, v in values.items() if k != "battery_v"
            }
            values.update(self.stuck_values)
        return values
