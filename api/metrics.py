"""Prometheus metrics of the API: request counts and latency per route, at ``/metrics``.

With several API processes (``civic api --workers N``) a scrape reaches one of them, so each
process writes its samples to files in a shared directory (the client library's multiprocess
mode, ``PROMETHEUS_MULTIPROC_DIR``) and ``/metrics`` sums them all.
"""

from __future__ import annotations

import os
import tempfile
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestMetrics", "scrape", "share_metrics"]

SHARED_DIR = "PROMETHEUS_MULTIPROC_DIR"


def share_metrics() -> str:
    """Make a fresh directory for the processes about to start to write their samples to
    (before they import the client library: it picks its storage at import)."""
    path = tempfile.mkdtemp(prefix="civic-api-metrics-")
    os.environ[SHARED_DIR] = path
    return path


def scrape(registry: CollectorRegistry) -> bytes:
    """The text exposition: every process's samples when they are shared, else this one's."""
    if os.environ.get(SHARED_DIR):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


class RequestMetrics:
    """Request counts and latency per route, as plain ASGI middleware (Starlette's
    ``BaseHTTPMiddleware`` costs about a millisecond a request)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "civic_api_requests", "HTTP requests", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "civic_api_request_seconds", "HTTP request latency", ["route"], registry=registry
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.requests.labels(scope["method"], route, str(status)).inc()
            self.latency.labels(route).observe(time.perf_counter() - started)
