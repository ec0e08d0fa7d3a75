"""The web application people open: the HTTP API with the screens on top of it."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from api.app import Db, create_app
from dashboards.overview import overview_html

__all__ = ["create_web_app"]


def create_web_app(database_url: str) -> FastAPI:
    """:func:`api.create_app` plus the server-rendered screens."""
    app = create_app(database_url)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview(conn: Db) -> str:
        return overview_html(conn)

    return app
