"""Test images with known bytes: JPEGs written by Pillow with EXIF made by piexif (piexif is fine
for writing), and Reconyx maker notes laid out by hand from the published offsets."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import piexif
from PIL import Image


def jpeg(exif: dict[str, Any] | None = None, size: tuple[int, int] = (64, 48), comment: bytes | None = None,
         maker_note: bytes | None = None) -> bytes:
    """A small real JPEG; `exif` is a piexif dict ({"0th": {...}, "Exif": {...}, "GPS": {...}})."""
    exif = {k: dict(v) if isinstance(v, dict) else v for k, v in (exif or {}).items()}
    if maker_note is not None:
        exif.setdefault("Exif", {})[piexif.ExifIFD.MakerNote] = maker_note
    buf = io.BytesIO()
    params: dict[str, Any] = {"format": "JPEG", "quality": 80}
    if exif:
        params["exif"] = piexif.dump(exif)
    if comment is not None:
        params["comment"] = comment
    Image.new("RGB", size, (90, 120, 60)).save(buf, **params)
    return buf.getvalue()


def png(size: tuple[int, int] = (32, 24), exif_tiff: bytes | None = None) -> bytes:
    """A PNG, optionally with an eXIf chunk (raw TIFF bytes)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = b"".join(b"\0" + b"\x10\x20\x30" * size[0] for _ in range(size[1]))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size[0], size[1], 8, 2, 0, 0, 0))
    if exif_tiff is not None:
        out += chunk(b"eXIf", exif_tiff)
    return out + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def tiff_exif(exif: dict[str, Any]) -> bytes:
    """piexif's EXIF block without the APP1 'Exif\\0\\0' header."""
    return piexif.dump(exif)[6:]


def _utf16(text: str, chars: int) -> bytes:
    return text.encode("utf-16-le")[: chars * 2].ljust(chars * 2, b"\0")


def _ascii(text: bytes, size: int) -> bytes:
    return text[:size].ljust(size, b"\0")


def hyperfire_note(*, firmware: tuple[int, int, int] = (4, 1, 0), trigger: bytes = b"M",
                   sequence: tuple[int, int] = (1, 3), event: int = 559,
                   when: tuple[int, int, int, int, int, int] = (2014, 11, 23, 20, 26, 22), moon: int = 0,
                   fahrenheit: int = 67, celsius: int = 19, serial: str = "H500HH06211894",
                   battery_mv: int = 7620, label: bytes = b"AE", swap_date: bool = False) -> bytes:
    """HyperFire (HC500...): `01 f1` then the firmware major (bytes 2-3: 2, 3 or 4), then
    little-endian words at the offsets docs/metadata.md lists."""
    b = bytearray(0x56 + 22)
    struct.pack_into("<H3H", b, 0, 0xF101, *firmware)
    struct.pack_into("<2H", b, 0x08, 0x2014, 0x0506)  # firmware date 2014:05:06
    b[0x0C:0x0E] = _ascii(trigger, 2)
    struct.pack_into("<2H", b, 0x0E, *sequence)
    struct.pack_into("<2H", b, 0x12, event >> 16, event & 0xFFFF)
    y, mo, d, h, mi, s = when
    words = (s, mi, h, mo, d, y)
    fmt = ">6H" if swap_date else "<6H"
    struct.pack_into(fmt, b, 0x16, *words)
    struct.pack_into("<Hhh", b, 0x24, moon, fahrenheit, celsius)
    b[0x2A:0x48] = _utf16(serial, 15)
    struct.pack_into("<6H", b, 0x48, 160, 0, 32, 0, 1, 100)  # contrast ... motion sensitivity
    struct.pack_into("<H", b, 0x54, battery_mv)
    b[0x56:0x56 + 22] = _ascii(label, 22)
    return bytes(b)


def ultrafire_note(*, trigger: bytes = b"M", sequence: tuple[int, int] = (4, 5), event: int = 1234,
                   when: tuple[int, int, int, int, int, int] = (2016, 1, 28, 15, 14, 45), moon: int = 5,
                   fahrenheit: int = 39, celsius: int = 4, serial: bytes = b"UXR6BI02004234",
                   label: bytes = b"AM100               ", battery_mv: int = 12345) -> bytes:
    """UltraFire: `RECONYXUF\\0`, bytes and little-endian words; versions as hex digits."""
    b = bytearray(0x5A + 21)
    b[0:10] = b"RECONYXUF\0"
    b[0x18:0x1F] = struct.pack("<BBHBBc", 0x01, 0x05, 0x2015, 0x11, 0x30, b"a")
    b[0x34:0x35] = trigger
    struct.pack_into("<BBI", b, 0x35, *sequence, event)
    y, mo, d, h, mi, s = when
    struct.pack_into("<5BH", b, 0x3B, s, mi, h, d, mo, y)
    struct.pack_into("<BBhhB", b, 0x42, 4, moon, fahrenheit, celsius, 0)
    struct.pack_into("<H", b, 0x49, battery_mv)
    b[0x4B:0x5A] = _ascii(serial, 15)
    b[0x5A:0x5A + 21] = _ascii(label, 21)
    return bytes(b)


def hyperfire2_note(*, trigger: bytes = b"M", sequence: tuple[int, int] = (5, 5), event: int = 70000,
                    when: tuple[int, int, int, int, int, int] = (2018, 8, 11, 17, 45, 32), moon: int = 0,
                    fahrenheit: int = 79, celsius: int = 26, serial: str = "HLPXEL06008661",
                    label: bytes = b"CAM10") -> bytes:
    """HyperFire 2: `RECONYXH2\\0`; the date words are sec, min, hour, day, month, year."""
    b = bytearray(0x7E + 30)
    b[0:10] = b"RECONYXH2\0"
    struct.pack_into("<3H", b, 0x2A, 1, 4, ord("a"))
    b[0x34:0x36] = _ascii(trigger, 2)
    struct.pack_into("<2H2H", b, 0x36, *sequence, event >> 16, event & 0xFFFF)
    y, mo, d, h, mi, s = when
    struct.pack_into("<6H", b, 0x3E, s, mi, h, d, mo, y)
    struct.pack_into("<HHhh", b, 0x4A, 6, moon, fahrenheit, celsius)
    struct.pack_into("<H", b, 0x62, 8123)
    b[0x68:0x68 + 22] = _ascii(label, 22)
    b[0x7E:0x7E + 30] = _utf16(serial, 15)
    return bytes(b)


def microfire_note(*, serial: str = "MF12345678ABCD", label: bytes = b"TRAIL 7",
                   when: tuple[int, int, int, int, int, int] = (2022, 3, 4, 5, 6, 7), celsius: int = -3,
                   trigger: bytes = b"T", sequence: tuple[int, int] = (2, 3)) -> bytes:
    """MicroFire: `RECONYXMF\\0`; date words as HyperFire (sec, min, hour, month, day, year)."""
    b = bytearray(0x8C + 30)
    b[0:10] = b"RECONYXMF\0"
    struct.pack_into("<3H", b, 0x2A, 2, 1, ord("b"))
    b[0x44:0x46] = _ascii(trigger, 2)
    struct.pack_into("<2H", b, 0x46, *sequence)
    y, mo, d, h, mi, s = when
    struct.pack_into("<6H", b, 0x4E, s, mi, h, mo, d, y)
    struct.pack_into("<HHhh", b, 0x5A, 6, 4, 27, celsius)
    b[0x76:0x76 + 22] = _ascii(label, 22)
    b[0x8C:0x8C + 30] = _utf16(serial, 15)
    return bytes(b)


def hyperfire4k_note(*, serial: bytes = b"HF4K0000123456", label: bytes = b"RIDGE NORTH",
                     when: tuple[int, int, int, int, int, int] = (2024, 12, 31, 23, 59, 58),
                     celsius: int = 12,
                     trigger: bytes = b"S", sequence: tuple[int, int] = (1, 1)) -> bytes:
    """HyperFire 4K: `RECONYXHF4K\\0`; bytes sec, min, hour, day, month then a u16 year."""
    b = bytearray(0x97)
    b[0:12] = b"RECONYXHF4K\0"
    b[0x1A:0x21] = struct.pack("<BBHBBc", 0x02, 0x10, 0x2024, 0x06, 0x15, b"c")
    b[0x28:0x29] = trigger
    struct.pack_into("<BBI", b, 0x29, *sequence, 42)
    y, mo, d, h, mi, s = when
    struct.pack_into("<5BH", b, 0x2F, s, mi, h, d, mo, y)
    struct.pack_into("<BBhh", b, 0x36, 3, 4, 54, celsius)
    b[0x51:0x51 + 51] = _ascii(label, 51)
    b[0x84:0x84 + 15] = _ascii(serial, 15)
    struct.pack_into("<HH", b, 0x93, 100, 7)
    return bytes(b)


# (tag, TIFF type, value): types 1 BYTE, 2 ASCII and 7 UNDEFINED take bytes, 3 and 4 ints, 5 a (num, den) pair
Entry = tuple[int, int, Any]


def tiff(ifd0: list[Entry], exif_ifd: list[Entry] | None = None, big_endian: bool = False) -> bytes:
    """A TIFF block written by hand (any tag order, either byte order), independent of the Pillow
    and piexif versions: IFD0 with an Exif IFD pointer placed among its entries by tag number."""
    order = ">" if big_endian else "<"

    def ifd(entries: list[Entry], at: int) -> bytes:
        entries = sorted(entries, key=lambda e: e[0])
        data_at = at + 2 + 12 * len(entries) + 4
        head, data = struct.pack(order + "H", len(entries)), b""
        for tag, typ, value in entries:
            if typ in (1, 2, 7):
                raw, count = bytes(value), len(value)
            elif typ == 5:
                raw, count = struct.pack(order + "II", *value), 1
            else:
                vals = value if isinstance(value, tuple) else (value,)
                raw, count = struct.pack(order + ("H" if typ == 3 else "I") * len(vals), *vals), len(vals)
            if len(raw) <= 4:
                field = raw.ljust(4, b"\0")
            else:
                field = struct.pack(order + "I", data_at + len(data))
                data += raw + b"\0" * (len(raw) % 2)
            head += struct.pack(order + "HHI", tag, typ, count) + field
        return head + struct.pack(order + "I", 0) + data

    header = (b"MM\0*" if big_endian else b"II*\0") + struct.pack(order + "I", 8)
    if exif_ifd is None:
        return header + ifd(ifd0, 8)
    exif_at = 8 + len(ifd(ifd0 + [(0x8769, 4, 0)], 8))  # the pointer's value does not change the size
    return header + ifd(ifd0 + [(0x8769, 4, exif_at)], 8) + ifd(exif_ifd, exif_at)


def jpeg_with_tiff(tiff_block: bytes, size: tuple[int, int] = (8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size).save(buf, format="JPEG", exif=b"Exif\0\0" + tiff_block)
    return buf.getvalue()


def camera_jpeg(serial: str | None = "CAM-1", date: str | None = "2024:05:06 07:08:09",
                size: tuple[int, int] = (1600, 1200), seed: int = 1) -> bytes:
    """A real JPEG with EXIF written by piexif: a camera trap's serial and date."""
    img = Image.new("RGB", size, (seed * 37 % 255, 90, 120))
    zeroth = {piexif.ImageIFD.Make: b"TESTCAM", piexif.ImageIFD.Model: b"T-1"}
    exif: dict = {"0th": zeroth, "Exif": {}}
    if serial:
        exif["Exif"][piexif.ExifIFD.BodySerialNumber] = serial.encode()
    if date:
        exif["Exif"][piexif.ExifIFD.DateTimeOriginal] = date.encode()
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80, exif=piexif.dump(exif))
    return buf.getvalue()
