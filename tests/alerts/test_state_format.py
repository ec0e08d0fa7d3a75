"""A checkpoint's state layout changes when a rule's state would be read differently."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

from alerts.state_format import _layout, state_format


@dataclasses.dataclass(slots=True)
class Before:
    window: float
    count: int


@dataclasses.dataclass(slots=True)
class FieldInserted:
    window: float
    since: float
    count: int


class Plain:
    def __init__(self) -> None:
        self.window = 1.0


class PlainGrown:
    def __init__(self) -> None:
        self.window = 1.0
        self.since = 0.0


def test_a_field_added_or_moved_changes_the_layout() -> None:
    assert _layout(Before) != _layout(FieldInserted)
    assert _layout(Plain) != _layout(PlainGrown)
    assert _layout(Before) == "window,count"


def test_the_layout_is_the_same_in_every_process() -> None:
    other = subprocess.run(
        [sys.executable, "-c", "from alerts.state_format import state_format as f; print(f())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert other.stdout.strip() == state_format()
