"""Tiny OpenStreetMap XML files for the road network tests.

Networks sit on the equator, where 0.001 degree of latitude or longitude is the same
:data:`STEP_M` on the ground, so expected lengths can be worked out by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

# 0.001 degree along a great circle of the IUGG mean Earth radius.
STEP_M = 6_371_008.8 * math.radians(0.001)


def write_osm(
    path: Path,
    nodes: Mapping[int, tuple[float, float]],
    ways: Sequence[tuple[Sequence[int], Mapping[str, str]]],
) -> Path:
    """Write ``nodes`` (id -> lat, lon) and ``ways`` (node ids, tags) as an .osm XML file."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="tests">']
    lines += [
        f'  <node id="{node}" version="1" lat="{lat:.7f}" lon="{lon:.7f}"/>'
        for node, (lat, lon) in nodes.items()
    ]
    for number, (refs, tags) in enumerate(ways, start=1):
        lines.append(f'  <way id="{number}" version="1">')
        lines += [f'    <nd ref="{ref}"/>' for ref in refs]
        lines += [f"    <tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in tags.items()]
        lines.append("  </way>")
    lines.append("</osm>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
