"""Server-rendered HTML dashboards (no JavaScript: readable by screen readers, WCAG 2.1 AA)."""

from dashboards.overview import overview_html

__all__ = ["overview_html"]
