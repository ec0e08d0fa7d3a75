"""The fixed-round baseline for the waste screen's week figures: the closed-loop simulation's
result (``bench/routing_closed_loop.py``, its table in ``bench/results/routing_closed_loop.md``),
where that run exists. Planning from forecasts against the fixed round a council sizes for its
bins, on the demo town: how much further or shorter, how many more collections, how much less
overflow.

Pure parsing: one row per policy (``fixed``, ``weekly``, ``dynamic T %``), one column per
figure; the first dynamic row is compared with the ``fixed`` row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RESULTS", "ClosedLoop", "closed_loop", "read_closed_loop"]

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results" / "routing_closed_loop.md"
COLUMNS = {
    "km": "km",
    "collected": "bins lifted",
    "overflow_hours": "overflow-hours",
}
FIXED = "fixed"


@dataclass(frozen=True, slots=True)
class ClosedLoop:
    command: str
    """How the figures were made (the bench's command line)."""
    dynamic: dict[str, float]
    fixed: dict[str, float]
    dynamic_name: str
    """The dynamic policy compared (e.g. ``dynamic 80 %``: its collection threshold)."""

    def change(self, figure: str) -> float | None:
        """Dynamic against the fixed round, as a fraction (-0.96: 96 % less)."""
        base = self.fixed.get(figure)
        if not base or figure not in self.dynamic:
            return None
        return self.dynamic[figure] / base - 1


def read_closed_loop(text: str) -> ClosedLoop | None:
    """The figures of a closed-loop results page, or ``None`` when it has no such table."""
    command = re.search(r"`([^`]*routing_closed_loop[^`]*)`", text)
    header = re.search(r"^\|\s*policy\s*\|(.*)\|\s*$", text, re.M)
    if header is None:
        return None
    names = [c.strip() for c in header.group(1).split("|")]
    rows: dict[str, dict[str, float]] = {}
    below = text[header.end() :].lstrip("\n").splitlines()
    for line in below[1:]:  # after the |---| row
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != len(names) + 1:
            break
        figures = dict(zip(names, cells[1:], strict=True))
        rows[cells[0]] = {
            key: float(figures[column])
            for key, column in COLUMNS.items()
            if re.fullmatch(r"[\d.]+", figures.get(column, ""))
        }
    dynamic_name = next((name for name in rows if name.startswith("dynamic")), None)
    if FIXED not in rows or dynamic_name is None:
        return None
    return ClosedLoop(
        command.group(1) if command else "", rows[dynamic_name], rows[FIXED], dynamic_name
    )


def closed_loop(path: Path = RESULTS) -> ClosedLoop | None:
    """The closed-loop figures where the run's results exist on this machine."""
    try:
        return read_closed_loop(path.read_text(encoding="utf-8"))
    except OSError:
        return None
