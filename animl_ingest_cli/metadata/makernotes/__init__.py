"""Maker notes (one module per camera family) and the serials exiftool does not report.

`decode_maker_note` gives the tags exiftool prints in its MakerNotes group. `serial_hints` finds
serials in places exiftool does not look (Browning JSON maker note, RapidFire `SN:` comment line,
CuddeLink `ID=` in UserComment): they are surfaced apart, never as SerialNumber, because a changed
serial would move images to another camera.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from animl_ingest_cli.metadata import text
from animl_ingest_cli.metadata.makernotes import browning, cuddeback, reconyx

_TEXT_NOTE = re.compile(rb"[\x09\x0a\x0d\x20-\x7e]+\0*")


@dataclass(frozen=True)
class SerialHint:
    serial: str
    source: str   # where it was found, for people: "Browning maker note", ...


def decode_maker_note(note: bytes | None, make: str) -> tuple[str | None, list[tuple[str, str]]]:
    """(layout name, [(tag name, printed value)]) for the MakerNotes group; (None, []) when the
    note is absent or of a family not decoded here."""
    if not note:
        return None, []
    found = reconyx.layout_for(note, make)
    if found is None:
        return None, []
    name, layout = found
    return name, reconyx.decode(note, layout)


def unknown_note_tag(note: bytes | None) -> tuple[str, str] | None:
    """exiftool names an undecoded all-text maker note MakerNoteUnknownText: the text itself up
    to 64 bytes, the binary placeholder beyond."""
    if note and _TEXT_NOTE.fullmatch(note):
        value = text.printable(note) if len(note) <= 64 else text.binary_placeholder(len(note))
        return "MakerNoteUnknownText", value
    return None


def serial_hints(note: bytes | None, comment: bytes | None, user_comment: str | None) -> list[SerialHint]:
    hints: list[SerialHint] = []
    found = browning.serial(note)
    if found:
        hints.append(SerialHint(found, "Browning maker note (serial_number)"))
    found = reconyx.rapidfire_serial(comment)
    if found:
        hints.append(SerialHint(found, "JPEG comment (RapidFire SN: line)"))
    found = cuddeback.user_comment_id(user_comment)
    if found:
        hints.append(SerialHint(found, "UserComment (CuddeLink ID=)"))
    return hints
