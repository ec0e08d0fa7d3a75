"""The HTTP API: documented (OpenAPI at /docs), real-time queries and time-based extracts."""

from api.app import create_app

__all__ = ["create_app"]
