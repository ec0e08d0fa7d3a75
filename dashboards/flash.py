"""A one-line message carried across a redirect (post, redirect, get), in a cookie."""

from __future__ import annotations

import json

from fastapi import Request, Response

__all__ = ["FLASH_COOKIE", "flash", "local_path", "take_flash"]

FLASH_COOKIE = "civic_flash"
FLASH_MAX_AGE_S = 60


def flash(request: Request, response: Response, level: str, message: str) -> None:
    value = json.dumps({"level": level, "message": message[:500]}, separators=(",", ":"))
    response.set_cookie(
        FLASH_COOKIE,
        value,
        max_age=FLASH_MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def take_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        value = json.loads(raw)
        return {"level": str(value["level"]), "message": str(value["message"])}
    except (ValueError, KeyError, TypeError):
        return None


def local_path(path: str | None, default: str) -> str:
    """A path on this site only (no ``//host``, scheme or control characters)."""
    if not path or not path.startswith("/") or path.startswith("//"):
        return default
    if "\\" in path or any(ord(c) < 32 for c in path):
        return default
    return path
