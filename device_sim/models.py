"""Physical models of simulated devices: pure, stepped by the caller's clock.

Bins fill at per-bin rates drawn from a heavy-tailed distribution (:data:`STREAM_FILL_DAYS`:
a few town-centre bins fill within a day, most take one to three weeks), shaped by the hour
of day and the weekday in local time (Europe/London, so the pattern follows the clock change),
by the season (:data:`SEASON_FACTOR`, garden waste above all) and by a day-to-day variation;
they are emptied by a weekly round (or by a planned route, via :meth:`BinModel.collect`).
Homes follow the outdoor weather (:mod:`device_sim.weather`), heating schedules and moisture
from showers and cooking, and behave as their labels say (:mod:`device_sim.truth`); indoor RH
comes from absolute humidity, so a cold home is a damp home, as in real housing stock.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from statistics import NormalDist
from zoneinfo import ZoneInfo

from device_sim.truth import HomeTruth
from device_sim.weather import Weather

# Bins are used by people living by the local clock: patterns are in local time.
LOCAL_TZ = ZoneInfo("Europe/London")


def _mean_one(values: tuple[float, ...]) -> tuple[float, ...]:
    mean = sum(values) / len(values)
    return tuple(v / mean for v in values)


# Relative filling by weekday (Mon..Sun): weekends and Mondays are heavier on streets.
WEEKDAY_FACTOR = _mean_one((1.15, 0.95, 0.9, 0.95, 1.05, 1.25, 1.2))
# Relative filling by local hour: almost nothing overnight, peaks late morning and early evening.
HOURLY_FACTOR = _mean_one(
    (
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
)
# Relative filling by month (January first), taken at mid-month and interpolated between:
# garden waste follows the growing season; general waste is busier in summer (parks, visitors)
# and at Christmas, recycling at Christmas (packaging) and just after.
SEASON_FACTOR: dict[str, tuple[float, ...]] = {
    "general": _mean_one((0.95, 0.9, 0.95, 1.0, 1.05, 1.05, 1.1, 1.1, 1.0, 0.95, 0.95, 1.1)),
    "recycling": _mean_one((1.1, 0.9, 0.95, 0.95, 1.0, 1.0, 1.0, 1.0, 0.95, 0.95, 1.0, 1.25)),
    "garden": _mean_one((0.3, 0.3, 0.6, 1.2, 1.6, 1.6, 1.5, 1.4, 1.3, 1.0, 0.7, 0.3)),
}


@dataclass(frozen=True, slots=True)
class FillDays:
    """How long a stream's bins take to fill from empty at their own mean rate (days).

    A mixture: ``fast_share`` of bins (town centre, takeaway streets, bus stops) fill in
    ``fast_days`` (uniform), the rest in a lognormal number of days with median
    ``median_days`` and log-sd ``sigma`` (the heavy tail of slow bins on quiet streets).
    """

    fast_share: float
    fast_days: tuple[float, float]
    median_days: float
    sigma: float

    def draw(self, rng: random.Random) -> float:
        if rng.random() < self.fast_share:
            return rng.uniform(*self.fast_days)
        return self.median_days * rng.lognormvariate(0.0, self.sigma)

    def share_within(self, low_days: float, high_days: float) -> float:
        """Share of bins filling in ``low_days`` to ``high_days`` days (the stated model)."""
        lo_fast, hi_fast = self.fast_days
        overlap = max(0.0, min(high_days, hi_fast) - max(low_days, lo_fast))
        fast = self.fast_share * overlap / (hi_fast - lo_fast)
        normal = NormalDist(math.log(self.median_days), self.sigma)
        slow = normal.cdf(math.log(high_days)) - (
            normal.cdf(math.log(low_days)) if low_days > 0 else 0.0
        )
        return fast + (1.0 - self.fast_share) * slow


STREAM_FILL_DAYS: dict[str, FillDays] = {
    "general": FillDays(fast_share=0.05, fast_days=(0.5, 1.0), median_days=10.0, sigma=0.5),
    "recycling": FillDays(fast_share=0.02, fast_days=(0.5, 1.0), median_days=12.0, sigma=0.45),
    "garden": FillDays(fast_share=0.0, fast_days=(0.5, 1.0), median_days=14.0, sigma=0.45),
}
DEFAULT_FILL_DAYS = STREAM_FILL_DAYS["general"]
OVERFILL_PCT = 108.0  # waste heaped over the rim; more falls on the pavement
OUTDOOR_MEAN_C, OUTDOOR_SWING_C = 6.5, 3.0  # a UK November
OUTDOOR_RH_PCT = 85.0


def outdoor_temp_c(ts: datetime, offset_c: float = 0.0) -> float:
    hours = ts.hour + ts.minute / 60
    # Coldest around 05:00, warmest around 15:00.
    return OUTDOOR_MEAN_C + offset_c + OUTDOOR_SWING_C * math.sin((hours - 9) / 24 * 2 * math.pi)


def saturation_ah_g_m3(temp_c: float) -> float:
    """Water vapour density at saturation (Magnus form), g/m³."""
    return 6.112 * math.exp(17.67 * temp_c / (temp_c + 243.5)) * 100 * 2.1674 / (273.15 + temp_c)


def season_factor(stream: str, day: date) -> float:
    """The stream's relative filling on ``day`` (mid-month values, linear between)."""
    months = SEASON_FACTOR.get(stream, SEASON_FACTOR["general"])
    start = date(day.year, day.month, 1)
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    position = day.month - 1 + (day - start).days / (following - start).days - 0.5
    low = math.floor(position)
    weight = position - low
    return months[low % 12] * (1.0 - weight) + months[(low + 1) % 12] * weight


def local_time(ts: datetime) -> datetime:
    """``ts`` on the local clock (a naive ``ts`` is taken as UTC)."""
    return (ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)).astimezone(LOCAL_TZ)


@dataclass
class BinModel:
    device_id: str
    stream: str
    rng: random.Random
    fill_pct: float = 0.0
    rate_pct_per_day: float = 12.0
    """Mean filling over a year (% of the bin a day); :meth:`factor` shapes it in time."""
    collection_weekday: int = 0  # the fixed weekly round's local weekday (0 = Monday)
    collection_hour: float = 9.0  # local hour of the weekly round
    battery_v: float = 3.6
    noise_pct: float = 1.5
    last_ts: datetime | None = None
    last_collected_on: int | None = None  # ordinal of the local day of the last weekly round
    weekly_round: bool = True
    rounds: list[datetime] = field(default_factory=list)
    """When the weekly round emptied the bin: what the crew's round sheet says."""
    day_variation_sd: float = 0.0
    """Day-to-day variation of the filling (log-sd of a factor averaging 1: a market day, a
    rainy one). Off by default; ``bench/routing_forecast.py --day-variation`` turns it on to
    check that the forecast's prediction interval allows for it."""
    day_seed: int = 0
    """Seeds the day-to-day variation: same seed, same days, also in a copy of the model."""
    _day: int = field(default=-1, init=False, repr=False, compare=False)
    _day_factor: float = field(default=1.0, init=False, repr=False, compare=False)

    @classmethod
    def create(cls, device_id: str, stream: str, rng: random.Random) -> BinModel:
        days_to_fill = STREAM_FILL_DAYS.get(stream, DEFAULT_FILL_DAYS).draw(rng)
        return cls(
            device_id=device_id,
            stream=stream,
            rng=rng,
            fill_pct=rng.uniform(0, 60),
            rate_pct_per_day=100.0 / days_to_fill,
            collection_weekday=rng.randrange(5),
            collection_hour=rng.uniform(7.5, 14.5),
            # Lithium cells sit near 3.6 V; a few are near the end of their life.
            battery_v=rng.uniform(3.2, 3.35) if rng.random() < 0.03 else rng.uniform(3.45, 3.65),
            day_seed=rng.getrandbits(48),
        )

    @property
    def days_to_fill(self) -> float:
        """Days from empty to full at the bin's mean rate."""
        return math.inf if self.rate_pct_per_day <= 0 else 100.0 / self.rate_pct_per_day

    def day_factor(self, day: date) -> float:
        """Season times this bin's variation on local ``day``."""
        ordinal = day.toordinal()
        if ordinal != self._day:
            sd = self.day_variation_sd
            variation = (
                random.Random(self.day_seed * 1_000_003 + ordinal).gauss(0.0, sd) if sd else 0.0
            )
            self._day_factor = season_factor(self.stream, day) * math.exp(variation - sd * sd / 2)
            self._day = ordinal
        return self._day_factor

    def factor(self, ts: datetime) -> float:
        """Filling at ``ts`` relative to the bin's mean rate."""
        local = local_time(ts)
        return (
            WEEKDAY_FACTOR[local.weekday()]
            * HOURLY_FACTOR[local.hour]
            * self.day_factor(local.date())
        )

    def collect(self) -> None:
        """A crew empties the bin."""
        self.fill_pct = self.rng.uniform(0, 3)

    def _fill_to(self, ts: datetime) -> None:
        assert self.last_ts is not None
        step = timedelta(hours=1)
        at = self.last_ts
        rate_per_h = self.rate_pct_per_day / 24
        while at < ts and self.fill_pct < OVERFILL_PCT:
            following = min(at + step, ts)
            hours = (following - at).total_seconds() / 3600
            self.fill_pct = min(self.fill_pct + rate_per_h * hours * self.factor(at), OVERFILL_PCT)
            at = following

    def advance(self, ts: datetime) -> None:
        if self.last_ts is not None and ts > self.last_ts:
            hours = (ts - self.last_ts).total_seconds() / 3600
            self._fill_to(ts)
            self.battery_v = max(self.battery_v - 0.00002 * hours, 2.5)
        local = local_time(ts)
        day = local.toordinal()
        if (
            self.weekly_round
            and local.weekday() == self.collection_weekday
            and local.hour + local.minute / 60 >= self.collection_hour
            and self.last_collected_on != day
        ):
            self.collect()
            self.last_collected_on = day
            midnight = datetime.combine(local.date(), datetime.min.time())
            emptied = (midnight + timedelta(hours=self.collection_hour)).replace(tzinfo=LOCAL_TZ)
            self.rounds.append(emptied.astimezone(ts.tzinfo or UTC))
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
