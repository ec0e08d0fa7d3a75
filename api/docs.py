"""``/docs``: Swagger UI over the OpenAPI document, its JavaScript and CSS served by this app
(npm ``swagger-ui-dist``, pinned in ``dashboards/package.json``), never from a CDN: council
networks are often offline or locked down."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, Response

__all__ = ["ASSETS", "install_docs"]

ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")
ASSETS_MAX_AGE_S = 86_400  # a pinned version: a day of caching is safe
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


def install_docs(app: FastAPI, assets: Path | None) -> None:
    """Swagger UI at ``/docs`` with its assets from ``assets`` (the ``swagger-ui-dist``
    package directory); without it the page says how to install them."""

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
            oauth2_redirect_url=OAUTH2_REDIRECT,
            swagger_ui_parameters={"validatorUrl": None},  # no badge from an outside validator
        )

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in ASSETS:
            return Response(status_code=404)
        path = assets / name if assets is not None else None
        if path is None or not path.is_file():
            return Response(
                "Swagger UI is not installed: run scripts/bootstrap (npm swagger-ui-dist)",
                status_code=503,
                media_type="text/plain",
            )
        return FileResponse(path, headers={"Cache-Control": f"max-age={ASSETS_MAX_AGE_S}"})
