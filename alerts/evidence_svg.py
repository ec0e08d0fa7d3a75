"""The evidence pack's charts for its HTML page: inline SVG (the page stands alone: no script,
no file beside it), drawn as the PDF draws them.

One chart per sensor and metric (temperature, relative humidity): a y axis with values and the
unit, an x axis with UTC times, the readings as a solid line, each threshold the home's rules
act on as a dashed line named where it is drawn, and a legend under the chart. Nothing is told
by colour alone: lines differ by dash, and each threshold carries its words.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from alerts.evidence_pdf import CHART_SERIES, _series_range, _ticks

__all__ = ["charts_html"]

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 12, 36
LABEL_W = 76  # a time label's width at 11 px
LIMIT_STYLES = (("#000000", "6 4", "black"), ("#8a5a00", "2 3", "brown, dotted"))
_e = html.escape


def charts_html(
    device: str, rows: Sequence[Mapping[str, Any]], thresholds: Sequence[Mapping[str, Any]]
) -> str:
    """A ``<figure>`` per metric with at least two readings ('' when none has)."""
    points = [(_time(r["ts"]), r) for r in rows]
    figures = []
    for key, label, unit, colour in CHART_SERIES:
        values = [(ts, float(r[key])) for ts, r in points if r.get(key) is not None]
        if len(values) >= 2:
            limits = [t for t in thresholds if t["metric"] == key]
            figures.append(_figure(f"{device}: {label} ({unit})", unit, colour, values, limits))
    return "".join(figures)


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _attrs(attrs: Mapping[str, Any]) -> str:
    return " ".join(f'{k.replace("_", "-")}="{_e(str(v))}"' for k, v in attrs.items())


def _line(x1: float, y1: float, x2: float, y2: float, **attrs: Any) -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" {_attrs(attrs)}/>'


def _text(x: float, y: float, text: str, anchor: str = "middle", **attrs: Any) -> str:
    more = _attrs({"text_anchor": anchor, "font_size": 11, **attrs})
    return f'<text x="{x:.1f}" y="{y:.1f}" {more}>{_e(text)}</text>'


def _swatch(ink: str, dash: str | None, width: float) -> str:
    style = {"stroke": ink, "stroke_width": width} | ({"stroke_dasharray": dash} if dash else {})
    return f'<svg width="28" height="8" aria-hidden="true">{_line(0, 4, 28, 4, **style)}</svg>'


def _figure(
    title: str,
    unit: str,
    colour: tuple[int, int, int],
    values: Sequence[tuple[datetime, float]],
    limits: Sequence[Mapping[str, Any]],
) -> str:
    lo, hi = _series_range([v for _, v in values], [float(t["value"]) for t in limits])
    t_first, t_last = values[0][0], values[-1][0]
    span = max((t_last - t_first).total_seconds(), 1.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(ts: datetime) -> float:
        return LEFT + plot_w * (ts - t_first).total_seconds() / span

    def y_of(value: float) -> float:
        return TOP + plot_h - plot_h * (value - lo) / (hi - lo)

    stroke = "#{:02x}{:02x}{:02x}".format(*colour)
    parts = [
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#777"/>'
    ]
    parts += _y_axis(lo, hi, unit, y_of)
    parts += _x_axis(t_first, t_last, span, x_of)
    line = " ".join(f"{x_of(ts):.1f},{y_of(v):.1f}" for ts, v in values)
    parts.append(f'<polyline points="{line}" fill="none" stroke="{stroke}" stroke-width="2"/>')
    legend = [f"<li>{_swatch(stroke, None, 2)} readings ({_e(unit)}), solid line</li>"]
    for i, limit in enumerate(limits):
        ink, dash, name = LIMIT_STYLES[i % len(LIMIT_STYLES)]
        y = y_of(float(limit["value"]))
        value = f"{float(limit['value']):g} {unit}"
        text = limit["label"] if value in limit["label"] else f"{limit['label']} ({value})"
        style = {"stroke": ink, "stroke_width": 1.5, "stroke_dasharray": dash}
        parts.append(_line(LEFT, y, LEFT + plot_w, y, **style))
        parts.append(_text(LEFT + plot_w - 4, y - 4, text, "end", fill=ink))
        legend.append(f"<li>{_swatch(ink, dash, 1.5)} threshold: {_e(text)}, dashed {name}</li>")
    low, high = min(v for _, v in values), max(v for _, v in values)
    summary = (
        f"{title}: {len(values)} readings from {t_first:%Y-%m-%d %H:%M} to"
        f" {t_last:%Y-%m-%d %H:%M} UTC, between {low:g} and {high:g} {unit}"
    )
    return (
        f'<figure class="chart"><figcaption><strong>{_e(title)}</strong></figcaption>'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img"'
        f' aria-label="{_e(summary)}" font-family="system-ui, sans-serif">{"".join(parts)}</svg>'
        f'<ul class="legend">{"".join(legend)}</ul>'
        "<p>Times are UTC. The readings are in the table below.</p></figure>"
    )


def _y_axis(lo: float, hi: float, unit: str, y_of: Callable[[float], float]) -> list[str]:
    """Grid lines at round values, each labelled with its unit."""
    out = []
    for tick in _ticks(lo, hi):
        if lo <= tick <= hi:
            y = y_of(tick)
            out.append(_line(LEFT, y, WIDTH - RIGHT, y, stroke="#e1e1e1"))
            out.append(_text(LEFT - 6, y + 4, f"{tick:g} {unit}", "end"))
    return out


def _x_axis(
    t_first: datetime, t_last: datetime, span: float, x_of: Callable[[datetime], float]
) -> list[str]:
    """Ticks on whole hours, at most eight, and the axis's name."""
    base = HEIGHT - BOTTOM
    step_h = next(h for h in (1, 2, 3, 6, 12, 24, 48, 168) if span / 3600 / h <= 8)
    tick = t_first.replace(minute=0, second=0, microsecond=0)
    out = []
    label_end = -math.inf  # where the last label drawn ends: labels never overlap
    while tick <= t_last:
        if tick >= t_first:
            x = x_of(tick)
            out.append(_line(x, base, x, base + 5, stroke="#777"))
            # The last label ends at its tick, to stay inside the chart.
            near_end = x > WIDTH - RIGHT - LABEL_W / 2
            start = x - LABEL_W if near_end else x - LABEL_W / 2
            if start > label_end + 4:
                anchor = "end" if near_end else "middle"
                out.append(_text(x, base + 18, f"{tick:%d %b %H:%M}", anchor))
                label_end = start + LABEL_W
        tick += timedelta(hours=step_h)
    out.append(_text(LEFT + (WIDTH - LEFT - RIGHT) / 2, HEIGHT - 2, "time (UTC)"))
    return out
