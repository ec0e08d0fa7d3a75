"""The HTTP API: ``/api/v1`` resources for every role, secured, documented at ``/docs``.

:func:`create_app` builds it for a database; the screens (``dashboards``) mount on top of it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
from fastapi import FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from api.cache import BriefCache
from api.deps import AllowedCache
from api.docs import install_docs
from api.jobs import JobRunner
from api.metrics import RequestMetrics, scrape
from api.problems import install_problem_handlers
from api.ratelimit import RateLimiter
from api.routes import (
    alerts,
    auth,
    commands,
    devices,
    fiware,
    live,
    operations,
    readings,
    routes,
)
from api.security import VerifiedTokens
from api.settings import ApiSettings

__all__ = ["create_app"]

POOL_MAX = 16  # two cores: more connections than this only queue inside PostgreSQL
LOGIN_ATTEMPTS_PER_MINUTE = 10  # per user name or client id: slows guessing to a crawl


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


def create_app(
    database_url: str, settings: ApiSettings | None = None, *, swagger_ui: Path | None = None
) -> FastAPI:
    """The API for ``database_url``; refuses to build without a usable signing secret.
    ``swagger_ui``: the ``swagger-ui-dist`` package directory whose assets ``/docs`` serves."""
    settings = settings or ApiSettings()
    secret = settings.signing_secret()
    pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
        database_url,
        min_size=1,
        max_size=POOL_MAX,
        kwargs={"autocommit": True, "row_factory": dict_row},
        open=False,
    )

    jobs = JobRunner(pool, database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.open()
        jobs.open()
        try:
            yield
        finally:
            app.state.stopping.set()
            jobs.shutdown()
            pool.close()

    app = FastAPI(
        title="Civic Sensors API",
        version="1.0.0",
        description=(
            "Bins, homes, readings, alerts, routes and commands for council staff and systems. "
            "Log in at `POST /api/v1/auth/token` (OAuth 2.0 password grant for people, client "
            "credentials for scripts) and send `Authorization: Bearer <token>`. Each endpoint "
            "needs the scope it names; housing officers see only their patches. Errors are "
            "`application/problem+json` (RFC 9457)."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app, swagger_ui)
    app.state.settings = settings
    app.state.secret = secret
    app.state.tokens = VerifiedTokens(secret)
    app.state.pool = pool
    app.state.jobs = jobs
    app.state.database_url = database_url
    app.state.stopping = threading.Event()
    app.state.rate_limiter = RateLimiter(settings.api_rate_per_minute, pool)
    app.state.latest_cache = BriefCache[bytes](settings.api_latest_cache_s)
    app.state.allowed = AllowedCache(settings.api_revocation_check_s)
    app.state.login_limiter = RateLimiter(LOGIN_ATTEMPTS_PER_MINUTE, pool)
    install_problem_handlers(app)
    registry = CollectorRegistry()
    app.add_middleware(RequestMetrics, registry=registry)
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api_cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )
    for module in (auth, devices, readings, alerts, commands, routes, operations, live, fiware):
        app.include_router(module.router)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> Health:
        """The process is up (no dependencies checked)."""
        return Health(status="ok")

    @app.get("/readyz", tags=["operations"], responses={503: {"model": Health}})
    def readyz(response: Response) -> Health:
        """The database and the broker answer; 503 with which one does not."""
        checks = _readiness(pool)
        if any(v != "ok" for v in checks.values()):
            response.status_code = 503
            return Health(status="unavailable", checks=checks)
        return Health(status="ok", checks=checks)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics of the API process (request counts and latency; no personal
        data), for the monitoring scraper."""
        return Response(scrape(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _readiness(pool: ConnectionPool[psycopg.Connection[dict[str, Any]]]) -> dict[str, str]:
    from common.services import ServicesError, parse_mqtt_url
    from common.settings import mqtt_url

    checks: dict[str, str] = {}
    try:
        with pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")
        checks["database"] = "ok"
    except (psycopg.Error, TimeoutError) as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        host, port = parse_mqtt_url(mqtt_url())
        with socket.create_connection((host, port), timeout=2):
            checks["broker"] = "ok"
    except (OSError, ServicesError) as exc:
        checks["broker"] = f"unavailable: {type(exc).__name__}"
    return checks
