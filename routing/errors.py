"""The routing package's exceptions: one base, subclasses carrying what went wrong."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from routing.model import Violation

__all__ = ["InvalidPlanError", "MatrixError", "NoSolutionError", "RoutingError"]


class RoutingError(Exception):
    """Base class for errors raised by the routing package."""


class MatrixError(RoutingError):
    """A travel matrix could not be built (for example the routing server refused)."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class NoSolutionError(RoutingError):
    """The solver returned no assignment at all within its time limit."""

    def __init__(self, message: str, *, engine: str, time_limit_s: float):
        super().__init__(message)
        self.engine = engine
        self.time_limit_s = time_limit_s


class InvalidPlanError(RoutingError):
    """The independent validator found violations in a plan the caller required to be valid."""

    def __init__(self, violations: Sequence[Violation]):
        shown = "; ".join(v.message for v in violations[:5])
        more = f" (and {len(violations) - 5} more)" if len(violations) > 5 else ""
        super().__init__(f"plan has {len(violations)} violation(s): {shown}{more}")
        self.violations = tuple(violations)
