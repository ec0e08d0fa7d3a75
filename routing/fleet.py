"""The council's fleet, depots and tips, from a small TOML file with documented defaults.

``routing/fleet.default.toml`` documents every key. A council's own file only names what
differs: it is merged over the defaults table by table (lists such as ``depots`` and ``tips``
replace the default list). :class:`FleetConfig` turns the result into the values a
:class:`~routing.model.PlanRequest` needs: sites, vehicles per waste stream, the shift, the
break rule, service times and the travel matrix provider.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from routing.errors import RoutingError
from routing.matrix import HaversineProvider, MatrixProvider
from routing.model import BreakRule, DisposalSite, Site, TimeWindow, Vehicle

__all__ = [
    "DEFAULT_FLEET_FILE",
    "FleetConfig",
    "FleetConfigError",
    "SelectionSettings",
    "StreamFleet",
    "configured_fleet",
    "fleet_from_dict",
    "load_fleet",
]

DEFAULT_FLEET_FILE = "fleet.default.toml"


class FleetConfigError(RoutingError):
    """The fleet file is unreadable or describes an impossible fleet."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise FleetConfigError(message)


@dataclass(frozen=True, slots=True)
class StreamFleet:
    """The trucks that collect one waste stream, and how that stream's waste packs."""

    stream: str
    trucks: int
    capacity_kg: float
    capacity_l: float
    density_kg_per_l: float
    compaction_ratio: float
    max_tip_trips: int = 4

    def __post_init__(self) -> None:
        owner = f"stream {self.stream!r}"
        _require(self.trucks >= 1, f"{owner}: trucks must be >= 1")
        _require(self.capacity_kg > 0 and self.capacity_l > 0, f"{owner}: capacities must be > 0")
        _require(
            math.isfinite(self.density_kg_per_l) and self.density_kg_per_l > 0,
            f"{owner}: density_kg_per_l must be > 0",
        )
        _require(self.compaction_ratio >= 1, f"{owner}: compaction_ratio must be >= 1")
        _require(self.max_tip_trips >= 1, f"{owner}: max_tip_trips must be >= 1")

    def load_of(self, loose_l: float) -> tuple[float, float]:
        """Weight (kg) and body volume (litres, after compaction) of ``loose_l`` litres."""
        return loose_l * self.density_kg_per_l, loose_l / self.compaction_ratio


@dataclass(frozen=True, slots=True)
class SelectionSettings:
    """How forecasts become stops; see ``[selection]`` in the defaults file."""

    metres_at_threshold: int = 1_500
    optional_min_pct: float = 60.0
    stuck_as_pct: float = 80.0

    def __post_init__(self) -> None:
        _require(self.metres_at_threshold >= 0, "selection: metres_at_threshold must be >= 0")
        _require(
            0.0 <= self.optional_min_pct <= 100.0, "selection: optional_min_pct outside 0..100"
        )
        _require(0.0 <= self.stuck_as_pct <= 110.0, "selection: stuck_as_pct outside 0..110")


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """Everything about the fleet a day's plan needs, apart from the bins."""

    timezone: str
    working_days: frozenset[int]
    depots: tuple[Site, ...]
    tips: tuple[DisposalSite, ...]
    shift: TimeWindow
    breaks: BreakRule
    travel: HaversineProvider
    default_service_s: int
    service_s_by_capacity_l: tuple[tuple[float, int], ...]
    selection: SelectionSettings
    streams: tuple[StreamFleet, ...]
    # An OpenStreetMap extract to plan on real roads; without one, straight lines × road factor.
    network: Path | None = None

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise FleetConfigError(f"unknown timezone {self.timezone!r}") from exc
        _require(bool(self.working_days), "working_days must name at least one day")
        _require(self.working_days <= set(range(7)), "working_days must be within 0..6")
        _require(bool(self.depots), "at least one depot is required")
        _require(bool(self.tips), "at least one tip is required")
        _require(bool(self.streams), "at least one [streams.NAME] table is required")
        _require(self.default_service_s >= 0, "service: default_seconds must be >= 0")

    @property
    def provider(self) -> MatrixProvider:
        """Road times on the network when one is configured, else the straight-line estimate."""
        if self.network is None:
            return self.travel
        from routing.roads import road_provider

        return road_provider(self.network)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def stream(self, name: str) -> StreamFleet:
        for fleet in self.streams:
            if fleet.stream == name:
                return fleet
        known = ", ".join(f.stream for f in self.streams)
        raise FleetConfigError(f"no trucks configured for stream {name!r} (configured: {known})")

    def service_s(self, capacity_l: float) -> int:
        """Seconds at the kerb for a bin of ``capacity_l``: the nearest configured size."""
        if not self.service_s_by_capacity_l:
            return self.default_service_s
        size, seconds = min(self.service_s_by_capacity_l, key=lambda s: abs(s[0] - capacity_l))
        # A size far from every configured one is not that size: use the default.
        return seconds if abs(size - capacity_l) <= 0.25 * size else self.default_service_s

    def vehicles(self, stream: str) -> tuple[Vehicle, ...]:
        fleet = self.stream(stream)
        depot = self.depots[0].id
        return tuple(
            Vehicle(
                id=f"rcv-{stream}-{k + 1:02d}",
                stream=stream,
                capacity_kg=fleet.capacity_kg,
                capacity_l=fleet.capacity_l,
                start_depot=depot,
                shift=self.shift,
                max_tip_trips=fleet.max_tip_trips,
            )
            for k in range(fleet.trucks)
        )

    def local_time(self, plan_date: dt.date, seconds: int) -> dt.datetime:
        """The instant ``seconds`` after local midnight of ``plan_date`` (DST-aware)."""
        midnight = dt.datetime.combine(plan_date, dt.time(), tzinfo=self.zone)
        # Wall-clock arithmetic: 07:00 is 07:00 local even on the day clocks change.
        wall = midnight.replace(tzinfo=None) + dt.timedelta(seconds=seconds)
        return wall.replace(tzinfo=self.zone)

    def next_working_day(self, plan_date: dt.date) -> dt.date:
        day = plan_date + dt.timedelta(days=1)
        while day.weekday() not in self.working_days:
            day += dt.timedelta(days=1)
        return day

    def to_dict(self) -> dict[str, Any]:
        """The effective configuration, for storing with a plan (so it can be reproduced)."""
        return {
            "timezone": self.timezone,
            "working_days": sorted(self.working_days),
            "depots": [{"id": d.id, "lat": d.lat, "lon": d.lon} for d in self.depots],
            "tips": [
                {
                    "id": t.id,
                    "lat": t.lat,
                    "lon": t.lon,
                    "unload_minutes": t.unload_s / 60,
                    "streams": sorted(t.streams),
                }
                for t in self.tips
            ],
            "shift": {"start": _hhmm(self.shift.start_s), "end": _hhmm(self.shift.end_s)},
            "breaks": {
                "max_driving_minutes": self.breaks.max_driving_s / 60,
                "break_minutes": self.breaks.break_s / 60,
            },
            "travel": {
                "road_factor": self.travel.road_factor,
                "speed_kmh": self.travel.speed_kmh,
                **({"network": str(self.network)} if self.network else {}),
            },
            "service": {
                "default_seconds": self.default_service_s,
                "by_capacity_l": {f"{size:g}": s for size, s in self.service_s_by_capacity_l},
            },
            "selection": {
                "metres_at_threshold": self.selection.metres_at_threshold,
                "optional_min_pct": self.selection.optional_min_pct,
                "stuck_as_pct": self.selection.stuck_as_pct,
            },
            "streams": {
                f.stream: {
                    "trucks": f.trucks,
                    "capacity_kg": f.capacity_kg,
                    "capacity_l": f.capacity_l,
                    "density_kg_per_l": f.density_kg_per_l,
                    "compaction_ratio": f.compaction_ratio,
                    "max_tip_trips": f.max_tip_trips,
                }
                for f in self.streams
            },
        }


def _hhmm(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}"


def _clock_s(owner: str, value: object) -> int:
    text = str(value)
    try:
        hours, minutes = (int(part) for part in text.split(":"))
    except ValueError as exc:
        raise FleetConfigError(f"{owner}: expected HH:MM, got {text!r}") from exc
    _require(0 <= hours <= 48 and 0 <= minutes < 60, f"{owner}: {text!r} is not a clock time")
    return hours * 3600 + minutes * 60


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _defaults() -> dict[str, Any]:
    text = resources.files("routing").joinpath(DEFAULT_FLEET_FILE).read_text(encoding="utf-8")
    return tomllib.loads(text)


_STREAM_KEYS = frozenset(f.name for f in dataclasses.fields(StreamFleet)) - {"stream"}
_STREAM_REQUIRED = _STREAM_KEYS - {"max_tip_trips"}


def _stream_fleet(name: str, table: Mapping[str, Any]) -> StreamFleet:
    missing = sorted(_STREAM_REQUIRED - set(table))
    unknown = sorted(set(table) - _STREAM_KEYS)
    _require(not unknown, f"[streams.{name}] has unknown key(s) {', '.join(unknown)}")
    _require(not missing, f"[streams.{name}] is missing {', '.join(missing)}")
    return StreamFleet(stream=name, **table)


def fleet_from_dict(raw: Mapping[str, Any]) -> FleetConfig:
    """Build a :class:`FleetConfig` from a parsed (and merged) TOML document.

    Raises
    ------
    FleetConfigError
        For a missing or malformed key, with the key named.
    """
    try:
        depots = tuple(Site(str(d["id"]), float(d["lat"]), float(d["lon"])) for d in raw["depots"])
        tips = tuple(
            DisposalSite(
                str(t["id"]),
                float(t["lat"]),
                float(t["lon"]),
                unload_s=round(float(t.get("unload_minutes", 15)) * 60),
                streams=frozenset(str(s) for s in t.get("streams", [])),
            )
            for t in raw["tips"]
        )
        shift = TimeWindow(
            _clock_s("shift.start", raw["shift"]["start"]),
            _clock_s("shift.end", raw["shift"]["end"]),
        )
        breaks = BreakRule(
            max_driving_s=round(float(raw["breaks"]["max_driving_minutes"]) * 60),
            break_s=round(float(raw["breaks"]["break_minutes"]) * 60),
        )
        travel = HaversineProvider(
            road_factor=float(raw["travel"]["road_factor"]),
            speed_kmh=float(raw["travel"]["speed_kmh"]),
        )
        service = raw["service"]
        by_size = tuple(
            sorted(
                (float(size), int(seconds)) for size, seconds in service["by_capacity_l"].items()
            )
        )
        selection = SelectionSettings(**raw.get("selection", {}))
        streams = tuple(_stream_fleet(str(name), table) for name, table in raw["streams"].items())
        return FleetConfig(
            timezone=str(raw["timezone"]),
            working_days=frozenset(int(d) for d in raw["working_days"]),
            depots=depots,
            tips=tips,
            shift=shift,
            breaks=breaks,
            travel=travel,
            default_service_s=int(service["default_seconds"]),
            service_s_by_capacity_l=by_size,
            selection=selection,
            streams=streams,
            network=Path(raw["travel"]["network"]) if raw["travel"].get("network") else None,
        )
    except KeyError as exc:
        raise FleetConfigError(f"missing key {exc.args[0]!r} in the fleet file") from exc
    except (TypeError, ValueError) as exc:
        raise FleetConfigError(f"invalid fleet file: {exc}") from exc


def configured_fleet() -> FleetConfig:
    """The fleet of this instance: ``CIVIC_FLEET_FILE`` merged over the defaults, if set."""
    from common.settings import get_settings

    return load_fleet(get_settings().fleet_file)


def load_fleet(path: Path | None = None) -> FleetConfig:
    """The default fleet, or ``path`` merged over it.

    Raises
    ------
    FleetConfigError
        If the file cannot be read or parsed, or describes an impossible fleet.
    """
    raw = _defaults()
    if path is not None:
        try:
            override = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise FleetConfigError(f"cannot read fleet file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise FleetConfigError(f"fleet file {path} is not valid TOML: {exc}") from exc
        network = override.get("travel", {}).get("network")
        if network:
            # A relative extract path is relative to the fleet file, like an include.
            network_path = (path.parent / str(network)).resolve()
            if not network_path.is_file():
                raise FleetConfigError(f"fleet file {path}: no road network extract {network_path}")
            override["travel"]["network"] = str(network_path)
        # A council that lists its own streams means exactly those, not ours as well.
        if "streams" in override:
            raw["streams"] = {}
        raw = _merge(raw, override)
    return fleet_from_dict(raw)
