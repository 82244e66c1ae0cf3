"""PNG chunks read straight from the bytes: the IHDR size and the eXIf payload."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_COLOR_TYPES = {0: "Grayscale", 2: "RGB", 3: "Palette", 4: "Grayscale with Alpha", 6: "RGB with Alpha"}
_INTERLACE = {0: "Noninterlaced", 1: "Adam7 Interlace"}
MAX_CHUNKS = 100_000  # a hostile file of empty chunks must not keep us busy


@dataclass
class PngInfo:
    width: int | None = None
    height: int | None = None
    exif: bytes | None = None
    exif_offset: int = 0
    tags: list[tuple[str, str, str | int]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def parse_png(data: bytes) -> PngInfo:
    info = PngInfo()
    pos, end = len(PNG_SIGNATURE), len(data)
    for count in range(MAX_CHUNKS):
        if pos + 8 > end:
            info.problems.append("PNG truncated: no IEND chunk")
            break
        length, ctype = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8:pos + 8 + length]
        if len(body) < length:
            info.problems.append(f"PNG chunk {ctype!r} truncated")
        if count == 0 and ctype != b"IHDR":
            info.problems.append("PNG does not start with an IHDR chunk")
            break
        if ctype == b"IHDR" and len(body) >= 13 and info.width is None:
            _read_ihdr(info, body)
        elif ctype == b"eXIf" and info.exif is None:
            skip = 6 if body.startswith(b"Exif\0\0") else 0
            info.exif, info.exif_offset = body[skip:], pos + 8 + skip
        elif ctype == b"IEND":
            break
        pos += 12 + length
    return info


def _read_ihdr(info: PngInfo, body: bytes) -> None:
    width, height, depth, color, compression, filt, interlace = struct.unpack_from(">IIBBBBB", body)
    info.width, info.height = width, height
    info.tags += [
        ("PNG", "ImageWidth", width), ("PNG", "ImageHeight", height), ("PNG", "BitDepth", depth),
        ("PNG", "ColorType", _COLOR_TYPES.get(color, f"Unknown ({color})")),
        ("PNG", "Compression", "Deflate/Inflate" if compression == 0 else f"Unknown ({compression})"),
        ("PNG", "Filter", "Adaptive" if filt == 0 else f"Unknown ({filt})"),
        ("PNG", "Interlace", _INTERLACE.get(interlace, f"Unknown ({interlace})")),
    ]
