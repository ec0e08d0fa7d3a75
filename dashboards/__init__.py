"""The screens people open, served with the API (``civic api``).

Screens read only through the secured API, with the user's own token, so a screen never shows
what its user could not read.
"""

from dashboards.web import create_web_app

__all__ = ["create_web_app"]
