"""The web application people open: the HTTP API with the screens on top of it."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from api.app import create_app
from api.settings import ApiSettings

__all__ = ["create_web_app"]

_LANDING = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Civic Sensors</title>
<style>body{font-family:system-ui,sans-serif;margin:0 auto;max-width:44rem;padding:1rem;
color:#1b1b1b}a{color:#0b4f9c}code{background:#eef2f7;padding:0 .2rem}</style></head>
<body><main>
<h1>Civic Sensors</h1>
<p>Bins and council homes to routes and alerts. Everything here needs a login: nothing about
homes, tenants or devices is shown to an anonymous visitor.</p>
<ul>
<li><a href="/docs">The API and its documentation</a> (OpenAPI 3; use <em>Authorize</em>
to log in)</li>
<li>Log in: <code>POST /api/v1/auth/token</code> with your user name and password</li>
<li>Service health: <a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a></li>
</ul>
</main></body></html>
"""


def create_web_app(database_url: str, settings: ApiSettings | None = None) -> FastAPI:
    """:func:`api.create_app` plus the screens."""
    app = create_app(database_url, settings)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def landing() -> str:
        return _LANDING

    return app
