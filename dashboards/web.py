"""The web application people open: the HTTP API with the screens on top of it.

Screens are rendered on the server from the API's own endpoint functions, called with the
logged-in person's principal (see ``dashboards/README.md``): what a screen shows is what that
person's token reads through the API, with the same scopes, patch filters and access log.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.app import create_app
from api.settings import ApiSettings
from dashboards.render import render
from dashboards.screens import auth, engineer, officer, waste
from dashboards.session import PENDING_COOKIES, CsrfError, LoginRequiredError

__all__ = ["configured_web_app", "create_web_app"]

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
# What the pages load from npm packages (dashboards/package.json, installed by
# scripts/bootstrap with `npm ci`): served from this app, never from a CDN.
VENDOR = {
    "leaflet.js": "leaflet/dist/leaflet.js",
    "leaflet.css": "leaflet/dist/leaflet.css",
    "uPlot.js": "uplot/dist/uPlot.iife.min.js",
    "uPlot.css": "uplot/dist/uPlot.min.css",
}
VENDOR_MAX_AGE_S = 86_400  # pinned versions: a day of caching is safe


def content_security_policy(tile_url: str | None) -> str:
    """Scripts, styles and data from this site only (a tile server's images when one is
    configured); no framing, no form posts elsewhere."""
    images = "'self' data:"
    if tile_url:
        parts = urlsplit(tile_url.replace("{s}", "a"))
        images += f" {parts.scheme}://{parts.netloc.replace('a.', '*.', 1)}"
    return (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {images};"
        " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


class _ScreenHeaders:
    """Sends the cookies a screen's dependency queued (a refreshed token pair, a new CSRF
    token) with whatever response the screen returns, error pages and redirects included;
    and the screens' security headers (not the API's, nor /docs, which has its own assets)."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.security = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        pending: list[tuple[str, str, int | None]] = []
        scope[PENDING_COOKIES] = pending
        secure = "; Secure" if scope.get("scheme") == "https" else ""

        screen = not _is_api(scope.get("path", ""))

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start" and (pending or screen):
                headers = list(message.get("headers", []))
                if screen:
                    headers.extend(self.security)
                for name, value, max_age in pending:
                    age = f"; Max-Age={max_age}" if max_age is not None else ""
                    cookie = f"{name}={value}; HttpOnly; Path=/; SameSite=Strict{age}{secure}"
                    headers.append((b"set-cookie", cookie.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookies)


def _is_api(path: str) -> bool:
    return path.startswith(("/api/", "/docs", "/openapi", "/healthz", "/readyz", "/metrics"))


def _install_screen_errors(app: FastAPI) -> None:
    api_handler = app.exception_handlers[StarletteHTTPException]

    async def login_required(request: Request, _: Exception) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = "/"
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)

    async def csrf_failed(request: Request, _: Exception) -> Response:
        message = "This form was out of date or came from another site. Please try again."
        return render(request, "error.html", {"status": 403, "message": message}, 403)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if _is_api(request.url.path):
            response = api_handler(request, exc)
            return await response if inspect.isawaitable(response) else response
        message = exc.detail if isinstance(exc.detail, str) else "That did not work."
        return render(
            request, "error.html", {"status": exc.status_code, "message": message}, exc.status_code
        )

    app.add_exception_handler(LoginRequiredError, login_required)
    app.add_exception_handler(CsrfError, csrf_failed)
    app.add_exception_handler(StarletteHTTPException, http_error)


def create_web_app(database_url: str, settings: ApiSettings | None = None) -> FastAPI:
    """:func:`api.create_app` plus the screens."""
    app = create_app(database_url, settings, swagger_ui=NODE_MODULES / "swagger-ui-dist")
    _install_screen_errors(app)
    settings = app.state.settings
    app.add_middleware(_ScreenHeaders, csp=content_security_policy(settings.map_tile_url))
    app.mount("/static/app", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/static/vendor/{name}", include_in_schema=False)
    def vendor(name: str) -> Response:
        if name not in VENDOR:
            return Response(status_code=404)
        path = NODE_MODULES / VENDOR[name]
        if not path.is_file():  # scripts/bootstrap runs `npm ci` in dashboards/
            return Response(f"{name} is not installed: run scripts/bootstrap", status_code=503)
        return FileResponse(path, headers={"Cache-Control": f"max-age={VENDOR_MAX_AGE_S}"})

    for module in (auth, officer, waste, engineer):
        app.include_router(module.router)
    return app


def configured_web_app() -> FastAPI:
    """The web app for the configured database (``CIVIC_DATABASE_URL``, or the project-local
    one): what ``civic api`` has each of its worker processes build."""
    from common.settings import database_url

    return create_web_app(database_url())
