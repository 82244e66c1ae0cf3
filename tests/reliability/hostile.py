"""Hostile files, made on the spot: zips that escape or lie, pixel bombs, broken and disguised files,
malformed and oversized EXIF. Small on disk, large where it hurts.

Deflate streams of zeros are built from one compressed chunk repeated: after a full flush a deflate
compressor's output is byte-aligned and refers to nothing before it, so the chunk's bytes can be
repeated as many times as wanted and closed with a final empty block. A gibibyte of zeros then
costs a millisecond to "compress" instead of seconds.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib
from dataclasses import dataclass

import piexif

from tests.reliability.conftest import jpeg

MIB = 1 << 20


def _deflate_blocks(chunk: bytes, times: int) -> bytes:
    """Raw deflate blocks of `chunk` repeated `times` times, not yet closed by a final block."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)) * times


_FINAL_BLOCK = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)


def _repeated_deflate(chunk: bytes, times: int) -> bytes:
    """A raw deflate stream of `chunk` repeated `times` times."""
    return _deflate_blocks(chunk, times) + _FINAL_BLOCK


def _gf2_times(matrix: list[int], vector: int) -> int:
    out, i = 0, 0
    while vector:
        if vector & 1:
            out ^= matrix[i]
        vector >>= 1
        i += 1
    return out


def crc32_of_zeros(n: int) -> int:
    """zlib.crc32(bytes(n)) without reading n bytes: zlib's crc32_combine, the CRC register pushed
    through n zero bytes by squaring the one-zero-bit operator (GF(2) matrices)."""
    odd = [0xEDB88320] + [1 << i for i in range(31)]  # one zero bit
    even = [_gf2_times(odd, v) for v in odd]           # two zero bits
    odd = [_gf2_times(even, v) for v in even]          # four zero bits
    crc = 0xFFFFFFFF  # the register before any byte; its inverse is the CRC of nothing
    while n:
        even = [_gf2_times(odd, v) for v in odd]  # one zero byte first, then 2, 4, 8... bytes
        if n & 1:
            crc = _gf2_times(even, crc)
        n >>= 1
        if not n:
            break
        odd = [_gf2_times(even, v) for v in even]
        if n & 1:
            crc = _gf2_times(odd, crc)
        n >>= 1
    return crc ^ 0xFFFFFFFF


@dataclass
class RawEntry:
    """A zip entry written as given: its deflate stream and what the headers claim."""

    name: str
    deflated: bytes
    crc: int
    size: int  # the uncompressed size the headers declare


def raw_zip(entries: list[RawEntry]) -> bytes:
    """A zip (no zip64: every size under 4 GiB) whose headers say exactly what the entries claim."""
    out, central = io.BytesIO(), io.BytesIO()
    for e in entries:
        offset = out.tell()
        name = e.name.encode()
        fields = (20, 0, 8, 0, 0x21, e.crc, len(e.deflated), e.size, len(name), 0)
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields) + name + e.deflated)
        central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, *fields, 0, 0, 0, 0, offset)
                      + name)
    cd = central.getvalue()
    start = out.tell()
    out.write(cd + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(cd), start, 0))
    return out.getvalue()


def bomb_zip(name: str = "site/bomb.jpg", gib: int = 1, lie: bool = False) -> bytes:
    """A zip whose one entry inflates to `gib` GiB of zeros; with `lie`, the headers claim 4 KB."""
    size = gib << 30
    stream = _repeated_deflate(bytes(MIB), size // MIB)
    return raw_zip([RawEntry(name, stream, crc32_of_zeros(size), 4096 if lie else size)])


def escaping_zip(good: bytes) -> bytes:
    """Entries that escape the zip's folder, absolute paths, a symlink, a Windows drive path, and
    one good image, so the zip is not refused whole."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("cam/good.jpg", good)
        z.writestr("../../escape.jpg", good)
        z.writestr("cam/../../../escape2.jpg", good)
        z.writestr("/etc/abs.jpg", good)
        z.writestr("C:\\Windows\\drive.jpg", good)
        link = zipfile.ZipInfo("cam/link.jpg")
        link.external_attr = 0o120777 << 16
        z.writestr(link, "/etc/passwd")
        z.writestr("__MACOSX/cam/._good.jpg", b"\0\5\26\7")
    return buf.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _camera_exif(n: int = 0) -> bytes:
    return piexif.dump({"0th": {piexif.ImageIFD.Make: b"TESTCAM",
                                piexif.ImageIFD.ImageDescription: f"png {n}".encode()},
                        "Exif": {piexif.ExifIFD.BodySerialNumber: b"CAM-9",
                                 piexif.ExifIFD.DateTimeOriginal: b"2024:05:06 07:08:09"}})[6:]


def png(width: int, height: int, full: bool, n: int = 0) -> bytes:
    """An RGB PNG with a camera's EXIF (so animl-api accepts it and the thumbnails are attempted):
    `full` has every row (all black: a real image to decode), else one row (a decompression bomb)."""
    row = bytes(1 + 3 * width)  # filter byte 0, then black pixels
    if full:
        per = 100 if height % 100 == 0 else 1
        adler = 1
        for _ in range(height // per):
            adler = zlib.adler32(row * per, adler)
        idat = b"\x78\xda" + _repeated_deflate(row * per, height // per) + struct.pack(">I", adler)
    else:
        idat = zlib.compress(row)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"eXIf", _camera_exif(n))
            + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real camera JPEG whose frame header (SOF0) claims `width` x `height`."""
    data = bytearray(jpeg(7))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def jpeg_with_app1(payload: bytes) -> bytes:
    """A real JPEG whose EXIF segment is replaced by `payload` (after `Exif\\0\\0`)."""
    data = jpeg(8, serial=None, date=None)
    seg = b"Exif\0\0" + payload
    app1 = b"\xff\xe1" + struct.pack(">H", len(seg) + 2) + seg
    return data[:2] + app1 + data[2:]


def exif_loop() -> bytes:
    """TIFF whose IFD0 points to itself as the next IFD, and whose one entry claims 2^32-1 values."""
    tiff = bytearray(b"II*\0" + struct.pack("<I", 8))
    tiff += struct.pack("<H", 1) + struct.pack("<HHII", 0x010F, 2, 0xFFFFFFFF, 8) + struct.pack("<I", 8)
    return bytes(tiff)


def hostile_files() -> dict[str, bytes]:
    """Name -> bytes of every hostile file that goes through `ingest` and `inspect` as a file."""
    rng = random.Random(4)
    good, big = jpeg(5), jpeg(6, size=(320, 240))
    huge_comment = piexif.dump({"0th": {piexif.ImageIFD.Make: b"X" * 30000},
                                "Exif": {piexif.ExifIFD.UserComment: b"ASCII\0\0\0" + b"y" * 30000,
                                         piexif.ExifIFD.BodySerialNumber: b"CAM-8",
                                         piexif.ExifIFD.DateTimeOriginal: b"2024:05:06 07:08:09"}})[6:]
    return {
        "empty.jpg": b"",
        "truncated header.jpg": good[:40],
        "truncated tables.JPG": good[: len(good) * 2 // 3],
        "truncated scan.jpg": big[: len(big) * 7 // 8],
        "text.jpg": b"just some notes\nnot a photo\n",
        "page.jpeg": b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
        "bomb 40000x40000.png": png(40000, 40000, full=False),
        "bomb 40000x40000.jpg": jpeg_claiming(40000, 40000),
        "zero size.jpg": jpeg_claiming(0, 0),
        "huge exif.jpg": jpeg_with_app1(huge_comment),
        "exif loop.jpg": jpeg_with_app1(exif_loop()),
        "exif garbage.jpg": jpeg_with_app1(bytes(rng.randrange(256) for _ in range(4000))),
        "exif empty.jpg": jpeg_with_app1(b""),
        "a zip named.jpg": escaping_zip(good),
        "wide+%20 ünï ☃ #?.jpg": jpeg(9),
        "%2e%2e%2fdots.jpg": jpeg(10),
    }
