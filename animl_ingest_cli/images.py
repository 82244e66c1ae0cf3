"""Decode check and thumbnails: medium fits 940x940, small 120x120, same format, never enlarged.

Decoding is the dangerous part of ingest (untrusted bytes from cameras and zips), so:
- only JPEG and PNG are opened, through their Pillow plugin classes directly: that reads the header
  without Pillow's global decompression-bomb check, and this module applies its own, stricter limit
  (MAX_PIXELS) before a single pixel is decoded;
- a JPEG is decoded with draft mode (libjpeg's DCT scaling) at the smallest scale that still covers
  the medium thumbnail, so a 12 MP photo never becomes 36 MB of RGB; small is derived from medium;
- a PNG has no such mode: decoded, it takes 4 bytes a pixel. So the threads of one process share a
  budget of MAX_PIXELS decoded pixels (one largest image, about 256 MB): an image waits until its
  pixels fit, and four 64-megapixel PNGs arriving together are decoded one after the other. And
  what is freed must go back to the system (see `_return_large_frees`), or each worker thread keeps
  the memory of the largest image it ever decoded;
- decode WORK is bounded too, not only memory: a progressive JPEG may hold thousands of scans, and
  libjpeg passes over every block of the image once per scan, so 0.6 MB of nearly empty scans over
  a 64-megapixel frame take minutes of CPU (and a Lambda times out on every retry). So
  `decode_cost_error` walks the markers first and refuses more than MAX_SCANS scans, or more than
  MAX_SCAN_BLOCKS blocks decoded summed over the scans, before a pixel is decoded (the ingest calls
  it before createImage, so such a file is dead-lettered without an image record); and as a
  backstop for costs not foreseen, the JPEG decoder is fed 16 KB at a time and stopped once its
  thread has used DECODE_CPU_SECONDS of CPU (docs/metadata.md, "Decode work"). A PNG's decode work
  is bounded by its pixels;
- a truncated JPEG whose header is intact is accepted (the Node ingest did so after animl-ingest#65,
  with sharp's failOn: none). Pillow does that only under the process-wide
  `ImageFile.LOAD_TRUNCATED_IMAGES`, by handing libjpeg an EOI marker at the premature end of data.
  This module does the same locally instead: the reader gives one EOI marker at end of file, so no
  global is touched and other decodes in the process keep their strictness.
"""

from __future__ import annotations

import io
import re
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageFile, JpegImagePlugin, PngImagePlugin

from animl_ingest_cli.errors import ImageError

MEDIUM_BOX = (940, 940)
SMALL_BOX = (120, 120)
MAX_PIXELS = 64_000_000  # decompression-bomb limit
JPEG_QUALITY = 85
# Bicubic after a whole-factor reduce(): indistinguishable from Lanczos at thumbnail sizes and about a
# quarter cheaper (bench/run.py measures the whole ingest against the Node original's sharp work).
RESAMPLE = Image.Resampling.BICUBIC
REDUCING_GAP = 3.0       # reduce() by whole factors first, then resample: fast and near-exact
PNG_COMPRESS_LEVEL = 3   # zlib level for PNG thumbnails: level 6 costs a third more for ~8% fewer bytes

# Decode work: a 64-megapixel frame is 1M blocks of 8x8 pixels per full-resolution component. A
# progressive 64-MP photo with libjpeg's standard 10-scan script decodes about 8M blocks in all
# (4:2:0); 64M is eight times that. Real encoders write at most a few dozen scans.
MAX_SCANS = 1000
MAX_SCAN_BLOCKS = 64 * (MAX_PIXELS // 64)
DECODE_CPU_SECONDS = 30.0   # of the decoding thread's CPU time; the Lambda's timeout is 120 s or more
_FEED_BYTES = 16 * 1024     # the decoder is fed this much at a time, the CPU clock read between

_JPEG_SOI = b"\xff\xd8\xff"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_EOI = b"\xff\xd9"


@dataclass
class Thumbnail:
    data: bytes
    width: int
    height: int
    content_type: str


@dataclass(frozen=True)
class ImageInfo:
    """What the header says: Pillow's format name, size, mode, and the MIME type."""

    format: str
    width: int
    height: int
    mode: str
    content_type: str


class DecodeTooCostly(Exception):
    """The decoding thread used more CPU than DECODE_CPU_SECONDS."""


class _EoiAtEnd(io.BytesIO):
    """The image bytes, then (once armed) a single JPEG EOI marker at end of file, which lets libjpeg
    finish a truncated scan (the missing rows come out grey) instead of failing. Once `cpu_deadline`
    is set (a `time.thread_time()` value), reads are at most _FEED_BYTES and raise DecodeTooCostly
    past the deadline: Pillow's decoder asks for more data between chunks, so that is where it stops."""

    armed = False
    _ended = False
    cpu_deadline: float | None = None

    def read(self, size: int | None = -1) -> bytes:
        if self.cpu_deadline is not None:
            if time.thread_time() > self.cpu_deadline:
                raise DecodeTooCostly
            size = _FEED_BYTES if size is None or size < 0 else min(size, _FEED_BYTES)
        chunk = super().read(size)
        if not chunk and self.armed and not self._ended and size != 0:
            self._ended = True
            return _JPEG_EOI
        return chunk


def _return_large_frees(threshold: int = 256 << 10) -> None:
    """glibc serves a large allocation with mmap and returns it on free, but after the first such
    free it raises that threshold (up to 32 MB), so later decode buffers (Pillow allocates 16 MB
    blocks) come from per-thread heaps that keep the memory once it is freed: four worker threads
    then hold four decoded images between them (measured: 690 MB for three 64-megapixel PNGs at
    --concurrency 4, 390 MB with the threshold fixed). Fixing the threshold keeps them mmapped.
    It is fixed at 256 KB, so that an image's bytes and its decode and thumbnail buffers (a few
    hundred KB to a few MB) are mmapped too: with 32 images in flight (the pool's default) they
    fragment the heaps otherwise, and the peak grew with the number of images (measured, default
    options, 1600x1200 JPEGs: 159 MB for 60 images, 221 MB for 180; with 256 KB, 108 and 113 MB).
    Elsewhere than glibc there is no mallopt, and nothing to do."""
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_mmap_threshold = -3
    mallopt(m_mmap_threshold, threshold)


_return_large_frees()


class _PixelBudget:
    """Pixels being decoded at once across threads, at most `limit` (one image alone may use it all)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self.in_use == 0 or self.in_use + pixels <= self.limit)
            self.in_use += pixels
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= pixels
                self._cond.notify_all()


_decoding = _PixelBudget(MAX_PIXELS)


def fit(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """`size` scaled to fit inside `box`, aspect kept, never enlarged, at least 1x1."""
    w, h = size
    if w <= box[0] and h <= box[1]:
        return w, h
    scale = min(box[0] / w, box[1] / h)
    return max(1, min(box[0], round(w * scale))), max(1, min(box[1], round(h * scale)))


def _corrupt(exc: BaseException) -> ImageError:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return ImageError(f"corrupt image: {text[:200]}")


def _open(data: bytes) -> tuple[Image.Image, _EoiAtEnd, ImageInfo]:
    """Parse the header only, and refuse what is not a JPEG/PNG or has too many pixels."""
    if not data:
        raise ImageError("corrupt image: empty file")
    cls: type[ImageFile.ImageFile]
    if data.startswith(_JPEG_SOI):
        cls, fmt, ctype = JpegImagePlugin.JpegImageFile, "JPEG", "image/jpeg"
    elif data.startswith(_PNG_SIGNATURE):
        cls, fmt, ctype = PngImagePlugin.PngImageFile, "PNG", "image/png"
    else:
        raise ImageError("corrupt image: not a JPEG or PNG file")
    reader = _EoiAtEnd(data)
    try:
        img = cls(reader)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on hostile headers
        raise _corrupt(exc) from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"image too large to decode: {w}x{h} pixels (limit {MAX_PIXELS})")
    return img, reader, ImageInfo(fmt, w, h, img.mode, ctype)


_SOF_MARKERS = frozenset(m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC))
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # in entropy-coded data: a real marker


def decode_cost_error(data: bytes) -> str | None:
    """Why decoding this JPEG would cost too much CPU, as an error text (None when it would not, or
    when it is no JPEG: other checks speak for those). Walks the markers and the entropy-coded data
    between scans (a regular-expression search, no decode) and counts the scans and the 8x8 blocks
    each scan covers."""
    if not data.startswith(_JPEG_SOI):
        return None
    pos, end = 2, len(data)
    blocks: dict[int, int] = {}   # component id -> blocks in the frame
    scans = work = 0
    while pos + 4 <= end and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            break
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        seg = data[pos + 4:pos + 2 + length]
        pos += 2 + max(length, 2)
        if marker in _SOF_MARKERS and not blocks and len(seg) >= 6:
            blocks = _frame_blocks(seg)
        elif marker == 0xDA:
            scans += 1
            if scans > MAX_SCANS:
                return (f"corrupt image: too costly to decode: more than {MAX_SCANS} scans (a progressive "
                        "JPEG is decoded over the whole image once per scan)")
            count = seg[0] if seg else 0
            work += sum(blocks.get(seg[1 + 2 * i], 0) for i in range(count) if 2 + 2 * i < len(seg))
            found = _NEXT_MARKER.search(data, pos)  # over the entropy-coded data to the next marker
            if not found:
                break
            pos = found.start()
    if work > MAX_SCAN_BLOCKS:
        return (f"corrupt image: too costly to decode: its {scans} scans decode {work} blocks of 8x8 "
                f"pixels (limit {MAX_SCAN_BLOCKS})")
    return None


def _frame_blocks(sof: bytes) -> dict[int, int]:
    """8x8 blocks of each component of a frame (SOF segment body), by component id."""
    _, height, width, count = struct.unpack_from(">BHHB", sof)
    comps = [sof[6 + 3 * i:9 + 3 * i] for i in range(count) if 9 + 3 * i <= len(sof)]
    if not comps:
        return {}
    h_max = max(c[1] >> 4 for c in comps) or 1
    v_max = max(c[1] & 0x0F for c in comps) or 1
    out = {}
    for cid, factors, _ in comps:
        w = -(-width * (factors >> 4) // h_max)
        h = -(-height * (factors & 0x0F) // v_max)
        out[cid] = -(-w // 8) * -(-h // 8)
    return out


def probe(data: bytes) -> ImageInfo:
    """The image's format and size from its header (nothing decoded); ImageError when unusable."""
    return _open(data)[2]


def _working_copy(img: Image.Image, fmt: str) -> tuple[Image.Image, bytes | None]:
    """The decoded image in a mode the output format can hold and Pillow can resample, with the ICC
    profile that still describes it (a CMYK profile does not describe the RGB conversion)."""
    icc = img.info.get("icc_profile")
    mode = img.mode
    has_alpha = "A" in mode or "transparency" in img.info
    if fmt == "JPEG":
        if mode in ("L", "RGB"):
            return img, icc
        return img.convert("RGB"), None if mode == "CMYK" else icc
    if mode in ("L", "LA", "RGB", "RGBA", "I") and "transparency" not in img.info:
        return img, icc
    if mode == "1":
        return img.convert("L"), icc
    if mode.startswith("I;16"):
        return img.convert("I"), icc
    if mode in ("L", "LA"):
        return img.convert("LA"), icc
    return img.convert("RGBA" if has_alpha else "RGB"), icc


def _encode(img: Image.Image, fmt: str, icc: bytes | None, content_type: str) -> Thumbnail:
    out = io.BytesIO()
    options: dict[str, object] = {"icc_profile": icc} if icc else {}
    if fmt == "JPEG":
        img.save(out, "JPEG", quality=JPEG_QUALITY, **options)
    else:  # Pillow resamples 16-bit grey as I but writes PNG from I;16 only
        (img.convert("I;16") if img.mode == "I" else img).save(out, "PNG", compress_level=PNG_COMPRESS_LEVEL,
                                                            **options)
    return Thumbnail(out.getvalue(), img.width, img.height, content_type)


def make_thumbnails(data: bytes) -> tuple[Thumbnail, Thumbnail]:
    """(medium, small) thumbnails of a JPEG or PNG, in the source's format. Raises ImageError."""
    too_costly = decode_cost_error(data)
    if too_costly:
        raise ImageError(too_costly)
    img, reader, info = _open(data)
    size = (info.width, info.height)
    medium_size, small_size = fit(size, MEDIUM_BOX), fit(size, SMALL_BOX)
    try:
        if info.format == "JPEG":
            if medium_size != size:
                img.draft("RGB", medium_size)  # decode at 1/2, 1/4 or 1/8 scale, still >= medium
            reader.armed = not data.endswith(_JPEG_EOI)
        with _decoding.hold(img.size[0] * img.size[1]):  # the size draft mode decodes at
            if info.format == "JPEG":  # (PNG work is bounded by its pixels; its reader wants whole reads)
                reader.cpu_deadline = time.thread_time() + DECODE_CPU_SECONDS
            img.load()
            reader.cpu_deadline = None
            work, icc = _working_copy(img, info.format)
            medium = work if work.size == medium_size else work.resize(medium_size, RESAMPLE,
                                                                       reducing_gap=REDUCING_GAP)
            small = medium if medium.size == small_size else medium.resize(small_size, RESAMPLE,
                                                                           reducing_gap=REDUCING_GAP)
            return (_encode(medium, info.format, icc, info.content_type),
                    _encode(small, info.format, icc, info.content_type))
    except MemoryError:
        raise
    except DecodeTooCostly:
        raise ImageError(f"corrupt image: decoding took more than {DECODE_CPU_SECONDS:g} s of CPU") from None
    except Exception as exc:  # noqa: BLE001 - a decoder failure on hostile data is "corrupt"
        raise _corrupt(exc) from None
    finally:
        img.close()
