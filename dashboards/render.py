"""Templates and the small formatting helpers every screen shares."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.responses import Response

from dashboards.flash import FLASH_COOKIE, take_flash

__all__ = ["LOCAL", "render", "templates", "to_json"]

LOCAL = ZoneInfo("Europe/London")  # councils read their own clock, not UTC
HERE = Path(__file__).resolve().parent

templates = Jinja2Templates(directory=HERE / "templates")


def _when(value: datetime | None, fmt: str = "%a %d %b %H:%M") -> str:
    if value is None:
        return "—"
    return value.astimezone(LOCAL).strftime(fmt)


def _age(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the largest whole unit a person would say."""
    if value is None:
        return "—"
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    return _span(seconds)


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min"
    if seconds < 2 * 86400:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} days"


def _seconds(value: float | None) -> str:
    """A delay: seconds while short, then minutes, hours or days."""
    if value is None:
        return "—"
    return f"{value:.1f} s" if value < 120 else _span(value)


def _due(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "no statutory date"
    left = (value - (now or datetime.now(UTC))).total_seconds()
    return f"overdue by {_span(left)}" if left < 0 else f"due in {_span(left)}"


def _clock(seconds: float | None) -> str:
    """Seconds after local midnight as HH:MM."""
    if seconds is None:
        return "—"
    return str(timedelta(seconds=round(seconds) // 60 * 60))[:-3].rjust(5, "0")


def _epoch(seconds: int, fmt: str = "%a %d %b %H:%M") -> str:
    return datetime.fromtimestamp(seconds, UTC).astimezone(LOCAL).strftime(fmt)


def _words(text: str | None) -> str:
    return (text or "").replace("_", " ")


def to_json(value: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` block (safe inside HTML)."""
    text = json.dumps(
        value,
        separators=(",", ":"),  # no spaces: the map's data is thousands of short arrays
        default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v),
    )
    safe = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(safe)  # every character that could end the script block is escaped


templates.env.filters.update(
    when=_when, age=_age, due=_due, clock=_clock, words=_words, epoch=_epoch, seconds=_seconds
)
templates.env.globals.update(to_json=to_json)


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    message = take_flash(request)
    response = templates.TemplateResponse(
        request,
        name,
        {"now": datetime.now(UTC), "flash": message, **context},
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )
    if message is not None:
        response.delete_cookie(FLASH_COOKIE, path="/", httponly=True, samesite="strict")
    return response
