"""JPEG segments read straight from the bytes: frame size, JFIF, EXIF and XMP blocks, comment.

The size comes from the SOF segment, which sits before the scan data, so a file cut off in its
scan data still has a size, and nothing is ever decoded. Scanning stops at the first SOS marker.

As exiftool 12.57 does (docs/metadata.md): every APP1 EXIF segment is a block of its own (the
header is `Exif\0` in any case, after at most 4 bytes of garbage), except that an APP1 `Exif\0\0`
segment right after another one and not starting with a TIFF header continues it (multi-segment
EXIF); every XMP APP1 segment is a block too (also after a non-standard header, as exiftool reads
it). exiftool reads one segment ahead: a file cut off before its scan loses the segment it is cut
in and the one before, and exiftool reports only "JPEG format error".
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

# SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC), as exiftool reads them.
_SOF_MARKERS = frozenset(m for m in range(0xC0, 0xD0) if m == 0xC0 or m & 0x03)
MAX_SEGMENTS = 10_000  # real files have a few dozen before the scan; more is hostile or garbage
MAX_BLOCK_BYTES = 1024 * 1024  # a multi-segment EXIF block is not joined past this (exif.MAX_EXIF_BYTES)
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


XMP_APP1_HEADER = b"http://ns.adobe.com/xap/1.0/\0"
_XMP_EXTENSION_HEADER = b"http://ns.adobe.com/xmp/extension/\0"  # extended XMP: not read
_EXIF_HEADER = re.compile(rb"(.{0,4})Exif\0", re.S | re.I)
_TIFF_HEADERS = (b"MM\0*", b"II*\0")


@dataclass
class Block:
    """An EXIF (TIFF) or XMP payload, in segment order; its tags belong at `position` in `tags`."""

    kind: str        # "exif" or "xmp"
    payload: bytes
    offset: int      # where the payload starts in the file
    position: int


@dataclass
class JpegInfo:
    """What the marker walk found. `file_tags` (frame header) are printed first, as exiftool does;
    `tags` (JFIF...) are in segment order, and each block's tags belong at its `position` in them."""

    width: int | None = None
    height: int | None = None
    blocks: list[Block] = field(default_factory=list)
    comment: bytes | None = None     # first COM segment, trailing NULs removed
    has_mpf: bool = False
    file_tags: list[tuple[str, str, str | int]] = field(default_factory=list)
    tags: list[tuple[str, str, str | int]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def parse_jpeg(data: bytes) -> JpegInfo:
    """Walk the markers up to the scan data. As exiftool does, a segment is used only once the
    segment after it (or SOS, or EOI) has been read whole: exiftool looks one segment ahead, so a
    file cut off anywhere before its scan loses the segment before the cut too."""
    info = JpegInfo()
    pos, end = 2, len(data)
    state = _State()
    pending: tuple[int, bytes, int] | None = None  # read, waiting for the next segment
    for _ in range(MAX_SEGMENTS):
        if pos >= end:
            info.problems.append("JPEG format error: the file ends before the scan data")
            break
        if data[pos] != 0xFF:
            info.problems.append(f"JPEG format error at byte {pos}")
            break
        marker_at = pos
        pos = _FILL.match(data, pos).end()  # type: ignore[union-attr]  # 0xFF fill bytes
        if pos >= end:
            info.problems.append("JPEG format error: the file ends before the scan data")
            break
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE or marker == 0xD8:
            continue
        if marker == 0xD9:  # EOI before any scan
            if pending:
                _use(info, state, *pending)
            pending = None
            break
        if pos + 2 > end:
            info.problems.append("JPEG format error: the file ends in a segment header")
            break
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2:
            info.problems.append(f"JPEG format error: bad segment length at byte {marker_at}")
            break
        seg_start = pos + 2
        if pos + length > end:
            info.problems.append(f"JPEG format error: segment 0x{marker:02X} truncated "
                                 f"({end - seg_start} of {length - 2} bytes)")
            break
        seg = data[seg_start:pos + length]
        pos += length
        if pending:
            _use(info, state, *pending)
        pending = None
        if marker == 0xDA:  # SOS: entropy-coded data follows, nothing more to read
            break
        pending = (marker, seg, seg_start)
    else:
        info.problems.append(f"JPEG with more than {MAX_SEGMENTS} segments before the scan data")
        if pending:
            _use(info, state, *pending)
        pending = None
    if pending:
        info.problems.append(f"JPEG segment 0x{pending[0]:02X} before the cut not used (as exiftool)")
    if not state.sof_seen:
        info.problems.append("no JPEG frame header (SOF) before the scan data")
    return info


@dataclass
class _State:
    sof_seen: bool = False
    continues_exif: bool = False  # the previous segment was an APP1 EXIF block a next one may continue


def _use(info: JpegInfo, state: _State, marker: int, seg: bytes, seg_start: int) -> None:
    was_exif, state.continues_exif = state.continues_exif, False
    if marker in _SOF_MARKERS:
        if not state.sof_seen:
            state.sof_seen = _read_sof(info, marker, seg)
    elif marker == 0xE0 and seg.startswith(b"JFIF\0") and not any(g == "JFIF" for g, _, _ in info.tags):
        _read_jfif(info, seg)
    elif marker == 0xE1:
        state.continues_exif = _read_app1(info, seg, seg_start, was_exif)
    elif marker == 0xE2 and seg.startswith(b"MPF\0"):
        info.has_mpf = True
    elif marker == 0xFE and info.comment is None:
        info.comment = seg.rstrip(b"\0")


def _read_app1(info: JpegInfo, seg: bytes, seg_start: int, was_exif: bool) -> bool:
    """An APP1 segment: EXIF, the rest of a multi-segment EXIF block, or XMP. True for EXIF."""
    if was_exif and seg.startswith(b"Exif\0\0") and seg[6:10] not in _TIFF_HEADERS:
        last = info.blocks[-1]
        if len(last.payload) <= MAX_BLOCK_BYTES:  # beyond that the block is refused anyway
            last.payload += seg[6:]
        if "multi-segment EXIF" not in " ".join(info.problems):
            info.problems.append("JPEG with multi-segment EXIF (read as one block, as exiftool does)")
        return True
    header = _EXIF_HEADER.match(seg)
    if header:
        skip = len(header.group(0)) + 1
        if header.group(1):
            info.problems.append("unknown garbage at the start of an EXIF segment")
        info.blocks.append(Block("exif", seg[skip:], seg_start + skip, len(info.tags)))
        return True
    if seg.startswith(XMP_APP1_HEADER):
        info.blocks.append(Block("xmp", seg[len(XMP_APP1_HEADER):], seg_start + len(XMP_APP1_HEADER),
                                 len(info.tags)))
    elif not seg.startswith(_XMP_EXTENSION_HEADER) and (
            seg.startswith((b"http", b"XMP\0")) or b"<exif:" in seg or b"<?xpacket" in seg):
        start = max(seg.find(b"<"), 0)  # exiftool reads these too, with a warning
        info.problems.append("non-standard header for an APP1 XMP segment")
        info.blocks.append(Block("xmp", seg[start:], seg_start + start, len(info.tags)))
    return False


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
