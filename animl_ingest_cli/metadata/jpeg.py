"""JPEG segments read straight from the bytes: frame size, JFIF, EXIF payload, comment.

The size comes from the SOF segment, which sits before the scan data, so a file cut off in its
scan data still has a size, and nothing is ever decoded. Scanning stops at the first SOS marker.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

# SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC), as exiftool reads them.
_SOF_MARKERS = frozenset(m for m in range(0xC0, 0xD0) if m == 0xC0 or m & 0x03)
MAX_SEGMENTS = 10_000  # real files have a few dozen before the scan; more is hostile or garbage
_FILL = re.compile(rb"\xff+")
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])  # TEM, RST0-7 carry no length

ENCODING_PROCESS = {
    0x0: "Baseline DCT, Huffman coding",
    0x1: "Extended sequential DCT, Huffman coding",
    0x2: "Progressive DCT, Huffman coding",
    0x3: "Lossless, Huffman coding",
    0x5: "Sequential DCT, differential Huffman coding",
    0x6: "Progressive DCT, differential Huffman coding",
    0x7: "Lossless, Differential Huffman coding",
    0x9: "Extended sequential DCT, arithmetic coding",
    0xA: "Progressive DCT, arithmetic coding",
    0xB: "Lossless, arithmetic coding",
    0xD: "Sequential DCT, differential arithmetic coding",
    0xE: "Progressive DCT, differential arithmetic coding",
    0xF: "Lossless, differential arithmetic coding",
}

YCBCR_SUBSAMPLING = {
    "1 1": "YCbCr4:4:4 (1 1)", "2 1": "YCbCr4:2:2 (2 1)", "2 2": "YCbCr4:2:0 (2 2)",
    "4 1": "YCbCr4:1:1 (4 1)", "4 2": "YCbCr4:1:0 (4 2)", "1 2": "YCbCr4:4:0 (1 2)",
    "1 4": "YCbCr4:4:1 (1 4)", "2 4": "YCbCr4:2:1 (2 4)",
}

_JFIF_UNITS = {0: "None", 1: "inches", 2: "cm"}


@dataclass
class JpegInfo:
    """What the marker walk found. `file_tags` (frame header) are printed first, as exiftool does;
    `tags` (JFIF...) are in segment order, and the EXIF group belongs at `exif_position` in them."""

    width: int | None = None
    height: int | None = None
    exif: bytes | None = None        # TIFF payload of the first APP1 Exif segment
    exif_offset: int = 0             # where that payload starts in the file
    comment: bytes | None = None     # first COM segment, trailing NULs removed
    has_mpf: bool = False
    file_tags: list[tuple[str, str, str | int]] = field(default_factory=list)
    tags: list[tuple[str, str, str | int]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    exif_position: int = 0           # index in `tags` where the EXIF group belongs (segment order)


def parse_jpeg(data: bytes) -> JpegInfo:
    info = JpegInfo()
    pos, end = 2, len(data)
    sof_seen = False
    for _ in range(MAX_SEGMENTS):
        if pos >= end:
            break
        if data[pos] != 0xFF:
            info.problems.append(f"JPEG format error at byte {pos}")
            break
        marker_at = pos
        pos = _FILL.match(data, pos).end()  # type: ignore[union-attr]  # 0xFF fill bytes
        if pos >= end:
            break
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE or marker == 0xD8:
            continue
        if marker == 0xD9:  # EOI before any scan
            break
        if pos + 2 > end:
            info.problems.append("JPEG truncated in a segment header")
            break
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2:
            info.problems.append(f"JPEG format error: bad segment length at byte {marker_at}")
            break
        seg_start = pos + 2
        seg = data[seg_start:pos + length]
        if pos + length > end:
            info.problems.append(f"JPEG segment 0x{marker:02X} truncated ({len(seg)} of {length - 2} bytes)")
        pos += length
        if marker in _SOF_MARKERS:
            if not sof_seen:
                sof_seen = _read_sof(info, marker, seg)
        elif marker == 0xDA:  # SOS: entropy-coded data follows, nothing more to read
            break
        elif marker == 0xE0 and seg.startswith(b"JFIF\0") and not any(g == "JFIF" for g, _, _ in info.tags):
            _read_jfif(info, seg)
        elif marker == 0xE1 and info.exif is None and seg[:5] == b"Exif\0" and len(seg) >= 6:
            info.exif = seg[6:]
            info.exif_offset = seg_start + 6
            info.exif_position = len(info.tags)
        elif marker == 0xE2 and seg.startswith(b"MPF\0"):
            info.has_mpf = True
        elif marker == 0xFE and info.comment is None:
            info.comment = seg.rstrip(b"\0")
    else:
        info.problems.append(f"JPEG with more than {MAX_SEGMENTS} segments before the scan data")
    if not sof_seen:
        info.problems.append("no JPEG frame header (SOF) before the scan data")
    return info


def _read_sof(info: JpegInfo, marker: int, seg: bytes) -> bool:
    if len(seg) < 6:
        return False
    bits, height, width, ncomp = struct.unpack_from(">BHHB", seg)
    info.width, info.height = width, height
    file_tags: list[tuple[str, str, str | int]] = [
        ("File", "ImageWidth", width), ("File", "ImageHeight", height),
        ("File", "EncodingProcess", ENCODING_PROCESS[marker - 0xC0]),
        ("File", "BitsPerSample", bits), ("File", "ColorComponents", ncomp)]
    if ncomp == 3 and len(seg) >= 15:
        factors = [seg[7 + 3 * i] for i in range(3)]
        hs = [f >> 4 for f in factors]
        vs = [f & 0x0F for f in factors]
        if min(hs) and min(vs):
            key = f"{_perl_num(max(hs) / min(hs))} {_perl_num(max(vs) / min(vs))}"
            file_tags.append(("File", "YCbCrSubSampling", YCBCR_SUBSAMPLING.get(key, key)))
    info.file_tags = file_tags
    return True


def _read_jfif(info: JpegInfo, seg: bytes) -> None:
    if len(seg) < 12:
        return
    major, minor, units, xres, yres = struct.unpack_from(">BBBHH", seg, 5)
    info.tags += [("JFIF", "JFIFVersion", f"{major}.{minor:02d}"),
                  ("JFIF", "ResolutionUnit", _JFIF_UNITS.get(units, f"Unknown ({units})")),
                  ("JFIF", "XResolution", xres), ("JFIF", "YResolution", yres)]


def _perl_num(x: float) -> str:
    """Perl prints 2.0 as 2 and 1.5 as 1.5."""
    return str(int(x)) if x == int(x) else f"{x:.15g}"
