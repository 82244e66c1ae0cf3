"""EXIF tag names and print conversions, as exiftool 12.57 prints them (`-json -G`, no `-n`).

Only tags with a name here reach the md record: exiftool does not print tags it does not know
either (without `-u`). Values arrive as Pillow gives them (str for ASCII, bytes for BYTE and
UNDEFINED, int or tuple of int, IFDRational, float); each converter turns one into the text
exiftool would print. Enumerations print "Unknown (N)" for values they do not list.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from PIL.TiffImagePlugin import IFDRational

from animl_ingest_cli.metadata import text

Converter = Callable[[Any], str]


# -- numbers ------------------------------------------------------------------------------------

def is_rational(value: Any) -> bool:
    """Pillow's IFDRational (ints have a denominator too, so test the type)."""
    return isinstance(value, (IFDRational, Fraction))


def _rational(value: Any) -> str:
    num, den = value.numerator, value.denominator
    if den == 0:
        return "inf" if num else "undef"
    return f"{num / den:.10g}"


def _number(value: Any) -> str:
    if is_rational(value):
        return _rational(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.15g}"
    return str(int(value))


def values(value: Any) -> list[Any]:
    if isinstance(value, (tuple, list)):
        return list(value)
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    return [value]


def numbers(value: Any) -> str:
    """exiftool prints a list of numbers separated by spaces."""
    return " ".join(_number(v) for v in values(value))


def as_float(value: Any) -> float | None:
    """The first number of a value (None for inf/undef and anything that is not a number)."""
    vals = values(value)
    if not vals:
        return None
    first = vals[0]
    if is_rational(first):
        return None if first.denominator == 0 else first.numerator / first.denominator
    try:
        return float(first)
    except (TypeError, ValueError):
        return None


def as_int(value: Any) -> int | None:
    vals = values(value)
    if len(vals) != 1 or isinstance(vals[0], float) or is_rational(vals[0]):
        return None
    try:
        return int(vals[0])
    except (TypeError, ValueError):
        return None


# -- converters ---------------------------------------------------------------------------------

def enum(mapping: dict[Any, str], hex_unknown: bool = False) -> Converter:
    def convert(value: Any) -> str:
        key = as_int(value)
        if key is None:
            return f"Unknown ({numbers(value)})"
        if key in mapping:
            return mapping[key]
        return f"Unknown (0x{key:x})" if hex_unknown else f"Unknown ({key})"
    return convert


_TEXT_CONVERTERS: set[Converter] = set()


def string(trim: bool = False) -> Converter:
    def convert(value: Any) -> str:
        raw = value.encode("latin-1", "replace") if isinstance(value, str) else bytes(value)
        return text.printable(text.exif_string(raw, trim))
    _TEXT_CONVERTERS.add(convert)
    return convert


def _raw(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("latin-1", "replace")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return bytes(int(v) & 0xFF for v in values(value))


def version_string(value: Any) -> str:
    """ExifVersion, FlashpixVersion, InteropVersion: 4 ASCII digits, NULs at the end removed."""
    return text.printable(_raw(value).rstrip(b"\0"))


def binary(value: Any) -> str:
    return text.binary_placeholder(len(_raw(value)))


def undefined(value: Any) -> str:
    """A value stored as UNDEFINED in a tag exiftool does not mark binary: exiftool reads it as a
    string and prints it as text (NULs removed, invalid UTF-8 bytes as '?', control characters
    kept), whatever its length: measured on SerialNumber and ImageUniqueID (docs/metadata.md).
    Tags exiftool marks binary use `binary` (the placeholder), so md never carries raw bytes."""
    return text.printable(_raw(value))


def user_comment(value: Any, big_endian: bool = False) -> str:
    """UserComment and the like; the TIFF byte order is where exiftool starts its UTF-16/JIS guess."""
    return text.printable(text.user_comment(_raw(value), big_endian))


def copyright_text(value: Any) -> str:
    """Copyright: the first NUL separates photographer and editor (a newline), the second ends it."""
    raw = _raw(value)
    head, sep, rest = raw.partition(b"\0")
    if sep:
        head = head.rstrip(b" ")
        rest = rest.split(b"\0", 1)[0].rstrip(b" ")
        raw = head + b"\n" + rest
    return text.printable(raw.removesuffix(b"\n"))


def xp_text(value: Any) -> str:
    """Windows XP* tags: UCS-2 little-endian whatever the EXIF byte order. (A value declared ASCII
    lost its last NUL in Pillow: an odd length means the NUL belongs back.)"""
    raw = _raw(value)
    if isinstance(value, str) and len(raw) % 2:
        raw += b"\0"
    return text.ucs2le(raw)


def exposure_time(value: Any) -> str:
    secs = as_float(value)
    if secs is None:
        return numbers(value)
    return _print_exposure(secs)


def _print_exposure(secs: float) -> str:
    if 0 < secs < 0.25001:
        return f"1/{int(0.5 + 1 / secs)}"
    return _strip_dot_zero(f"{secs:.1f}")


def _strip_dot_zero(s: str) -> str:
    return s[:-2] if s.endswith(".0") else s


def fnumber(value: Any) -> str:
    val = as_float(value)
    if val is None or val <= 0:
        return numbers(value)
    return f"{val:.2f}" if val < 1 else f"{val:.1f}"


def shutter_speed_value(value: Any) -> str:
    val = _signed_float(value)
    if val is None:
        return numbers(value)
    secs = 2 ** (-val) if abs(val) < 100 else 0.0
    return _print_exposure(secs) if secs else "0"


def _perl_float(value: Any) -> float | None:
    """A number as Perl's sprintf("%f") sees exiftool's value: 'inf' is infinite, 'undef' is 0."""
    printed = numbers(value)
    special = {"inf": math.inf, "undef": 0.0}
    if printed in special:
        return special[printed]
    return as_float(value)


def _perl_fixed(val: float, decimals: int) -> str:
    """Perl prints infinities as Inf / -Inf."""
    if math.isinf(val):
        return "Inf" if val > 0 else "-Inf"
    return f"{val:.{decimals}f}"


def aperture_value(value: Any) -> str:
    val = _perl_float(value)
    if val is None:
        return numbers(value)
    try:
        return _perl_fixed(2 ** (val / 2), 1)
    except OverflowError:
        return "Inf"


def exposure_compensation(value: Any) -> str:
    val = _signed_float(value)
    if val is None:
        return numbers(value)
    val *= 1.00001
    if not val:
        return "0"
    if int(val) / val > 0.999:
        return f"{int(val):+d}"
    if int(val * 2) / (val * 2) > 0.999:
        return f"{int(val * 2):+d}/2"
    if int(val * 3) / (val * 3) > 0.999:
        return f"{int(val * 3):+d}/3"
    return f"{val:+.3g}"


def _signed_float(value: Any) -> float | None:
    """Tags exiftool reads as signed rationals even when written unsigned."""
    vals = values(value)
    if not vals:
        return None
    first = vals[0]
    if not is_rational(first):
        return as_float(value)
    num, den = first.numerator, first.denominator
    num = num - (1 << 32) if num >= 1 << 31 else num
    den = den - (1 << 32) if den >= 1 << 31 else den
    return None if den == 0 else num / den


def suffix(unit: str, decimals: int | None = None, bare_special: bool = False) -> Converter:
    """A number and its unit ("19 C", "5.0 mm"); `bare_special`: inf/undef printed alone."""
    def convert(value: Any) -> str:
        printed = numbers(value)
        if bare_special and printed in ("inf", "undef"):
            return printed
        if decimals is not None:
            val = _perl_float(value)
            if val is not None:
                return f"{_perl_fixed(val, decimals)}{unit}"
        return f"{printed}{unit}"
    return convert


def iso(value: Any) -> str:
    return ", ".join(_number(v) for v in values(value))


def lens_info(value: Any) -> str:
    vals = values(value)
    if len(vals) != 4:
        return numbers(value)
    printed = [_number(v) for v in vals]
    nums = ["?" if p in ("inf", "undef") else p for p in printed]
    text_out = nums[0]
    if nums[1] != nums[0] and not (nums[1] in ("0", "?") and nums[0] != "?"):
        text_out += "-" + nums[1]
    text_out += "mm f/" + nums[2]
    if nums[3] != nums[2] and nums[3] not in ("0", "?"):
        text_out += "-" + nums[3]
    return text_out


def components(value: Any) -> str:
    names = {0: "-", 1: "Y", 2: "Cb", 3: "Cr", 4: "R", 5: "G", 6: "B"}
    return ", ".join(names.get(v, f"Err ({v})") for v in values(_raw(value)))


def first_byte_enum(mapping: dict[int, str], whole: dict[bytes, str] | None = None) -> Converter:
    def convert(value: Any) -> str:
        raw = _raw(value)
        if whole and raw in whole:
            return whole[raw]
        if len(raw) != 1:
            return f"Unknown ({text.printable(raw)})"
        return mapping.get(raw[0], f"Unknown ({raw[0]})")
    return convert


def text_enum(mapping: dict[str, str]) -> Converter:
    def convert(value: Any) -> str:
        printed = string()(value)
        return mapping.get(printed, f"Unknown ({printed})")
    return convert


def gps_version(value: Any) -> str:
    return ".".join(_number(v) for v in values(value))


def gps_coordinate(value: Any) -> str:
    degrees = gps_degrees(value)
    if degrees is None:
        return numbers(value)
    return dms(abs(degrees))


def gps_degrees(value: Any) -> float | None:
    """Degrees, minutes, seconds -> decimal degrees (unsigned), as exiftool's ToDegrees."""
    vals = values(value)
    parts: list[float] = []
    for v in vals[:3]:
        printed = _number(v)
        if printed in ("inf", "undef"):
            return None
        parts.append(float(printed))
    if not parts:
        return None
    d, m, s = (parts + [0.0, 0.0])[:3]
    return d + (m + s / 60) / 60


def dms(val: float) -> str:
    d = int(val)
    m_full = (val - d) * 60
    m = int(m_full)
    s = (val - d - m / 60) * 3600
    s_text = f"{s:.2f}"
    if float(s_text) >= 60:
        s_text = f"{float(s_text) - 60:.2f}"
        m += 1
        if m >= 60:
            m -= 60
            d += 1
    return f"{d} deg {m}' {s_text}\""


def gps_time(value: Any) -> str:
    """GPSTimeStamp: h, m, s normalised to HH:MM:SS, fractional seconds to the microsecond."""
    vals = [as_float(v) for v in values(value)]
    if not vals or any(v is None for v in vals):
        return numbers(value)
    h, m, s = ([v or 0.0 for v in vals] + [0.0, 0.0])[:3]
    total = (h * 60 + m) * 60 + s
    hh = int(total / 3600)
    total -= hh * 3600
    mm = int(total / 60)
    total -= mm * 60
    ss = f"{total:012.9f}"
    if float(ss) >= 60:
        ss = "00"
        mm += 1
        if mm >= 60:
            mm -= 60
            hh += 1
    else:
        ss = re.sub(r"\.?0+$", "", ss, count=1)
    if "." in ss:
        rounded = int(float(ss) * 1_000_000 + 0.5) / 1_000_000
        ss = ("0" if rounded < 10 else "") + f"{rounded:.15g}"
    return f"{hh:02d}:{mm:02d}:{ss}"


def gps_date(value: Any) -> str:
    return text.printable(_raw(value).rstrip(b"\0"))


# -- tables -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TagDef:
    name: str
    convert: Converter | None = None   # None: by value type (text, numbers)
    signed_rational: bool = False      # exiftool reads it as rational64s whatever the declared type


def as_signed_rational(value: Any, big_endian: bool) -> Any:
    """Reread a value written with another 8-byte type (Bushnell: int16u[4]) as rational64s."""
    vals = values(value)
    if isinstance(value, (bytes, bytearray)) and len(value) == 8:
        raw = bytes(value)
    elif len(vals) == 4 and all(isinstance(v, int) and 0 <= v < 65536 for v in vals):
        raw = struct.pack((">" if big_endian else "<") + "4H", *vals)
    elif len(vals) == 2 and all(isinstance(v, int) and 0 <= v < 1 << 32 for v in vals):
        raw = struct.pack((">" if big_endian else "<") + "2I", *vals)
    else:
        return value
    num, den = struct.unpack((">" if big_endian else "<") + "2i", raw)
    return IFDRational(num, den)


_RES_UNIT = enum({1: "None", 2: "inches", 3: "cm"})
_FP_RES_UNIT = enum({1: "None", 2: "inches", 3: "cm", 4: "mm", 5: "um"})
_NORMAL_LOW_HIGH = enum({0: "Normal", 1: "Low", 2: "High"})
_FLASH = enum(hex_unknown=True, mapping={
    0x00: "No Flash", 0x01: "Fired", 0x05: "Fired, Return not detected", 0x07: "Fired, Return detected",
    0x08: "On, Did not fire", 0x09: "On, Fired", 0x0D: "On, Return not detected",
    0x0F: "On, Return detected", 0x10: "Off, Did not fire", 0x14: "Off, Did not fire, Return not detected",
    0x18: "Auto, Did not fire", 0x19: "Auto, Fired", 0x1D: "Auto, Fired, Return not detected",
    0x1F: "Auto, Fired, Return detected", 0x20: "No flash function", 0x30: "Off, No flash function",
    0x41: "Fired, Red-eye reduction", 0x45: "Fired, Red-eye reduction, Return not detected",
    0x47: "Fired, Red-eye reduction, Return detected", 0x49: "On, Red-eye reduction",
    0x4D: "On, Red-eye reduction, Return not detected", 0x4F: "On, Red-eye reduction, Return detected",
    0x50: "Off, Red-eye reduction", 0x58: "Auto, Did not fire, Red-eye reduction",
    0x59: "Auto, Fired, Red-eye reduction", 0x5D: "Auto, Fired, Red-eye reduction, Return not detected",
    0x5F: "Auto, Fired, Red-eye reduction, Return detected",
})
_LIGHT_SOURCE = enum({
    0: "Unknown", 1: "Daylight", 2: "Fluorescent", 3: "Tungsten (Incandescent)", 4: "Flash",
    9: "Fine Weather", 10: "Cloudy", 11: "Shade", 12: "Daylight Fluorescent", 13: "Day White Fluorescent",
    14: "Cool White Fluorescent", 15: "White Fluorescent", 16: "Warm White Fluorescent",
    17: "Standard Light A", 18: "Standard Light B", 19: "Standard Light C", 20: "D55", 21: "D65",
    22: "D75", 23: "D50", 24: "ISO Studio Tungsten", 255: "Other",
})
_COMPRESSION = enum({
    1: "Uncompressed", 2: "CCITT 1D", 3: "T4/Group 3 Fax", 4: "T6/Group 4 Fax", 5: "LZW",
    6: "JPEG (old-style)", 7: "JPEG", 8: "Adobe Deflate", 9: "JBIG B&W", 10: "JBIG Color", 99: "JPEG",
    32773: "PackBits", 34712: "JPEG 2000", 34892: "Lossy JPEG",
})

# IFD0, IFD1, ExifIFD and InteropIFD share one table in exiftool (Exif::Main).
EXIF_TAGS: dict[int, TagDef] = {
    0x0001: TagDef("InteropIndex", text_enum({
        "R98": "R98 - DCF basic file (sRGB)", "R03": "R03 - DCF option file (Adobe RGB)",
        "THM": "THM - DCF thumbnail file"})),
    0x0002: TagDef("InteropVersion", version_string),
    0x000B: TagDef("ProcessingSoftware"),
    0x00FE: TagDef("SubfileType", enum({0: "Full-resolution image", 1: "Reduced-resolution image",
                                        2: "Single page of multi-page image"})),
    0x0100: TagDef("ImageWidth"),
    0x0101: TagDef("ImageHeight"),
    0x0102: TagDef("BitsPerSample"),
    0x0103: TagDef("Compression", _COMPRESSION),
    0x0106: TagDef("PhotometricInterpretation", enum({
        0: "WhiteIsZero", 1: "BlackIsZero", 2: "RGB", 3: "RGB Palette", 4: "Transparency Mask",
        5: "CMYK", 6: "YCbCr", 8: "CIELab"})),
    0x010D: TagDef("DocumentName"),
    0x010E: TagDef("ImageDescription"),
    0x010F: TagDef("Make", string(trim=True)),
    0x0110: TagDef("Model", string(trim=True)),
    0x0112: TagDef("Orientation", enum({
        1: "Horizontal (normal)", 2: "Mirror horizontal", 3: "Rotate 180", 4: "Mirror vertical",
        5: "Mirror horizontal and rotate 270 CW", 6: "Rotate 90 CW",
        7: "Mirror horizontal and rotate 90 CW", 8: "Rotate 270 CW"})),
    0x0115: TagDef("SamplesPerPixel"),
    0x0116: TagDef("RowsPerStrip"),
    0x011A: TagDef("XResolution"),
    0x011B: TagDef("YResolution"),
    0x011C: TagDef("PlanarConfiguration", enum({1: "Chunky", 2: "Planar"})),
    0x0128: TagDef("ResolutionUnit", _RES_UNIT),
    0x0131: TagDef("Software", string(trim=True)),
    0x0132: TagDef("ModifyDate"),
    0x013B: TagDef("Artist", string(trim=True)),
    0x013C: TagDef("HostComputer"),
    0x013E: TagDef("WhitePoint"),
    0x013F: TagDef("PrimaryChromaticities"),
    0x0211: TagDef("YCbCrCoefficients"),
    0x0212: TagDef("YCbCrSubSampling"),
    0x0213: TagDef("YCbCrPositioning", enum({1: "Centered", 2: "Co-sited"})),
    0x0214: TagDef("ReferenceBlackWhite"),
    0x1000: TagDef("RelatedImageFileFormat"),
    0x1001: TagDef("RelatedImageWidth"),
    0x1002: TagDef("RelatedImageHeight"),
    0x4746: TagDef("Rating"),
    0x4749: TagDef("RatingPercent"),
    0x8298: TagDef("Copyright", copyright_text),
    0x829A: TagDef("ExposureTime", exposure_time),
    0x829D: TagDef("FNumber", fnumber),
    0x8822: TagDef("ExposureProgram", enum({
        0: "Not Defined", 1: "Manual", 2: "Program AE", 3: "Aperture-priority AE",
        4: "Shutter speed priority AE", 5: "Creative (Slow speed)", 6: "Action (High speed)",
        7: "Portrait", 8: "Landscape", 9: "Bulb"})),
    0x8824: TagDef("SpectralSensitivity"),
    0x8827: TagDef("ISO", iso),
    0x882A: TagDef("TimeZoneOffset"),
    0x882B: TagDef("SelfTimerMode"),
    0x8830: TagDef("SensitivityType", enum({
        0: "Unknown", 1: "Standard Output Sensitivity", 2: "Recommended Exposure Index", 3: "ISO Speed",
        4: "Standard Output Sensitivity and Recommended Exposure Index",
        5: "Standard Output Sensitivity and ISO Speed", 6: "Recommended Exposure Index and ISO Speed",
        7: "Standard Output Sensitivity, Recommended Exposure Index and ISO Speed"})),
    0x8831: TagDef("StandardOutputSensitivity"),
    0x8832: TagDef("RecommendedExposureIndex"),
    0x8833: TagDef("ISOSpeed"),
    0x9000: TagDef("ExifVersion", version_string),
    0x9003: TagDef("DateTimeOriginal"),
    0x9004: TagDef("CreateDate"),
    0x9010: TagDef("OffsetTime"),
    0x9011: TagDef("OffsetTimeOriginal"),
    0x9012: TagDef("OffsetTimeDigitized"),
    0x9101: TagDef("ComponentsConfiguration", components),
    0x9102: TagDef("CompressedBitsPerPixel"),
    0x9201: TagDef("ShutterSpeedValue", shutter_speed_value, signed_rational=True),
    0x9202: TagDef("ApertureValue", aperture_value),
    0x9203: TagDef("BrightnessValue"),
    0x9204: TagDef("ExposureCompensation", exposure_compensation, signed_rational=True),
    0x9205: TagDef("MaxApertureValue", aperture_value),
    0x9206: TagDef("SubjectDistance", suffix(" m", bare_special=True)),
    0x9207: TagDef("MeteringMode", enum({
        0: "Unknown", 1: "Average", 2: "Center-weighted average", 3: "Spot", 4: "Multi-spot",
        5: "Multi-segment", 6: "Partial", 255: "Other"})),
    0x9208: TagDef("LightSource", _LIGHT_SOURCE),
    0x9209: TagDef("Flash", _FLASH),
    0x920A: TagDef("FocalLength", suffix(" mm", decimals=1)),
    0x9211: TagDef("ImageNumber"),
    0x9214: TagDef("SubjectArea"),
    0x9286: TagDef("UserComment", user_comment),
    0x9290: TagDef("SubSecTime", lambda v: string()(v).rstrip(" ")),
    0x9291: TagDef("SubSecTimeOriginal", lambda v: string()(v).rstrip(" ")),
    0x9292: TagDef("SubSecTimeDigitized", lambda v: string()(v).rstrip(" ")),
    0x9400: TagDef("AmbientTemperature", suffix(" C")),
    0x9401: TagDef("Humidity"),
    0x9402: TagDef("Pressure"),
    0x9403: TagDef("WaterDepth"),
    0x9404: TagDef("Acceleration"),
    0x9405: TagDef("CameraElevationAngle"),
    0x9C9B: TagDef("XPTitle", xp_text),
    0x9C9C: TagDef("XPComment", xp_text),
    0x9C9D: TagDef("XPAuthor", xp_text),
    0x9C9E: TagDef("XPKeywords", xp_text),
    0x9C9F: TagDef("XPSubject", xp_text),
    0xA000: TagDef("FlashpixVersion", version_string),
    0xA001: TagDef("ColorSpace", enum({1: "sRGB", 2: "Adobe RGB", 0xFFFF: "Uncalibrated",
                                        0xFFFE: "ICC Profile", 0xFFFD: "Wide Gamut RGB"}, hex_unknown=True)),
    0xA002: TagDef("ExifImageWidth"),
    0xA003: TagDef("ExifImageHeight"),
    0xA004: TagDef("RelatedSoundFile"),
    0xA20B: TagDef("FlashEnergy"),
    0xA20E: TagDef("FocalPlaneXResolution"),
    0xA20F: TagDef("FocalPlaneYResolution"),
    0xA210: TagDef("FocalPlaneResolutionUnit", _FP_RES_UNIT),
    0xA214: TagDef("SubjectLocation"),
    0xA215: TagDef("ExposureIndex"),
    0xA217: TagDef("SensingMethod", enum({
        1: "Not defined", 2: "One-chip color area", 3: "Two-chip color area", 4: "Three-chip color area",
        5: "Color sequential area", 7: "Trilinear", 8: "Color sequential linear"})),
    0xA300: TagDef("FileSource", first_byte_enum(
        {1: "Film Scanner", 2: "Reflection Print Scanner", 3: "Digital Camera"},
        {b"\3\0\0\0": "Sigma Digital Camera"})),
    0xA301: TagDef("SceneType", first_byte_enum({1: "Directly photographed"})),
    0xA401: TagDef("CustomRendered", enum({
        0: "Normal", 1: "Custom", 2: "HDR (no original saved)", 3: "HDR (original saved)",
        4: "Original (for HDR)", 6: "Panorama", 7: "Portrait HDR", 8: "Portrait"})),
    0xA402: TagDef("ExposureMode", enum({0: "Auto", 1: "Manual", 2: "Auto bracket"})),
    0xA403: TagDef("WhiteBalance", enum({0: "Auto", 1: "Manual"})),
    0xA404: TagDef("DigitalZoomRatio"),
    0xA405: TagDef("FocalLengthIn35mmFormat", suffix(" mm")),
    0xA406: TagDef("SceneCaptureType", enum({0: "Standard", 1: "Landscape", 2: "Portrait", 3: "Night",
                                             4: "Other"})),
    0xA407: TagDef("GainControl", enum({0: "None", 1: "Low gain up", 2: "High gain up",
                                        3: "Low gain down", 4: "High gain down"})),
    0xA408: TagDef("Contrast", _NORMAL_LOW_HIGH),
    0xA409: TagDef("Saturation", _NORMAL_LOW_HIGH),
    0xA40A: TagDef("Sharpness", enum({0: "Normal", 1: "Soft", 2: "Hard"})),
    0xA40B: TagDef("DeviceSettingDescription", binary),
    0xA40C: TagDef("SubjectDistanceRange", enum({0: "Unknown", 1: "Macro", 2: "Close", 3: "Distant"})),
    0xA420: TagDef("ImageUniqueID"),
    0xA430: TagDef("OwnerName"),
    0xA431: TagDef("SerialNumber"),
    0xA432: TagDef("LensInfo", lens_info),
    0xA433: TagDef("LensMake"),
    0xA434: TagDef("LensModel"),
    0xA435: TagDef("LensSerialNumber"),
    0xA460: TagDef("CompositeImage", enum({0: "Unknown", 1: "Not a Composite Image",
                                          2: "General Composite Image",
                                          3: "Composite Image Captured While Shooting"})),
    0xA500: TagDef("Gamma"),
    0xFDE8: TagDef("OwnerName"),
    0xFDE9: TagDef("SerialNumber"),
    0xFDEA: TagDef("Lens"),
}

_NORTH = {"N": "North", "S": "South"}
_EAST = {"E": "East", "W": "West"}
_BEARING = {"M": "Magnetic North", "T": "True North"}

GPS_TAGS: dict[int, TagDef] = {
    0x00: TagDef("GPSVersionID", gps_version),
    0x01: TagDef("GPSLatitudeRef", text_enum(_NORTH)),
    0x02: TagDef("GPSLatitude", gps_coordinate),
    0x03: TagDef("GPSLongitudeRef", text_enum(_EAST)),
    0x04: TagDef("GPSLongitude", gps_coordinate),
    0x05: TagDef("GPSAltitudeRef", enum({0: "Above Sea Level", 1: "Below Sea Level"})),
    0x06: TagDef("GPSAltitude", suffix(" m", bare_special=True)),
    0x07: TagDef("GPSTimeStamp", gps_time),
    0x08: TagDef("GPSSatellites"),
    0x09: TagDef("GPSStatus", text_enum({"A": "Measurement Active", "V": "Measurement Void"})),
    0x0A: TagDef("GPSMeasureMode", text_enum({"2": "2-Dimensional Measurement",
                                              "3": "3-Dimensional Measurement"})),
    0x0B: TagDef("GPSDOP"),
    0x0C: TagDef("GPSSpeedRef", text_enum({"K": "km/h", "M": "mph", "N": "knots"})),
    0x0D: TagDef("GPSSpeed"),
    0x0E: TagDef("GPSTrackRef", text_enum(_BEARING)),
    0x0F: TagDef("GPSTrack"),
    0x10: TagDef("GPSImgDirectionRef", text_enum(_BEARING)),
    0x11: TagDef("GPSImgDirection"),
    0x12: TagDef("GPSMapDatum"),
    0x13: TagDef("GPSDestLatitudeRef", text_enum(_NORTH)),
    0x14: TagDef("GPSDestLatitude", gps_coordinate),
    0x15: TagDef("GPSDestLongitudeRef", text_enum(_EAST)),
    0x16: TagDef("GPSDestLongitude", gps_coordinate),
    0x17: TagDef("GPSDestBearingRef", text_enum(_BEARING)),
    0x18: TagDef("GPSDestBearing"),
    0x19: TagDef("GPSDestDistanceRef", text_enum({"K": "Kilometers", "M": "Miles", "N": "Nautical Miles"})),
    0x1A: TagDef("GPSDestDistance"),
    0x1B: TagDef("GPSProcessingMethod", user_comment),
    0x1C: TagDef("GPSAreaInformation", user_comment),
    0x1D: TagDef("GPSDateStamp", gps_date),
    0x1E: TagDef("GPSDifferential", enum({0: "No Correction", 1: "Differential Corrected"})),
    0x1F: TagDef("GPSHPositioningError", suffix(" m")),
}


def is_text_tag(tag: TagDef) -> bool:
    """A tag exiftool prints as text when stored as ASCII (and as numbers when stored as BYTE)."""
    return tag.convert is None or tag.convert in _TEXT_CONVERTERS


def print_value(tag: TagDef, value: Any) -> str:
    """The value as exiftool prints it, as text (json_scalar makes numbers of it later)."""
    convert = tag.convert
    if convert is None:
        if isinstance(value, str):
            convert = string()
        elif isinstance(value, (bytes, bytearray)):
            convert = undefined
        else:
            convert = numbers
    return str(convert(value))
