"""Peer summaries for bins: how much comparable bins changed, so a flat sensor can be judged.

A fill reading that has not moved for days is only suspicious when the bins around it did
move: in a quiet week (a holiday, a closed park) every bin is flat. "Comparable" means the same
patch and waste stream. The summary for one bin is the median, over the *other* bins of its
group, of how far each one's fill ranged (max - min) over the trailing window; the median
ignores the odd broken or newly installed peer.

Summaries are taken at fixed instants of data time (every :data:`PEER_EVERY` from the Unix
epoch), never at "whenever the evaluator ran", so a live run and a backfill feed the same
summaries at the same times.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Hashable, Mapping
from datetime import UTC, datetime, timedelta

from alerts.readings import PeerChange

__all__ = ["MIN_PEERS", "PEER_EVERY", "on_grid", "peer_changes", "summary_times"]

PEER_EVERY = timedelta(hours=6)
MIN_PEERS = 3
"""Fewer comparable bins than this say nothing about an area."""

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
