"""An estate's simulated devices: each registry row's physical model, its faults and its
ground-truth labels, made the same way for the MQTT simulator and for benchmarks that write
readings straight to the store."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from device_sim.models import BinModel, HomeModel
from device_sim.truth import (
    BinFaults,
    Label,
    bin_labels,
    draw_bin_truth,
    draw_home_truth,
    home_labels,
)
from device_sim.weather import Weather

__all__ = ["SimulatedDevice", "populate"]


@dataclass
class SimulatedDevice:
    device_id: str
    kind: str
    model: BinModel | HomeModel
    rng: random.Random
    """The device's own stream (report phase, outages) besides its model's."""
    faults: BinFaults | None = None

    def reading(self, ts: datetime) -> dict[str, float]:
        values = self.model.reading(ts)
        return self.faults.apply(ts, values) if self.faults is not None else values


def populate(
    estate: Sequence[Mapping[str, str]],
    *,
    seed: int,
    start: datetime,
    duration: timedelta,
    season: str = "november",
) -> tuple[list[SimulatedDevice], list[Label]]:
    """Every row's device and the estate's labels; the same seed gives the same town."""
    weather = Weather.named(season, seed)
    days = duration.total_seconds() / 86_400
    devices: list[SimulatedDevice] = []
    labels: list[Label] = []
    for row in estate:
        device_rng = random.Random(f"{seed}:{row['device_id']}")
        # Labels come from a stream of their own, so they do not shift the readings.
        truth_rng = random.Random(f"{seed}:truth:{row['device_id']}")
        if row["kind"] == "bin":
            model: BinModel | HomeModel = BinModel.create(
                row["device_id"], row.get("waste_stream") or "general", device_rng
            )
            bin_truth = draw_bin_truth(truth_rng, start, days)
            devices.append(
                SimulatedDevice(row["device_id"], "bin", model, device_rng, BinFaults(bin_truth))
            )
            labels += bin_labels(row["device_id"], bin_truth)
        else:
            void = row.get("void") == "true"
            home_truth = draw_home_truth(truth_rng, void, start, days)
            model = HomeModel.create(
                row["device_id"], void, device_rng, weather=weather, truth=home_truth
            )
            devices.append(SimulatedDevice(row["device_id"], "env", model, device_rng))
            uprn = row.get("uprn") or row["device_id"]
            labels += home_labels(uprn, row["device_id"], home_truth, start)
    return devices, labels
