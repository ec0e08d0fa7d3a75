"""Device simulator: realistic bins and homes publishing contract-v1 telemetry."""

from device_sim.estate import generate_estate, read_estate_csv, write_estate_csv
from device_sim.models import BinModel, HomeModel
from device_sim.simulator import SimConfig, SimReport, Simulator

__all__ = [
    "BinModel",
    "HomeModel",
    "SimConfig",
    "SimReport",
    "Simulator",
    "generate_estate",
    "read_estate_csv",
    "write_estate_csv",
]
