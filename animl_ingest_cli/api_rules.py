"""animl-api's createImage rules, as far as this code relies on them (docs/animl.md): one leaf module
read by the local stage's catalog (api_local), by the ingest's dry-run plan and its handling of
duplicates, by the metadata record's notes and by `inspect`.

The rules follow animl-api's `ImageModel.createImage`: keys are normalised, `serialNumber` and
`hash` are required, validation errors are collected in animl-api's order (the `md.errors` strings,
`Unknown Serial Number`, `Unknown DateTimeOriginal`, `Image Size Exceed 8 MB`), and a second image
with the same id in a project is refused with Mongo's E11000 duplicate-key text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from animl_ingest_cli.errors import ApiError

MAX_IMAGE_BYTES = 8_000_000   # animl-api: imageBytes >= 8 * 1000000 is refused
UNKNOWN_SERIAL = "Unknown Serial Number"
UNKNOWN_DATE = "Unknown DateTimeOriginal"
TOO_LARGE = "Image Size Exceed 8 MB"
DUPLICATE_MARK = "E11000"  # Mongo's duplicate-key error code, at the start of animl-api's text


def is_duplicate(errors: list[str]) -> bool:
    """True when createImage refused the image as a duplicate (its id exists in the project)."""
    return any(DUPLICATE_MARK in e for e in errors)


def normalise_key(key: str) -> str:
    """animl-api's sanitizeMetadata: lower-case the first letter unless the second character is
    upper case (an acronym: `MIMEType`, `GPSLatitude`). A second character without case (a digit,
    nothing) counts as upper case, as in the JS test `charAt(1) == charAt(1).toUpperCase()`."""
    second = key[1:2]
    return key[:1].lower() + key[1:] if second != second.upper() else key


def normalise_md(md: dict[str, Any]) -> dict[str, Any]:
    return {normalise_key(k): v for k, v in md.items()}


def duplicate_text(image_id: str) -> str:
    """Mongo's duplicate-key message for a second image with the same _id."""
    return (f"{DUPLICATE_MARK} duplicate key error collection: animl.images index: _id_ dup key: "
            f'{{ _id: "{image_id}" }}')


@dataclass
class MdCheck:
    """The normalised md and what validation found (before the duplicate check)."""

    md: dict[str, Any]
    camera_id: str
    errors: list[str] = field(default_factory=list)


def check_md(md: dict[str, Any], override_serial: str | None = None) -> MdCheck:
    """animl-api's createImage validation, in its order. Raises ApiError (a GraphQL error in
    animl-api) when a required key is missing; returns the validation errors otherwise.

    `override_serial` is the batch's overrideSerial: it replaces the camera's serial first.
    """
    if not isinstance(md, dict):
        raise ApiError("md must be a JSON object")
    norm = normalise_md(md)
    for required in ("serialNumber", "hash"):
        if norm.get(required) is None:
            raise ApiError(f"md.{required} is required (animl-api cannot create an image without it)")
    if override_serial:
        norm["serialNumber"] = override_serial
    camera_id = str(norm["serialNumber"])
    errors = [e for e in (md.get("errors") or []) if isinstance(e, str)]
    if not camera_id or camera_id == "unknown":
        errors.append(UNKNOWN_SERIAL)
    if not norm.get("dateTimeOriginal"):
        errors.append(UNKNOWN_DATE)
    size = _number(norm.get("imageBytes"))  # JS compares a numeric string as a number
    if size is not None and size >= MAX_IMAGE_BYTES:
        errors.append(TOO_LARGE)
    return MdCheck(norm, camera_id, errors)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
