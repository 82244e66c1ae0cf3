"""EXIF (a TIFF structure) read with Pillow's `Image.Exif`, without opening the image.

Pillow reads every IFD exiftool could in the corpus (piexif drops the last character of text
written without a NUL and raises on a real Spartan file). Pillow caps the out-of-line data one IFD
may claim at the size of the payload, so hostile offsets and counts cost at most a few copies of a
payload that is itself bounded (64 KB in a JPEG, MAX_EXIF_BYTES in a PNG).
"""

from __future__ import annotations

import struct
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from PIL import ExifTags, Image

from animl_ingest_cli.metadata import tags as T
from animl_ingest_cli.metadata import text

MAX_EXIF_BYTES = 1024 * 1024      # a PNG eXIf chunk bigger than this is not EXIF from a camera
MAX_IFD_ENTRIES = 1000            # real IFDs hold a few dozen; a huge count is hostile or garbage
MAX_TEXT_CHARS = 8192             # longer text values are cut (camera text is far shorter)

_WARNINGS_LOCK = threading.Lock()
_IFD_POINTERS = (0x8769, 0x8825, 0xA005, 0x927C)  # structure, not values


@dataclass
class Tag:
    group: str     # exiftool's family-0 group: File, JFIF, EXIF, MakerNotes, XMP, PNG, Composite
    name: str
    value: str | int | float | list[str]   # as exiftool prints it (text until the record is built)
    priority: int = 1   # exiftool's tag priority: a duplicate replaces one of lower or equal priority


@dataclass
class ExifResult:
    byte_order: str | None = None              # "II" or "MM"
    tags: list[Tag] = field(default_factory=list)
    make: str = ""                              # printed Make (decides the maker-note layout)
    maker_note: bytes | None = None
    gps: dict[int, Any] = field(default_factory=dict)   # raw GPS IFD values
    user_comment: str | None = None
    problems: list[str] = field(default_factory=list)


def read_exif(payload: bytes, base: int = 0) -> ExifResult:
    """Parse a TIFF-structured EXIF payload found at file offset `base`; never raises (problems
    are collected)."""
    result = ExifResult()
    if len(payload) > MAX_EXIF_BYTES:
        result.problems.append(f"EXIF block of {len(payload)} bytes ignored (over {MAX_EXIF_BYTES})")
        return result
    if payload[:4] not in (b"II*\0", b"MM\0*"):
        result.problems.append("EXIF block does not start with a TIFF header")
        return result
    result.byte_order = payload[:2].decode()
    payload, crowded, defused, stored = _defuse(payload)
    result.problems += defused
    if 0 in crowded:
        result.problems.append(f"EXIF ignored: IFD0 claims more than {MAX_IFD_ENTRIES} entries")
        return result
    # catch_warnings swaps process-wide state: one reader at a time keeps threads from mixing it up
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _read(payload, base, result, crowded, stored)
        except Exception as exc:  # noqa: BLE001 - hostile EXIF must never stop the record
            result.problems.append(f"EXIF partly unreadable: {type(exc).__name__}: {exc}")
    for w in caught[:5]:
        result.problems.append(f"EXIF: {w.message}")
    return result


def _read(payload: bytes, base: int, result: ExifResult, skip: set[int],
          stored: dict[str, dict[int, Stored]]) -> None:
    exif = Image.Exif()
    exif.load(payload)
    ifd0 = _values(exif, list(exif))
    exif_ifd = _get_ifd(exif, ExifTags.IFD.Exif, result, skip)
    gps = _get_ifd(exif, ExifTags.IFD.GPSInfo, result, skip) if 0x8825 in ifd0 else {}
    interop = _get_ifd(exif, ExifTags.IFD.Interop, result, skip) if 0xA005 in exif_ifd else {}
    ifd1 = _get_ifd(exif, ExifTags.IFD.IFD1, result, skip)

    big_endian = payload[:2] == b"MM"
    priority_dir = "IFD0" if ifd0.get(0x00FE) == 0 else None  # SubfileType 0: IFD0 is the main image
    for ifd_name, table, tag_id, value in _in_exiftool_order(ifd0, exif_ifd, gps, interop, ifd1):
        as_stored = stored.get(ifd_name, {}).get(tag_id)
        if as_stored is not None and as_stored.raw is not None and isinstance(value, (bytes, str)):
            value = _as_pillow_gives(as_stored)
        printed = _printed(result, table, tag_id, value, big_endian, as_stored)
        if printed is None:
            continue
        priority = _priority(ifd_name, tag_id, priority_dir)
        result.tags.append(Tag("EXIF", table[tag_id].name, printed, priority))
    _add_thumbnail(result, ifd1, payload, base)

    make = next((t.value for t in result.tags if t.name == "Make" and t.priority), None)
    if isinstance(make, str):
        result.make = make  # as printed: a Make stored as BYTE is numbers, for exiftool too
    note = exif_ifd.get(0x927C)
    if isinstance(note, str):  # declared ASCII by some cameras (RapidFire)
        note = note.encode("latin-1", "replace")
    if isinstance(note, (bytes, bytearray)) and note:
        result.maker_note = bytes(note)
    result.gps = gps
    comment = exif_ifd.get(0x9286)
    if comment is not None:
        result.user_comment = T.user_comment(comment, big_endian)


_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_INT_FORMATS = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i"}


@dataclass
class Stored:
    """An entry as stored: its TIFF type, for integer types its values (Pillow keeps only as many
    values as the EXIF standard expects for the tag; exiftool prints them all), and for byte and
    text types its bytes as the file holds them (Pillow reads the defused copy, whose zeroed counts
    would show in a value stored over an IFD)."""

    type: int
    numbers: tuple[int, ...] | None = None
    raw: bytes | None = None   # BYTE/ASCII/UNDEFINED bytes as in the file, not the defused copy


def _defuse(payload: bytes) -> tuple[bytes, set[int], list[str], dict[str, dict[int, Stored]]]:
    """Make a hostile TIFF structure harmless before Pillow reads it (whatever Pillow's version),
    and note each entry's stored type (Pillow gives BYTE and UNDEFINED values alike, as bytes).

    An IFD (IFD0, Exif, GPS, Interop, IFD1) claiming more than MAX_IFD_ENTRIES entries is named in
    the returned set, to be skipped. In each IFD, values stored out of line may together claim at
    most the payload's size: entries past that budget get a count of 0, which Pillow skips, so
    overlapping offsets cannot multiply the memory a small block costs.
    """
    order = "<" if payload[:2] == b"II" else ">"
    buf = bytearray(payload)
    crowded: set[int] = set()
    problems: list[str] = []
    types: dict[str, dict[int, Stored]] = {}
    names = {0: "IFD0", ExifTags.IFD.Exif: "ExifIFD", ExifTags.IFD.GPSInfo: "GPS",
             ExifTags.IFD.Interop: "InteropIFD", ExifTags.IFD.IFD1: "IFD1"}

    def u16(at: int) -> int:
        return struct.unpack_from(order + "H", buf, at)[0] if 0 < at <= len(buf) - 2 else 0

    def u32(at: int) -> int:
        return struct.unpack_from(order + "I", buf, at)[0] if 0 < at <= len(buf) - 4 else 0

    def walk(offset: int, which: int) -> tuple[dict[int, int], int]:
        count = u16(offset)
        if count > MAX_IFD_ENTRIES:
            crowded.add(which)
            return {}, 0
        budget, dropped, values = len(buf), 0, {}
        stored = types.setdefault(names[which], {})
        for entry in range(offset + 2, min(offset + 2 + 12 * count, len(buf) - 11), 12):
            tag, typ, n = struct.unpack_from(order + "HHI", buf, entry)
            size = n * _TYPE_SIZES.get(typ, 0)
            at = entry + 8 if size <= 4 else u32(entry + 8)
            if size > 4:
                budget -= size
                if budget < 0:
                    struct.pack_into(order + "I", buf, entry + 4, 0)
                    dropped += 1
            if tag not in stored:
                whole = typ in (1, 2, 7) and budget >= 0 and at + size <= len(payload)
                raw = payload[at:at + size] if whole else None
                stored[tag] = Stored(typ, _numbers(payload, order, typ, n, at), raw)
            values[tag] = u32(entry + 8)
        if dropped:
            problems.append(f"EXIF: {dropped} values dropped, their data larger than the EXIF block")
        return values, u32(offset + 2 + 12 * count)

    ifd0, next_ifd = walk(u32(4), 0)
    seen = {u32(4)}
    for pointer, which in ((0x8769, ExifTags.IFD.Exif), (0x8825, ExifTags.IFD.GPSInfo)):
        if ifd0.get(pointer) and ifd0[pointer] not in seen:
            seen.add(ifd0[pointer])
            sub, _ = walk(ifd0[pointer], which)
            if which == ExifTags.IFD.Exif and sub.get(0xA005) and sub[0xA005] not in seen:
                seen.add(sub[0xA005])
                walk(sub[0xA005], ExifTags.IFD.Interop)
    if next_ifd and next_ifd not in seen:
        walk(next_ifd, ExifTags.IFD.IFD1)
    return bytes(buf), crowded, problems, types


def _as_pillow_gives(stored: Stored) -> bytes | str:
    """The original bytes in the form Pillow gives them: ASCII as text less one trailing NUL."""
    raw = stored.raw or b""
    if stored.type == 2:
        return (raw[:-1] if raw.endswith(b"\0") else raw).decode("latin-1")
    return raw


def _numbers(buf: bytes | bytearray, order: str, typ: int, count: int, at: int) -> tuple[int, ...] | None:
    """The values of an integer-typed entry (at most 64 of them: only text tags use this)."""
    fmt = _INT_FORMATS.get(typ)
    if fmt is None or not 0 < count <= 64 or at + count * _TYPE_SIZES[typ] > len(buf):
        return None
    return struct.unpack_from(f"{order}{count}{fmt}", buf, at)


def _values(exif: Image.Exif, keys: list[int]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for key in sorted(keys):
        try:
            out[key] = exif[key]
        except Exception:  # noqa: BLE001, S112 - one bad tag must not lose the others
            continue
    return out


def _get_ifd(exif: Image.Exif, which: int, result: ExifResult, skip: set[int]) -> dict[int, Any]:
    if which in skip:
        name = ExifTags.IFD(which).name
        result.problems.append(f"EXIF {name} IFD ignored: more than {MAX_IFD_ENTRIES} entries")
        return {}
    try:
        ifd = exif.get_ifd(which)
    except Exception as exc:  # noqa: BLE001
        result.problems.append(f"EXIF {ExifTags.IFD(which).name} IFD unreadable: {type(exc).__name__}")
        return {}
    return {k: ifd[k] for k in sorted(ifd)}


# Tags exiftool gives priority 0: a later duplicate never replaces an earlier one (unless it is in
# the priority directory); every other duplicate replaces the one before, except from IFD1.
_LOW_PRIORITY = frozenset({0x0100, 0x0101, 0x0102, 0x0103, 0x0106, 0x010E, 0x0112, 0x0115, 0x0116, 0x011A,
                           0x011B, 0x011C, 0x0128, 0x013F, 0x0211, 0x0212, 0x0213, 0x0214, 0xA403})


def _priority(ifd_name: str, tag_id: int, priority_dir: str | None) -> int:
    """exiftool's priority for this tag here (FoundTag: 0 never replaces a value already found)."""
    if tag_id in _LOW_PRIORITY:
        return int(ifd_name == priority_dir)
    return int(ifd_name != "IFD1")


Entry = tuple[str, dict[int, T.TagDef], int, Any]


def _entries(ifd_name: str, table: dict[int, T.TagDef], ifd: dict[int, Any]) -> Iterator[Entry]:
    for tag_id, value in ifd.items():
        if tag_id in table and not (table is T.EXIF_TAGS and tag_id in _IFD_POINTERS):
            yield ifd_name, table, tag_id, value


def _in_exiftool_order(ifd0: dict[int, Any], exif_ifd: dict[int, Any], gps: dict[int, Any],
                       interop: dict[int, Any], ifd1: dict[int, Any]) -> Iterator[Entry]:
    """Entries in the order exiftool meets them: a sub-IFD where its pointer sits, IFD1 last."""
    for tag_id, value in ifd0.items():
        if tag_id == ExifTags.IFD.Exif:
            for sub_id, sub_value in exif_ifd.items():
                if sub_id == ExifTags.IFD.Interop:
                    yield from _entries("InteropIFD", T.EXIF_TAGS, interop)
                else:
                    yield from _entries("ExifIFD", T.EXIF_TAGS, {sub_id: sub_value})
        elif tag_id == ExifTags.IFD.GPSInfo:
            yield from _entries("GPS", T.GPS_TAGS, gps)
        else:
            yield from _entries("IFD0", T.EXIF_TAGS, {tag_id: value})
    yield from _entries("IFD1", T.EXIF_TAGS, ifd1)


def _printed(result: ExifResult, table: dict[int, T.TagDef], tag_id: int, value: Any,
             big_endian: bool, stored: Stored | None = None) -> str | None:
    tag = table[tag_id]
    if stored is not None and T.is_text_tag(tag):
        # exiftool prints what is stored: a Make stored as BYTE or SHORT is numbers ("66 89 0")
        if stored.numbers is not None:
            return " ".join(str(n) for n in stored.numbers)
        if stored.type in (1, 6) and isinstance(value, (bytes, bytearray)):
            return T.numbers(value)
    if tag.signed_rational and not T.is_rational(T.values(value)[0] if T.values(value) else None):
        value = T.as_signed_rational(value, big_endian)
    try:
        if tag.convert is T.user_comment:
            printed = T.user_comment(value, big_endian)
        else:
            printed = T.print_value(tag, value)
    except Exception:  # noqa: BLE001 - a malformed value is skipped, like exiftool does
        return None
    if len(printed) > MAX_TEXT_CHARS:
        result.problems.append(f"EXIF {tag.name} cut to {MAX_TEXT_CHARS} characters")
        printed = printed[:MAX_TEXT_CHARS]
    return printed


def _add_thumbnail(result: ExifResult, ifd1: dict[int, Any], payload: bytes, base: int) -> None:
    """IFD1's JPEG thumbnail: exiftool prints its offset in the file and the data as binary."""
    offset, length = ifd1.get(0x0201), ifd1.get(0x0202)
    if not isinstance(offset, int) or not isinstance(length, int):
        return
    result.tags.append(Tag("EXIF", "ThumbnailOffset", str(offset + base), 0))
    result.tags.append(Tag("EXIF", "ThumbnailLength", str(length), 0))
    if 0 < length and offset + length <= len(payload):
        result.tags.append(Tag("EXIF", "ThumbnailImage", text.binary_placeholder(length), 0))
