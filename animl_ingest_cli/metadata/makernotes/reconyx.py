"""Reconyx maker notes: fixed binary layouts, always little-endian whatever the TIFF byte order.

No Python library decodes them, and without them every Reconyx image has `SerialNumber = unknown`.
Offsets are bytes from the start of the maker note. HyperFire, UltraFire and HyperFire 2 print
exactly as exiftool 12.57 (the corpus oracle); MicroFire and HyperFire 4K, which 12.57 does not
know, follow the layouts later exiftool versions decode (Reconyx Metadata 1.4).

RapidFire cameras (Make "Reconyx", RC55, RM45) write a maker note nobody decodes; their serial is
only in the JPEG comment (`SN:` line), surfaced as a hint by `rapidfire_serial`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from animl_ingest_cli.metadata import text

MOON_PHASE = {0: "New", 1: "New Crescent", 2: "First Quarter", 3: "Waxing Gibbous", 4: "Full",
              5: "Waning Gibbous", 6: "Last Quarter", 7: "Old Crescent"}
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
SUNDAY0 = dict(enumerate(_DAYS))
SUNDAY1 = {i + 1: d for i, d in enumerate(_DAYS)}
OFF_ON = {0: "Off", 1: "On"}


@dataclass(frozen=True)
class Field:
    offset: int
    name: str
    fmt: str                                   # struct format (little-endian), or s<N>/u<N>/x<N>
    convert: Callable[[Any], str | None] | None = None

    def size(self) -> int:
        kind, count = self.fmt[0], self.fmt[1:]
        if kind in "sux":  # string, UTF-16 string, raw bytes: N bytes
            return int(count) * (2 if kind == "u" else 1)
        return struct.calcsize("<" + self.fmt)

    def read(self, note: bytes) -> Any:
        raw = note[self.offset:self.offset + self.size()]
        kind = self.fmt[0]
        if kind == "s":
            return text.cut_at_nul(raw)          # maker-note strings keep their trailing blanks
        if kind == "u":
            return text.ucs2le(raw).encode("utf-8")
        if kind == "x":
            return raw
        vals = struct.unpack("<" + self.fmt, raw)
        return vals[0] if len(vals) == 1 else vals


# -- print conversions --------------------------------------------------------------------------

def _lookup(mapping: dict[Any, str]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        key = value.decode("latin-1") if isinstance(value, bytes) else value
        return mapping.get(key, f"Unknown ({key})")
    return convert


def _joined(sep: str) -> Callable[[Any], str]:
    return lambda v: sep.join(str(x) for x in v)


def _of(value: Any) -> str:
    return f"{value[0]} of {value[1]}"


def _unit(unit: str) -> Callable[[Any], str]:
    return lambda v: f"{v} {unit}"


def _perl_number(value: float) -> str:
    return f"{value:.15g}"


def _millivolts(unit: str = "") -> Callable[[Any], str]:
    return lambda v: _perl_number(v / 1000) + (f" {unit}" if unit else "")


def _hex_date(value: Any) -> str:
    year, monthday = value
    return f"{year:04x}:{monthday >> 8:02x}:{monthday & 0xFF:02x}"


def _event_number(value: Any) -> str:
    return str((value[0] << 16) + value[1])


def _dotted_letter(value: Any) -> str:
    return f"{value[0]}.{value[1]}{chr(value[2]) if value[2] < 0x110000 else ''}"


def _type2_version(prefix: str) -> Callable[[Any], str]:
    def convert(raw: bytes) -> str:
        major, minor, year, month, day, rev = struct.unpack("<BBHBBc", raw)
        return f"{prefix}{major:02x}.{minor:02x} {year:04x}:{month:02x}:{day:02x} Rev.{rev.decode('latin-1')}"
    return convert


def _date(y: int, mo: int, d: int, h: int, mi: int, s: int) -> str:
    return f"{y:04d}:{mo:02d}:{d:02d} {h:02d}:{mi:02d}:{s:02d}"


def _hyperfire_date(words: tuple[int, ...]) -> str:
    # sec, min, hour, month, day, year; some firmware writes them big-endian
    if words[0] & 0xFF00 and not words[0] & 0xFF:
        words = tuple(((w >> 8) | ((w & 0xFF) << 8)) for w in words)
    s, mi, h, mo, d, y = words
    return _date(y, mo, d, h, mi, s)


def _reversed_date(words: tuple[int, ...]) -> str:
    s, mi, h, d, mo, y = words
    return _date(y, mo, d, h, mi, s)


def _byte_date(raw: bytes) -> str:
    s, mi, h, d, mo, y = struct.unpack("<5BH", raw)
    return _date(y, mo, d, h, mi, s)


def _zip_date(value: Any) -> str:
    day_word, time_word = value
    return _date((day_word >> 9) + 1980, (day_word >> 5) & 0x0F, day_word & 0x1F,
                 (time_word >> 11) & 0x1F, (time_word >> 5) & 0x3F, (time_word & 0x1F) * 2)


def _zip_day(value: int) -> str:
    return f"{(value >> 9) + 1980:04d}:{(value >> 5) & 0x0F:02d}:{value & 0x1F:02d}"


# -- layouts ------------------------------------------------------------------------------------

_HF_TRIGGER = {"C": "CodeLoc Not Entered", "E": "External Sensor", "M": "Motion Detection", "T": "Time Lapse"}
_MF_TRIGGER = {"M": "Motion Sensor", "E": "External Sensor", "T": "Time Lapse", "C": "CodeLoc Not Entered"}

def _sensors(moon_at: int, moon_fmt: str) -> list[Field]:
    """MoonPhase, then the temperature in F and in C: side by side in every layout."""
    after = moon_at + struct.calcsize("<" + moon_fmt)
    return [Field(moon_at, "MoonPhase", moon_fmt, _lookup(MOON_PHASE)),
            Field(after, "AmbientTemperatureFahrenheit", "h", _unit("F")),
            Field(after + 2, "AmbientTemperature", "h", _unit("C"))]


def _picture(at: int) -> list[Field]:
    """Contrast, Brightness, Sharpness, Saturation: four words in a row."""
    names = ("Contrast", "Brightness", "Sharpness", "Saturation")
    return [Field(at + 2 * i, name, "H") for i, name in enumerate(names)]


HYPERFIRE = [
    Field(0x00, "MakerNoteVersion", "H", lambda v: f"0x{v:04x}"),
    Field(0x02, "FirmwareVersion", "3H", _joined(".")),
    Field(0x08, "FirmwareDate", "2H", _hex_date),
    Field(0x0C, "TriggerMode", "s2", _lookup(_HF_TRIGGER)),
    Field(0x0E, "Sequence", "2H", _of),
    Field(0x12, "EventNumber", "2H", _event_number),
    Field(0x16, "DateTimeOriginal", "6H", _hyperfire_date),
    *_sensors(0x24, "H"),
    Field(0x2A, "SerialNumber", "u15"),
    *_picture(0x48),
    Field(0x50, "InfraredIlluminator", "H", _lookup(OFF_ON)),
    Field(0x52, "MotionSensitivity", "H"),
    Field(0x54, "BatteryVoltage", "H", _millivolts("V")),
    Field(0x56, "UserLabel", "s22"),
]

ULTRAFIRE = [
    Field(0x18, "FirmwareVersion", "x7", _type2_version("V")),
    Field(0x1F, "Micro1Version", "x7", _type2_version("V")),
    Field(0x26, "BootLoaderVersion", "x7", _type2_version("V")),
    Field(0x2D, "Micro2Version", "x7", _type2_version("V")),
    Field(0x34, "TriggerMode", "x1", _lookup({"M": "Motion Detection", "T": "Time Lapse",
                                              "P": "Point and Shoot"})),
    Field(0x35, "Sequence", "2B", _of),
    Field(0x37, "EventNumber", "I"),
    Field(0x3B, "DateTimeOriginal", "x7", _byte_date),
    Field(0x42, "DayOfWeek", "B", _lookup(SUNDAY0)),
    *_sensors(0x43, "B"),
    Field(0x48, "Illumination", "B", _lookup(OFF_ON)),
    Field(0x49, "BatteryVoltage", "H", _millivolts("V")),
    Field(0x4B, "SerialNumber", "s15"),
    Field(0x5A, "UserLabel", "s21"),
]

HYPERFIRE2 = [
    Field(0x10, "FileNumber", "H"),
    Field(0x12, "DirectoryNumber", "H"),
    Field(0x2A, "FirmwareVersion", "3H", _dotted_letter),
    Field(0x30, "FirmwareDate", "2H", _hex_date),
    Field(0x34, "TriggerMode", "s2", _lookup({"M": "Motion Detection", "T": "Time Lapse",
                                              "P": "Point and Shoot"})),
    Field(0x36, "Sequence", "2H", _of),
    Field(0x3A, "EventNumber", "2H", _event_number),
    Field(0x3E, "DateTimeOriginal", "6H", _reversed_date),
    Field(0x4A, "DayOfWeek", "H", _lookup(SUNDAY0)),
    *_sensors(0x4C, "H"),
    *_picture(0x52),
    Field(0x5A, "Flash", "H", _lookup(OFF_ON)),
    Field(0x5C, "AmbientInfrared", "H"),
    Field(0x5E, "AmbientLight", "H"),
    Field(0x60, "MotionSensitivity", "H"),
    Field(0x62, "BatteryVoltage", "H"),
    Field(0x64, "BatteryVoltageAvg", "H"),
    Field(0x66, "BatteryType", "H"),
    Field(0x68, "UserLabel", "s22"),
    Field(0x7E, "SerialNumber", "u15"),
]

MICROFIRE = [
    Field(0x10, "FileNumber", "H"),
    Field(0x12, "DirectoryNumber", "H"),
    Field(0x14, "DirectoryCreateDate", "2H", _zip_date),
    Field(0x18, "SDCardID", "8H", lambda v: "-".join(f"{w:04x}" for w in v)),
    Field(0x2A, "FirmwareVersion", "3H", _dotted_letter),
    Field(0x30, "FirmwareDate", "2H", _hex_date),
    Field(0x34, "BluetoothFirmwareVersion", "3H", _dotted_letter),
    Field(0x3A, "BluetoothFirmwareDate", "H", _zip_day),
    Field(0x3C, "WifiFirmwareVersion", "3H", _dotted_letter),
    Field(0x42, "WifiFirmwareDate", "H", _zip_day),
    Field(0x44, "TriggerMode", "s2", _lookup(_MF_TRIGGER)),
    Field(0x46, "Sequence", "2H", _of),
    Field(0x4A, "EventNumber", "2H", _event_number),
    Field(0x4E, "DateTimeOriginal", "6H", _hyperfire_date),
    Field(0x5A, "DayOfWeek", "H", _lookup(SUNDAY1)),
    *_sensors(0x5C, "H"),
    *_picture(0x62),
    Field(0x6A, "Flash", "B", _lookup(OFF_ON)),
    Field(0x6C, "AmbientInfrared", "H"),
    Field(0x6E, "AmbientLight", "H"),
    Field(0x70, "MotionSensitivity", "H"),
    Field(0x72, "BatteryVoltage", "H", _millivolts()),
    Field(0x74, "BatteryType", "H", _lookup({0: "Lithium", 1: "NiMH", 2: "Alkaline", 3: "Lead Acid"})),
    Field(0x76, "UserLabel", "s22"),
    Field(0x8C, "SerialNumber", "u15"),
]

HYPERFIRE4K = [
    Field(0x1A, "FirmwareVersion", "x7", _type2_version("")),
    Field(0x21, "UIBFirmwareVersion", "x7", _type2_version("")),
    Field(0x28, "TriggerMode", "x1", _lookup({**_MF_TRIGGER, "S": "Cell Status", "L": "Cell Live View"})),
    Field(0x29, "Sequence", "2B", _of),
    Field(0x2B, "EventNumber", "I"),
    Field(0x2F, "DateTimeOriginal", "x7", _byte_date),
    Field(0x36, "DayOfWeek", "B", _lookup(SUNDAY1)),
    *_sensors(0x37, "B"),
    *_picture(0x3C),
    Field(0x44, "Flash", "B", _lookup(OFF_ON)),
    Field(0x45, "AmbientLight", "I"),
    Field(0x49, "MotionSensitivity", "H"),
    Field(0x4B, "BatteryVoltage", "H", _millivolts()),
    Field(0x4D, "BatteryVoltageAvg", "H", _millivolts()),
    Field(0x4F, "BatteryType", "H", _lookup({1: "NiMH", 2: "Lithium", 3: "External", 4: "SC10 Solar"})),
    Field(0x51, "UserLabel", "s51"),
    Field(0x84, "SerialNumber", "s15"),
    Field(0x93, "DirectoryNumber", "H"),
    Field(0x95, "FileNumber", "H"),
]


def layout_for(note: bytes, make: str) -> tuple[str, list[Field]] | None:
    """Which Reconyx layout a maker note uses, recognised the way exiftool recognises it."""
    if note.startswith(b"\x01\xf1") and (note[2:4] in (b"\x02\x00", b"\x03\x00") or make == "RECONYX"):
        return "HyperFire", HYPERFIRE
    if note.startswith(b"RECONYXUF\0"):
        return "UltraFire", ULTRAFIRE
    if note.startswith(b"RECONYXH2\0"):
        return "HyperFire 2", HYPERFIRE2
    if note.startswith(b"RECONYXMF\0"):
        return "MicroFire", MICROFIRE
    if note.startswith(b"RECONYXHF4K\0"):
        return "HyperFire 4K", HYPERFIRE4K
    return None


def decode(note: bytes, layout: list[Field]) -> list[tuple[str, str]]:
    """(name, printed value) for every field the note is long enough to hold, in offset order."""
    out: list[tuple[str, str]] = []
    for field in layout:
        if field.offset + field.size() > len(note):
            continue
        value = field.read(note)
        printed = field.convert(value) if field.convert else value
        if isinstance(printed, tuple):
            printed = " ".join(str(v) for v in printed)
        if printed is None:
            continue
        if not isinstance(printed, (bytes, str)):
            printed = str(printed)
        out.append((field.name, text.printable(printed)))
    return out


_RAPIDFIRE_SN = re.compile(rb"(?:^|[\r\n])SN:[ \t]*([^\r\n\0]+)")


def rapidfire_serial(comment: bytes | None) -> str | None:
    """RapidFire cameras keep `SN:  RC33AC09006956` among the `\\r`-separated comment lines."""
    return text.first_group(_RAPIDFIRE_SN, comment)
