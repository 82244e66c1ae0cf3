"""The md record: every tag under exiftool's name, first non-empty value wins, plus the normalised
fields animl-api reads (docs/animl.md, The record the ingest sends; docs/metadata.md).

One pass over the bytes: the file type from the magic bytes, the JPEG markers (or PNG chunks) up
to the scan data, the EXIF block with Pillow, the maker note. No pixel is decoded.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from animl_ingest_cli import api_rules
from animl_ingest_cli.metadata import makernotes, text
from animl_ingest_cli.metadata.exif import ExifResult, Tag, read_exif
from animl_ingest_cli.metadata.filetype import FileType, detect
from animl_ingest_cli.metadata.gps import gps_position
from animl_ingest_cli.metadata.jpeg import parse_jpeg
from animl_ingest_cli.metadata.png import parse_png
from animl_ingest_cli.metadata.xmp import read_xmp

UNKNOWN = "unknown"
MAX_MD_TEXT = 262_144       # total characters of tag values kept in one record

# The Node ingest parsed DateTimeOriginal with strptime('%Y:%m:%d %H:%M:%S'): other separators
# (`2010/10/10`, `2010-10-10`, a `T`) were no date to it. What follows the seconds (sub-seconds,
# a zone) is ignored: the wall clock is kept (docs/metadata.md).
_DATE = re.compile(r"(\d{4}):(\d{1,2}):(\d{1,2}) (\d{1,2}):(\d{2}):(\d{2})")


@dataclass
class FileMetadata:
    """What `inspect` shows and `ingest` sends: `md` is JSON-serialisable."""

    md: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    is_image: bool = False


def read_metadata_file(path: str | os.PathLike[str]) -> FileMetadata:
    """`read_metadata` on a file's bytes (OSError when the file cannot be read)."""
    return read_metadata(Path(path).read_bytes(), os.fspath(path))


def read_metadata(data: bytes, name: str) -> FileMetadata:
    """Read a file's metadata the way exiftool would; never raises (errors go in md['errors'])."""
    try:
        return _Reader(data, name).run()
    except Exception as exc:  # noqa: BLE001 - a reader bug must not lose the image
        error = f"corrupt image file: metadata unreadable ({type(exc).__name__})"
        ftype = detect(data[:65536], name)
        md: dict[str, Any] = {"FileTypeExtension": ftype.extension, "MIMEType": ftype.mime,
                              "Make": UNKNOWN, "SerialNumber": UNKNOWN,
                              "Hash": hashlib.md5(data).hexdigest(), "ImageBytes": len(data),
                              "errors": [error]}
        return FileMetadata(md, [error], False)


class _Reader:
    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.name = name
        self.tags: list[Tag] = []
        self.notes: list[str] = []
        self.errors: list[str] = []
        self.width: int | None = None
        self.height: int | None = None
        self.exif = ExifResult()
        self.comment: bytes | None = None

    def run(self) -> FileMetadata:
        ftype = detect(self.data, self.name)
        self._file_tags(ftype)
        if not self.data:
            self.errors.append("corrupt image file: the file is empty")
        elif ftype.is_jpeg:
            self._jpeg()
        elif ftype.is_png:
            self._png()
        else:
            self.errors.append(f"corrupt image file: not a JPEG or PNG ({ftype.mime})")
        is_image = (ftype.is_jpeg or ftype.is_png) and bool(self.width) and bool(self.height)
        if (ftype.is_jpeg or ftype.is_png) and not is_image:
            self.errors.append(f"corrupt image file: {ftype.name} image size unreadable")
        if is_image:
            self.tags.append(Tag("Composite", "ImageSize", f"{self.width}x{self.height}"))
            self.tags.append(Tag("Composite", "Megapixels", _megapixels(self.width or 0, self.height or 0)))
        md = self._flatten()
        self._normalise(md, ftype)
        problems = self.errors + self.notes
        return FileMetadata(md, problems, is_image)

    # -- reading --------------------------------------------------------------------------------

    def _file_tags(self, ftype: FileType) -> None:
        self.tags.append(Tag("File", "FileSize", _file_size(len(self.data))))
        if ftype.from_content:
            self.tags += [Tag("File", "FileType", ftype.name),
                          Tag("File", "FileTypeExtension", ftype.extension),
                          Tag("File", "MIMEType", ftype.mime)]

    def _jpeg(self) -> None:
        info = parse_jpeg(self.data)
        self.width, self.height = info.width, info.height
        self.notes += info.problems
        self.comment = info.comment
        segment_tags = [Tag(g, n, v) for g, n, v in info.tags]
        self.tags += [Tag(g, n, v) for g, n, v in info.file_tags]
        if info.comment is not None:
            self.tags.append(Tag("File", "Comment", text.printable(info.comment)))
        at = 0
        for block in info.blocks:  # each block's tags where its segment sits
            self.tags += segment_tags[at:block.position]
            at = block.position
            if block.kind == "exif":
                self.tags += self._exif(block.payload, block.offset)
            else:
                xmp_tags, problems = read_xmp(block.payload)
                self.tags += xmp_tags
                self.notes += problems
        self.tags += segment_tags[at:]
        if info.has_mpf:
            self.notes.append("JPEG with an MPF second image (Pillow says MPO, exiftool says JPEG)")

    def _png(self) -> None:
        info = parse_png(self.data)
        self.width, self.height = info.width, info.height
        self.notes += info.problems
        exif_tags = self._exif(info.exif, info.exif_offset) if info.exif is not None else []
        self.tags += [Tag(g, n, v) for g, n, v in info.tags] + exif_tags

    def _exif(self, payload: bytes, base: int) -> list[Tag]:
        """One EXIF block: its byte order (File group), its tags, then its maker note's tags. Later
        blocks add to what `self.exif` (GPS, maker note, Make, UserComment) holds, as exiftool's
        later duplicates win."""
        block = read_exif(payload, base)
        self.notes += block.problems
        tags: list[Tag] = []
        order = {"II": "Little-endian (Intel, II)", "MM": "Big-endian (Motorola, MM)"}
        if block.byte_order:
            tags.append(Tag("File", "ExifByteOrder", order[block.byte_order]))
            self.exif.byte_order = block.byte_order
        tags += block.tags
        self.exif.make = block.make or self.exif.make
        self.exif.gps.update(block.gps)
        if block.user_comment is not None:
            self.exif.user_comment = block.user_comment
        note = block.maker_note
        if note is not None:
            self.exif.maker_note = note
            layout, decoded = makernotes.decode_maker_note(note, self.exif.make)
            tags += [Tag("MakerNotes", name, value) for name, value in decoded]
            if layout is None:
                unknown = makernotes.unknown_note_tag(note)
                if unknown:
                    tags.append(Tag("EXIF", *unknown))
        return tags

    # -- the record -----------------------------------------------------------------------------

    def _flatten(self) -> dict[str, Any]:
        """What the Node ingest made of `exiftool -json -G`: the tags exiftool prints, in its
        order, group prefixes stripped, the first non-empty value per name."""
        md: dict[str, Any] = {}
        budget = MAX_MD_TEXT
        for tag in exiftool_json_view(self.tags):
            if tag.name in md or tag.value is None or tag.value == "" or tag.value == []:
                continue
            value = tag.value
            budget -= sum(len(v) for v in value) if isinstance(value, list) else len(str(value))
            if budget < 0:
                self.notes.append(f"metadata over {MAX_MD_TEXT} characters: later tags left out")
                break
            if isinstance(value, list):
                md[tag.name] = [text.json_scalar(v) for v in value]
            elif isinstance(value, str):
                md[tag.name] = value if tag.name == "SerialNumber" else text.json_scalar(value)
            else:
                md[tag.name] = value
        return md

    def _normalise(self, md: dict[str, Any], ftype: FileType) -> None:
        md["FileTypeExtension"] = ftype.extension
        md["MIMEType"] = ftype.mime
        for key in ("ImageWidth", "ImageHeight"):
            md.pop(key, None)
        if self.width is not None and self.height is not None:
            md["ImageWidth"], md["ImageHeight"] = self.width, self.height
        if "Make" not in md:
            md["Make"] = UNKNOWN
            self.notes.append("no Make")
        self._serial(md)
        self._date(md)
        self._gps(md)
        md["Hash"] = hashlib.md5(self.data).hexdigest()
        md["ImageBytes"] = len(self.data)
        md["errors"] = list(self.errors)
        if len(self.data) >= api_rules.MAX_IMAGE_BYTES:
            self.notes.append(f"{len(self.data)} bytes (animl-api: {api_rules.TOO_LARGE!r})")

    def _serial(self, md: dict[str, Any]) -> None:
        serial = md.get("SerialNumber")
        if serial is not None and str(serial).strip():
            md["SerialNumber"] = str(serial)
            return
        if serial is not None:
            self.notes.append(f"SerialNumber {serial!r} is blank: sent as 'unknown'")
        md["SerialNumber"] = UNKNOWN
        self.notes.append(f"no SerialNumber (animl-api: {api_rules.UNKNOWN_SERIAL!r})")
        hints = makernotes.serial_hints(self.exif.maker_note, self.comment, self.exif.user_comment)
        for hint in hints:
            self.notes.append(f"serial {hint.serial!r} found in {hint.source}; exiftool reports none")
        if hints:
            md["SerialNumberHint"] = hints[0].serial
            md["SerialNumberHintSource"] = hints[0].source

    def _date(self, md: dict[str, Any]) -> None:
        raw = md.pop("DateTimeOriginal", None)
        iso = iso_date(raw)
        if iso:
            md["DateTimeOriginal"] = iso
        elif raw is None:
            self.notes.append(f"no DateTimeOriginal (animl-api: {api_rules.UNKNOWN_DATE!r})")
        else:
            self.notes.append(f"DateTimeOriginal {raw!r} is not a date: left out")

    def _gps(self, md: dict[str, Any]) -> None:
        for key in ("GPSLatitude", "GPSLongitude", "GPSAltitude"):
            md.pop(key, None)
        if not self.exif.gps:
            return
        pos = gps_position(self.exif.gps)
        self.notes += pos.problems
        for key, value in (("GPSLatitude", pos.latitude), ("GPSLongitude", pos.longitude),
                           ("GPSAltitude", pos.altitude)):
            if value is not None:
                md[key] = value


_DUPLICATE_KEY = re.compile(r"(.*?) ?\(\d+\)\Z")


def exiftool_json_view(tags: list[Tag]) -> list[Tag]:
    """The tags `exiftool -json -G` prints, in its order, from the tags in the order found.

    exiftool 12.57 (FoundTag, GetTagList, the JSON writer), as measured on files whose segments
    disagree (docs/metadata.md): a duplicate name replaces the value held under the plain name when
    its priority is at least that value's (a missing or 0 priority counts as 1), and otherwise
    takes the next "Name (n)" key. Output is sorted by family-0 group, groups in the order their
    first tag was found, tags in found order; a "Name (n)" key is left out when the plain name's
    value is in the same group, and each Group:Name is printed once.
    """
    slot: dict[str, int] = {}        # tag key -> index in tags
    priority: dict[str, int] = {}
    dupes: dict[str, int] = {}
    for i, tag in enumerate(tags):
        key = tag.name
        if key in slot:
            dupes[key] = dupes.get(key, 0) + 1
            next_key = f"{key} ({dupes[key]})"
            if tag.priority >= (priority.get(key) or 1):
                slot[next_key] = slot[key]
                if key in priority:
                    priority[next_key] = priority[key]
            else:
                key = next_key
            priority[key] = tag.priority
        elif tag.priority:
            priority[key] = tag.priority
        slot[key] = i
    group_rank: dict[str, int] = {}
    for tag in tags:
        group_rank.setdefault(tag.group, len(group_rank))
    printed: list[Tag] = []
    seen: set[tuple[str, str]] = set()
    for key, i in sorted(slot.items(), key=lambda kv: (group_rank[tags[kv[1]].group], kv[1])):
        tag = tags[i]
        dup = _DUPLICATE_KEY.match(key)
        if dup and dup.group(1) in slot and tags[slot[dup.group(1)]].group == tag.group:
            continue
        if (tag.group, tag.name) in seen:
            continue
        seen.add((tag.group, tag.name))
        printed.append(tag)
    return printed


def iso_date(value: Any) -> str | None:
    """exiftool's `YYYY:MM:DD HH:MM:SS` as `YYYY-MM-DDTHH:MM:SS.000Z` (the camera's wall clock
    written as UTC); None for a zero or impossible date."""
    if not isinstance(value, str):
        return None
    match = _DATE.match(value)
    if not match:
        return None
    try:
        y, mo, d, h, mi, s = (int(g) for g in match.groups())
        when = datetime(y, mo, d, h, mi, s)
    except ValueError:
        return None
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _file_size(size: int) -> str:
    """exiftool's ConvertFileSize (decimal units)."""
    if size < 2000:
        return f"{size} bytes"
    if size < 10_000:
        return f"{size / 1000:.1f} kB"
    if size < 2_000_000:
        return f"{size / 1000:.0f} kB"
    if size < 10_000_000:
        return f"{size / 1_000_000:.1f} MB"
    if size < 2_000_000_000:
        return f"{size / 1_000_000:.0f} MB"
    return f"{size / 1_000_000_000:.1f} GB"


def _megapixels(width: int, height: int) -> str:
    mp = width * height / 1_000_000
    return f"{mp:.{1 if mp >= 1 else (3 if mp >= 0.001 else 6)}f}"
