"""Rule settings per portfolio, patch and property, from a TOML file (``CIVIC_ALERTS_RULES``).

Every rule's settings are frozen dataclasses with the documented defaults. A council changes
them in layers, each overriding the one before for the fields it names::

    [home.cold_home]                 # every home
    limit_c = 17.0
    [home]
    disabled = ["poor_ventilation"]  # conditions to leave out
    [home.clock_policy.overrides]    # which conditions start the Awaab's Law clock
    condensation_risk = false

    [bin.overflow]                   # every bin
    forecast_horizon = "12h"

    [patch.north.home.void_heating_off]   # homes and bins of one patch
    limit_c = 10.0

    [property.100023336956.home.cold_home]  # one home, by UPRN
    limit_c = 19.0                          # (a tenant with a health condition)

    [device.bin-000123.bin.overflow]        # one bin, by device id
    overflowing_pct = 90.0

Durations are strings such as ``"90m"``, ``"2h"`` or ``"7d"``; severities are names (``watch``,
``act``, ``urgent``, ``emergency``). Unknown names and bad values are errors that name the key,
raised when the file is loaded, not when a rule first runs; each patch, property or device layer
must be valid on its own over the portfolio settings (raise ``clear_c`` with ``limit_c``).
Settings apply to detectors created after a change (a backfill re-creates them all).
"""

from __future__ import annotations

import dataclasses
import enum
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from alerts.detector import BinRuleSettings, HomeRuleSettings
from alerts.errors import AlertsError
from alerts.events import Severity
from common.timeparse import parse_duration

__all__ = ["RuleConfig", "RuleConfigError", "load_rule_config", "override"]

_S = typing.TypeVar("_S")


class RuleConfigError(AlertsError, ValueError):
    """A rules file that cannot be applied; the message names the key."""


@dataclass(frozen=True, slots=True)
class _Layer:
    home: Mapping[str, Any] = field(default_factory=dict)
    bin: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """Settings for every subject: defaults, then patch, then the property or device."""

    home: HomeRuleSettings = field(default_factory=HomeRuleSettings)
    bin: BinRuleSettings = field(default_factory=BinRuleSettings)
    patches: Mapping[str, _Layer] = field(default_factory=dict)
    properties: Mapping[str, _Layer] = field(default_factory=dict)
    devices: Mapping[str, _Layer] = field(default_factory=dict)

    def for_home(self, uprn: str, patch: str | None, device_id: str) -> HomeRuleSettings:
        settings = self.home
        for where, layer in self._layers(patch, uprn, device_id):
            if layer.home:
                settings = override(settings, layer.home, where + ".home")
        return settings

    def for_bin(self, device_id: str, patch: str | None) -> BinRuleSettings:
        settings = self.bin
        for where, layer in self._layers(patch, None, device_id):
            if layer.bin:
                settings = override(settings, layer.bin, where + ".bin")
        return settings

    def _layers(
        self, patch: str | None, uprn: str | None, device_id: str
    ) -> list[tuple[str, _Layer]]:
        found = [
            (f"patch.{patch}", self.patches.get(patch or "")),
            (f"property.{uprn}", self.properties.get(uprn or "")),
            (f"device.{device_id}", self.devices.get(device_id)),
        ]
        return [(where, layer) for where, layer in found if layer is not None]


def load_rule_config(path: Path) -> RuleConfig:
    """Read and check a rules file: every layer is applied once here, so errors show now."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuleConfigError(f"{path}: {exc}") from exc
    unknown = sorted(set(data) - {"home", "bin", "patch", "property", "device"})
    if unknown:
        raise RuleConfigError(f"{path}: unknown section(s) {', '.join(unknown)}")
    try:
        config = RuleConfig(
            home=override(HomeRuleSettings(), data.get("home", {}), "home"),
            bin=override(BinRuleSettings(), data.get("bin", {}), "bin"),
            patches=_layers(data.get("patch", {}), "patch"),
            properties=_layers(data.get("property", {}), "property"),
            devices=_layers(data.get("device", {}), "device"),
        )
        for kind, layers in (
            ("patch", config.patches),
            ("property", config.properties),
            ("device", config.devices),
        ):
            for name, layer in layers.items():
                override(config.home, layer.home, f"{kind}.{name}.home")
                override(config.bin, layer.bin, f"{kind}.{name}.bin")
    except RuleConfigError as exc:
        raise RuleConfigError(f"{path}: {exc}") from exc
    return config


def _layers(table: Mapping[str, Any], kind: str) -> dict[str, _Layer]:
    out = {}
    for name, body in table.items():
        if not isinstance(body, Mapping) or set(body) - {"home", "bin"}:
            raise RuleConfigError(f"{kind}.{name}: expected [{kind}.{name}.home] or .bin tables")
        out[str(name)] = _Layer(home=body.get("home", {}), bin=body.get("bin", {}))
    return out


def override(settings: _S, table: Mapping[str, Any], where: str) -> _S:
    """``settings`` (a frozen dataclass) with the fields ``table`` names replaced; nested
    settings are tables. Validation in the dataclasses runs on the result."""
    if not dataclasses.is_dataclass(settings) or isinstance(settings, type):
        raise RuleConfigError(f"{where}: not a settings table")
    hints = typing.get_type_hints(type(settings))
    names = {f.name for f in dataclasses.fields(settings)}
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key not in names:
            raise RuleConfigError(
                f"{where}.{key}: no such setting (have {', '.join(sorted(names))})"
            )
        current = getattr(settings, key)
        path = f"{where}.{key}"
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
            if not isinstance(value, Mapping):
                raise RuleConfigError(f"{path}: expected a table")
            changes[key] = override(current, value, path)
        else:
            changes[key] = _convert(value, hints[key], path)
    try:
        return typing.cast(_S, dataclasses.replace(settings, **changes))
    except (ValueError, TypeError) as exc:
        raise RuleConfigError(f"{where}: {exc}") from exc


def _convert(value: Any, hint: Any, path: str) -> Any:
    """``value`` from the file as the settings field's type ``hint``, or an error naming
    ``path``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        blank = value is None or (isinstance(value, str) and value.lower() == "none")
        if blank and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], path)
    if origin is frozenset:
        if not isinstance(value, list):
            raise RuleConfigError(f"{path}: expected a list")
        return frozenset(_convert(v, args[0], path) for v in value)
    if origin in (Mapping, dict) or hint is Mapping:
        if not isinstance(value, Mapping):
            raise RuleConfigError(f"{path}: expected a table")
        return {str(k): _convert(v, args[1], f"{path}.{k}") for k, v in value.items()}
    if hint is Severity:
        return _severity(value, path)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum(value, hint, path)
    if hint in _SCALARS:
        return _SCALARS[hint](value, path)
    raise RuleConfigError(f"{path}: cannot be set from a file")


def _duration(value: Any, path: str) -> timedelta:
    if not isinstance(value, str):
        raise RuleConfigError(f'{path}: give a duration such as "2h" or "30m"')
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise RuleConfigError(f"{path}: {exc}") from exc


def _severity(value: Any, path: str) -> Severity:
    try:
        return Severity[str(value).upper()]
    except KeyError:
        names = ", ".join(s.label for s in Severity)
        raise RuleConfigError(f"{path}: {value!r} is not a severity ({names})") from None


def _enum(value: Any, hint: type[enum.Enum], path: str) -> enum.Enum:
    try:
        return hint(value)
    except ValueError:
        raise RuleConfigError(
            f"{path}: {value!r} is not one of {[e.value for e in hint]}"
        ) from None


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise RuleConfigError(f"{path}: expected true or false")
    return value


def _float(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleConfigError(f"{path}: expected a number")
    return float(value)


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleConfigError(f"{path}: expected a whole number")
    return value


def _str(value: Any, path: str) -> str:
    return str(value)


_SCALARS: dict[Any, Callable[[Any, str], Any]] = {
    timedelta: _duration,
    bool: _bool,
    float: _float,
    int: _int,
    str: _str,
}
