"""The secured HTTP API (``/api/v1``): OAuth 2.0 login, roles and scopes, patch scoping in SQL,
an append-only access log, problem+json errors. See :func:`create_app`."""

from api.app import create_app

__all__ = ["create_app"]
