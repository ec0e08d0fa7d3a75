"""The device registry's vocabulary: what is handed over with a device, besides its messages.

A council (or a device maker) registers each device with one CSV row; the simulator writes the
same file for its estate and ``civic devices import`` reads it. The columns and the waste
streams are defined here once, beside the message contract, because both ends of the flow use
them and neither may import the other.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = ["DEVICE_CSV_COLUMNS", "WasteStream"]

DEVICE_CSV_COLUMNS: Final = (
    "device_id",
    "kind",
    "lat",
    "lon",
    "uprn",
    "address",
    "patch",
    "void",
    "waste_stream",
    "capacity_l",
    "threshold_pct",
)
"""The registry CSV's required header, in this order; extra columns are kept as attributes."""


class WasteStream(StrEnum):
    """What a bin holds: FIWARE ``storedWasteKind`` values a council collects separately."""

    GENERAL = "general"
    RECYCLING = "recycling"
    GARDEN = "garden"
    FOOD = "food"
    GLASS = "glass"
