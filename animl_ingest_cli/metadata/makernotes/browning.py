"""Browning maker notes: a JSON object, which exiftool does not decode (it reports no serial).

Seen on a BTC-6PX: `{"maker":"Browning","model":"BTC-6PX","camera_name":"    167BWS",
"serial_number":"4569999999995PX",...}`. The serial is only surfaced as a hint.
"""

from __future__ import annotations

import json

MAX_JSON_BYTES = 65536


def json_fields(note: bytes | None) -> dict[str, object] | None:
    """The maker note as a JSON object, or None when it is not one."""
    if not note or not note.lstrip()[:1] == b"{" or len(note) > MAX_JSON_BYTES:
        return None
    try:
        obj = json.loads(note.rstrip(b"\0").decode("utf-8", "replace"))
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def serial(note: bytes | None) -> str | None:
    fields = json_fields(note)
    if not fields:
        return None
    value = fields.get("serial_number")
    if value is None:
        return None
    value = str(value).strip()
    return value or None
