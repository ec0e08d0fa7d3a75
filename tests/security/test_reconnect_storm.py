"""A reconnect storm (ETSI EN 303 645 5.9-3): a few hundred devices, each on its own TLS
connection with its own credentials, lose the broker to a restart and come back, spread out by
their jittered backoff rather than in one wave.

The spread is measured, not timed: how long each device really waited between losing its
connection and its next attempt. With jitter those waits spread over the backoff's whole range
(the middle half of them over about half the base delay); with the same delay for everyone
(``Backoff(jitter=False)``) they bunch at one value. The busiest tenth of a second is printed
too: on a loaded machine the threads' own scheduling spreads even unjittered attempts, so that
figure alone does not tell the two apart.
"""

from __future__ import annotations

import time
from pathlib import Path

from common.broker import BrokerLimits
from common.command_keys import load_command_secret
from common.services import LocalServices
from device_sim.connections import Backoff, DeviceFleet
from store.credentials import broker_password_hashes, issue_credentials
from store.db import connect
from tests.ingest.helpers import register_estate, wait_for

DEVICES = 300
BACKOFF = Backoff(base_s=2.0, cap_s=30.0)
WINDOW_S = 0.1


def busiest_window_share(times: list[float], window_s: float) -> float:
    """The largest share of ``times`` that falls within any window of ``window_s``."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] > window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best / len(ordered) if ordered else 0.0


def test_busiest_window_share_counts_the_densest_window() -> None:
    assert busiest_window_share([0.0, 0.05, 0.09, 1.0], 0.1) == 0.75
    assert busiest_window_share([0.0, 0.5, 1.0, 1.5], 0.1) == 0.25


def _provision(database_url: str, local: LocalServices, tmp_path: Path) -> dict[str, str]:
    estate = register_estate(database_url, bins=DEVICES, homes=0)
    with connect(database_url) as conn:
        secret = load_command_secret(tmp_path / "command.secret")
        issued = issue_credentials(conn, [row["device_id"] for row in estate], secret=secret)
        local.write_device_passwords(broker_password_hashes(conn))
    return {cred.device_id: cred.password for cred in issued}


def test_devices_come_back_after_a_broker_restart_spread_out(database_url, tmp_path) -> None:
    local = LocalServices(tmp_path / "broker", limits=BrokerLimits())
    local.start_mosquitto()
    passwords = _provision(database_url, local, tmp_path)
    state = local.load_state()
    assert state.mqtt_tls_port is not None
    fleet = DeviceFleet(
        passwords, "localhost", state.mqtt_tls_port, ca_file=local.ca_file, backoff=BACKOFF
    )
    try:
        fleet.start()
        wait_for(lambda: fleet.connected() == DEVICES, 120, "every device to connect")
        before = len(fleet.log.connects)
        stop_at = time.monotonic()
        local.stop_mosquitto()
        down_at = time.monotonic()
        wait_for(lambda: fleet.connected() == 0, 30, "every device to notice the broker gone")
        time.sleep(1.0)
        local.start_mosquitto()
        assert local.load_state().mqtt_tls_port == state.mqtt_tls_port
        wait_for(lambda: fleet.connected() == DEVICES, 180, "every device to reconnect")
    finally:
        fleet.close()
        local.stop_mosquitto()

    attempts = fleet.log.attempts_since(down_at)
    first_tries: dict[str, float] = {}
    for device_id, at in attempts:
        first_tries.setdefault(device_id, at)
    reconnected = {d for d, _ in fleet.log.connects[before:]}
    share_all = busiest_window_share([at for _, at in attempts], WINDOW_S)
    share_first = busiest_window_share(list(first_tries.values()), WINDOW_S)
    spread = sorted(first_tries.values())
    waits = sorted(fleet.log.first_waits(stop_at).values())
    middle_half = waits[len(waits) * 3 // 4] - waits[len(waits) // 4]
    print(
        f"storm: {DEVICES} devices, {len(attempts)} attempts after the restart; first tries "
        f"spread over {spread[-1] - spread[0]:.2f}s (10-90%: "
        f"{spread[len(spread) * 9 // 10] - spread[len(spread) // 10]:.2f}s); busiest "
        f"{WINDOW_S}s window: {share_first:.0%} of first tries, {share_all:.0%} of all; "
        f"waits after the loss {waits[0]:.2f}-{waits[-1]:.2f}s, middle half {middle_half:.2f}s"
    )
    assert reconnected == set(passwords)  # every device back, each on its own connection
    assert len(first_tries) == DEVICES
    assert len(waits) == DEVICES
    # Uniform over [0, base]: the middle half spans base / 2; one common delay spans ~0.
    assert middle_half > BACKOFF.base_s / 4
