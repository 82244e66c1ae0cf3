"""Signed GPS position (a deliberate FIX over the Node ingest).

exiftool's first-wins `GPSLatitude`/`GPSLongitude` have no hemisphere, so the Node pipeline stored
western longitudes as positive. The record carries signed decimal degrees (S and W negative),
equal to exiftool's Composite:GPSLatitude/GPSLongitude, and the altitude in metres, negative
below sea level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from animl_ingest_cli.metadata import tags as T


@dataclass
class GpsPosition:
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    problems: list[str] = field(default_factory=list)


def _ref(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return str(value or "").strip("\0 ").upper()


def gps_position(gps: dict[int, Any]) -> GpsPosition:
    pos = GpsPosition()
    for coord_tag, ref_tag, negative, attr, name in ((0x02, 0x01, "S", "latitude", "GPSLatitude"),
                                                     (0x04, 0x03, "W", "longitude", "GPSLongitude")):
        if coord_tag not in gps:
            continue
        try:
            degrees = T.gps_degrees(gps[coord_tag])
        except (TypeError, ValueError):
            degrees = None
        if degrees is None:
            pos.problems.append(f"{name} unreadable")
            continue
        ref = _ref(gps.get(ref_tag))
        if not ref:
            side = "north" if negative == "S" else "east"
            pos.problems.append(f"{name}Ref missing: {name} taken as {side}")
        setattr(pos, attr, -degrees if ref.startswith(negative) and degrees else degrees)
    if 0x06 in gps:
        altitude = T.as_float(gps[0x06])
        if altitude is None:
            pos.problems.append("GPSAltitude unreadable")
        else:
            below = T.as_int(gps.get(0x05)) == 1
            pos.altitude = -abs(altitude) if below and altitude else altitude
    return pos
