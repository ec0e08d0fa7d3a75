"""Which layout of detector state a stored checkpoint holds.

Checkpoints are pickles of :class:`alerts.detector.Detector` and the rules' state inside it.
A pickle restores an object's attributes by name (or, for slotted dataclasses, by position),
so a rule that gains, loses or reorders a field after an upgrade would come back from an old
checkpoint with an attribute missing or, worse, a value in the wrong field. Each checkpoint is
therefore stored with :func:`state_format`, a digest of the layout of every class whose
instances can be in a detector's state; the evaluator refuses checkpoints of another layout
and says how to rebuild them (a backfill), instead of running on a misread state.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import importlib
import inspect

__all__ = ["STATE_MODULES", "state_format"]

STATE_MODULES = (
    "alerts.awaab",
    "alerts.detector",
    "alerts.events",
    "alerts.mould",
    "alerts.readings",
    "alerts.rules._base",
    "alerts.rules.air",
    "alerts.rules.bins",
    "alerts.rules.damp",
    "alerts.rules.device",
    "alerts.rules.leak",
    "alerts.rules.moisture",
    "alerts.rules.temperature",
)
"""The modules whose classes a detector's state is made of (the rules, their settings and
helpers, and the values they keep)."""


@functools.cache
def state_format() -> str:
    """A short digest of the attribute layout of every class in :data:`STATE_MODULES`."""
    digest = hashlib.sha256()
    for name in STATE_MODULES:
        module = importlib.import_module(name)
        for qualname, cls in sorted(inspect.getmembers(module, inspect.isclass)):
            if cls.__module__ == name:
                digest.update(f"{name}.{qualname}:{_layout(cls)}\n".encode())
    return digest.hexdigest()[:16]


def _layout(cls: type) -> str:
    """The attributes an instance of ``cls`` carries, in the order a pickle relies on."""
    if issubclass(cls, enum.Enum):
        return ",".join(cls.__members__)  # a pickle names its member
    if dataclasses.is_dataclass(cls):
        return ",".join(f.name for f in dataclasses.fields(cls))
    slots = [s for klass in cls.__mro__ for s in getattr(klass, "__slots__", ())]
    if slots:
        return ",".join(slots)
    # A plain class keeps what its __init__ assigns; the names it touches stand in for them.
    init = cls.__dict__.get("__init__")
    code = getattr(init, "__code__", None)
    return ",".join(sorted(code.co_names)) if code is not None else ""
