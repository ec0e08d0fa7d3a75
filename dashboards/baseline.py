"""The fixed-round baseline for the waste screen's week figures: the closed-loop simulation's
result (``bench/routing_closed_loop.py``, its table in ``bench/results/routing_closed_loop.md``),
where that run exists. Planning from forecasts against the council's fixed weekly round on the
demo town: how much further or shorter, how many more collections, how much less overflow.

Pure parsing: the table's rows by name, the first two figure columns (dynamic, fixed round).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RESULTS", "ClosedLoop", "closed_loop", "read_closed_loop"]

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results" / "routing_closed_loop.md"
ROWS = {
    "km": "km driven",
    "collected": "bins collected",
    "overflow_hours": "overflow-hours",
}


@dataclass(frozen=True, slots=True)
class ClosedLoop:
    command: str
    """How the figures were made (the bench's command line)."""
    dynamic: dict[str, float]
    fixed: dict[str, float]
    fixed_name: str
    """The baseline's column name (e.g. ``weekly``)."""

    def change(self, figure: str) -> float | None:
        """Dynamic against the fixed round, as a fraction (-0.96: 96 % less)."""
        base = self.fixed.get(figure)
        if not base or figure not in self.dynamic:
            return None
        return self.dynamic[figure] / base - 1


def read_closed_loop(text: str) -> ClosedLoop | None:
    """The figures of a closed-loop results page, or ``None`` when it has no such table."""
    command = re.search(r"`([^`]*routing_closed_loop[^`]*)`", text)
    header = re.search(r"^\|\s*\|\s*dynamic\s*\|\s*([\w -]+?)\s*\|", text, re.M)
    if header is None:
        return None
    dynamic: dict[str, float] = {}
    fixed: dict[str, float] = {}
    for key, name in ROWS.items():
        row = re.search(
            rf"^\|\s*{re.escape(name)}[^|]*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|", text, re.M
        )
        if row:
            dynamic[key], fixed[key] = float(row.group(1)), float(row.group(2))
    if not fixed:
        return None
    return ClosedLoop(command.group(1) if command else "", dynamic, fixed, header.group(1))


def closed_loop(path: Path = RESULTS) -> ClosedLoop | None:
    """The closed-loop figures where the run's results exist on this machine."""
    try:
        return read_closed_loop(path.read_text(encoding="utf-8"))
    except OSError:
        return None
