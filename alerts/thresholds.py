"""The limits a home's alert rules act on, as lines to draw on its charts (the property page,
the evidence pack): one definition, read from the same rules file ``civic alerts run`` uses."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from alerts.detector import HomeRuleSettings
from alerts.rule_config import RuleConfig, load_rule_config
from alerts.settings import AlertsSettings

__all__ = ["Threshold", "configured_rules", "home_thresholds"]


@dataclass(frozen=True, slots=True)
class Threshold:
    """A value a rule acts on, for the chart of ``metric``, with what it means."""

    metric: str
    value: float
    label: str


@functools.cache
def _rules(path: str | None) -> RuleConfig:
    return load_rule_config(Path(path)) if path else RuleConfig()


def configured_rules() -> RuleConfig:
    """The rules file named by ``CIVIC_ALERTS_RULES``, or the documented defaults."""
    return _rules(AlertsSettings().alerts_rules)


def home_thresholds(rules: HomeRuleSettings, *, void: bool) -> list[Threshold]:
    """Damp (RH), mould index and temperature limits; a void home's heating-off and frost
    limits, an occupied home's cold limit."""
    damp, high = rules.adf2006.limit_pct, rules.adf2006.high_limit_pct
    out = [
        Threshold("rh_pct", damp, f"damp limit {damp:g} %"),
        Threshold("rh_pct", high, f"high damp limit {high:g} %"),
        Threshold("mould_index", rules.mould.on_index, f"mould alert {rules.mould.on_index:g}"),
        Threshold(
            "mould_index", rules.mould.urgent_index, f"visible mould {rules.mould.urgent_index:g}"
        ),
    ]
    if void:
        heating, frost = rules.void_heating_off.limit_c, rules.void_frost.limit_c
        out.append(Threshold("temp_c", heating, f"void heating off below {heating:g} °C"))
        out.append(Threshold("temp_c", frost, f"frost risk below {frost:g} °C"))
    else:
        cold = rules.cold_home.limit_c
        out.append(Threshold("temp_c", cold, f"cold home below {cold:g} °C"))
    return out
