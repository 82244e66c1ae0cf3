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
- a truncated JPEG whose header is intact is accepted (the Node ingest did so after animl-ingest#65,
  with sharp's failOn: none). Pillow does that only under the process-wide
  `ImageFile.LOAD_TRUNCATED_IMAGES`, by handing libjpeg an EOI marker at the premature end of data.
  This module does the same locally instead: the reader gives one EOI marker at end of file, so no
  global is touched and other decodes in the process keep their strictness.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, JpegImagePlugin, PngImagePlugin

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


class _EoiAtEnd(io.BytesIO):
    """The image bytes, then (once armed) a single JPEG EOI marker at end of file, which lets libjpeg
    finish a truncated scan (the missing rows come out grey) instead of failing."""

    armed = False
    _ended = False

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        if not chunk and self.armed and not self._ended and size != 0:
            self._ended = True
            return _JPEG_EOI
        return chunk


def _return_large_frees(threshold: int = 8 << 20) -> None:
    """glibc serves a large allocation with mmap and returns it on free, but after the first such
    free it raises that threshold (up to 32 MB), so later decode buffers (Pillow allocates 16 MB
    blocks) come from per-thread heaps that keep the memory once it is freed: four worker threads
    then hold four decoded images between them (measured: 690 MB for three 64-megapixel PNGs at
    --concurrency 4, 390 MB with the threshold fixed). Fixing the threshold keeps them mmapped.
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
    img, reader, info = _open(data)
    size = (info.width, info.height)
    medium_size, small_size = fit(size, MEDIUM_BOX), fit(size, SMALL_BOX)
    try:
        if info.format == "JPEG":
            if medium_size != size:
                img.draft("RGB", medium_size)  # decode at 1/2, 1/4 or 1/8 scale, still >= medium
            reader.armed = not data.endswith(_JPEG_EOI)
        with _decoding.hold(img.size[0] * img.size[1]):  # the size draft mode decodes at
            img.load()
            work, icc = _working_copy(img, info.format)
            medium = work if work.size == medium_size else work.resize(medium_size, RESAMPLE,
                                                                       reducing_gap=REDUCING_GAP)
            small = medium if medium.size == small_size else medium.resize(small_size, RESAMPLE,
                                                                           reducing_gap=REDUCING_GAP)
            return (_encode(medium, info.format, icc, info.content_type),
                    _encode(small, info.format, icc, info.content_type))
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - a decoder failure on hostile data is "corrupt"
        raise _corrupt(exc) from None
    finally:
        img.close()
