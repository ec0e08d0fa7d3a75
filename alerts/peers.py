"""Peer summaries: how a bin or a home compares with its peers over the same hours.

Bins: how much comparable bins changed, so a flat sensor can be judged.

A fill reading that has not moved for days is only suspicious when the bins around it did
move: in a quiet week (a holiday, a closed park) every bin is flat. "Comparable" means the same
patch and waste stream. The summary for one bin is the median, over the *other* bins of its
group, of how far each one's fill ranged (max - min) over the trailing window; the median
ignores the odd broken or newly installed peer.

Homes: how much water vapour the home's air held over the last day beside the other occupied
homes of the estate (:class:`alerts.readings.PeerMoisture`). Outdoor air is the same for all of
them, so a home far above its peers day after day adds or keeps far more moisture than its
neighbours (too little ventilation for the household, a wet wall), in any weather. Void homes
are not peers: nobody lives there to add moisture.

Summaries are taken at fixed instants of data time (every :data:`PEER_EVERY` from the Unix
epoch), never at "whenever the evaluator ran", so a live run and a backfill feed the same
summaries at the same times.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Hashable, Mapping
from datetime import UTC, datetime, timedelta

from alerts.readings import PeerChange, PeerMoisture

__all__ = [
    "MIN_HOME_PEERS",
    "MIN_PEERS",
    "PEER_EVERY",
    "on_grid",
    "peer_changes",
    "peer_moisture",
    "summary_times",
]

PEER_EVERY = timedelta(hours=6)
MIN_PEERS = 3
"""Fewer comparable bins than this say nothing about an area."""
MIN_HOME_PEERS = 20
"""Quartiles of fewer homes than this are too rough to call one home far above the rest."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def on_grid(at: datetime, every: timedelta) -> bool:
    """Whether ``at`` is one of the instants ``every`` apart from the Unix epoch."""
    return (at - _EPOCH) % every == timedelta(0)


def summary_times(
    after: datetime, until: datetime, every: timedelta = PEER_EVERY
) -> list[datetime]:
    """The summary instants ``t`` with ``after < t <= until``."""
    if until <= after:
        return []
    steps = (after - _EPOCH) // every + 1
    first = _EPOCH + steps * every
    out = []
    while first <= until:
        out.append(first)
        first += every
    return out


def peer_changes(
    ranges_pct: Mapping[str, float],
    group_of: Mapping[str, Hashable],
    *,
    at: datetime,
    window: timedelta,
    min_peers: int = MIN_PEERS,
) -> dict[str, PeerChange]:
    """One summary per bin in ``ranges_pct`` whose group has at least ``min_peers`` others.

    ``ranges_pct`` is each bin's fill range (max - min) over ``window`` up to ``at``; bins
    with no readings in the window are simply absent (and are nobody's peer).
    """
    groups: dict[Hashable, list[str]] = {}
    for device_id in ranges_pct:
        groups.setdefault(group_of.get(device_id), []).append(device_id)
    out: dict[str, PeerChange] = {}
    for members in groups.values():
        if len(members) - 1 < min_peers:
            continue
        ordered = sorted(ranges_pct[d] for d in members)
        for device_id in members:
            others = ordered.copy()
            del others[bisect.bisect_left(others, ranges_pct[device_id])]
            out[device_id] = PeerChange(
                device_id=device_id,
                ts=at,
                window=window,
                change_pct=round(statistics.median(others), 3),
                peer_count=len(others),
            )
    return out


def peer_moisture(
    mean_g_m3: Mapping[str, float],
    *,
    at: datetime,
    window: timedelta,
    min_peers: int = MIN_HOME_PEERS,
) -> dict[str, PeerMoisture]:
    """One summary per home in ``mean_g_m3`` (each occupied home's mean absolute humidity over
    ``window`` up to ``at``), with the quartiles of the *other* homes'; none if fewer than
    ``min_peers`` others reported."""
    if len(mean_g_m3) - 1 < min_peers:
        return {}
    ordered = sorted(mean_g_m3.values())
    out: dict[str, PeerMoisture] = {}
    for device_id, own in mean_g_m3.items():
        without = bisect.bisect_left(ordered, own)
        q1, median, q3 = (_quantile_without(ordered, without, q) for q in (0.25, 0.5, 0.75))
        out[device_id] = PeerMoisture(
            device_id=device_id,
            ts=at,
            window=window,
            home_g_m3=round(own, 3),
            peer_q1_g_m3=round(q1, 3),
            peer_median_g_m3=round(median, 3),
            peer_q3_g_m3=round(q3, 3),
            peer_count=len(ordered) - 1,
        )
    return out


def _quantile_without(ordered: list[float], without: int, q: float) -> float:
    """The ``q`` quantile (linear interpolation, numpy's default) of ``ordered`` with the value
    at index ``without`` left out, without copying the list: O(1) a home, not O(homes)."""

    def at(i: int) -> float:
        return ordered[i if i < without else i + 1]

    position = q * (len(ordered) - 2)
    low = int(position)
    if low + 1 > len(ordered) - 2:
        return at(low)
    return at(low) + (position - low) * (at(low + 1) - at(low))
