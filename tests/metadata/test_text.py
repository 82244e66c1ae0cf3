"""Text normalisation as exiftool does it (FixUTF8, NULs, trailing blanks, UserComment headers)."""

from __future__ import annotations

import piexif
import pytest

from animl_ingest_cli.metadata import read_metadata, text
from tests.metadata.builders import jpeg


@pytest.mark.parametrize("raw,want", [
    (b"plain", "plain"),
    (b"Cam\xc3\xa9ra \xe2\x98\x83", "Caméra ☃"),               # valid UTF-8 stays
    (b"\xe8\x86", "??"),                                      # truncated 3-byte sequence: one ? per byte
    (b"ab\xe8\x86cd", "ab??cd"),
    (b"Tr\xe4il\xffC\x80m\x01\x7f", "Tr?il?C?m\x01\x7f"),    # control characters and DEL kept
    (b"\xc0\xaf", "??"),                                      # overlong
    (b"\xed\xa0\x80", "???"),                                 # UTF-16 surrogate
    (b"\xef\xbf\xbe", "???"),                                 # U+FFFE
    (b"\xf4\x90\x80\x80", "????"),                            # above U+10FFFF
    (b"\xf0\x9f\x90\xbb", "\U0001f43b"),                      # 4-byte sequence kept
    (b"\xf0\x9f\x90", "???"),
])
def test_fix_utf8_replaces_each_invalid_byte(raw: bytes, want: str) -> None:
    assert text.fix_utf8(raw) == want


def test_python_replace_would_be_wrong() -> None:
    assert b"\xe8\x86".decode("utf-8", "replace") == "\ufffd"  # why fix_utf8 exists
    assert text.fix_utf8(b"\xe8\x86") == "??"


def test_exif_string_cuts_at_first_nul_and_trims_only_when_asked() -> None:
    assert text.exif_string(b"SN\xe9\0\0junk") == b"SN\xe9"
    assert text.exif_string(b"G4       ", trim=True) == b"G4"
    assert text.exif_string(b"G4  \t\r\n", trim=True) == b"G4"
    assert text.exif_string(b"x\x1f", trim=True) == b"x\x1f", "Perl's \\s, not Python's isspace"
    assert text.exif_string(b"SN12  ") == b"SN12  "
    assert text.exif_string(b"\0\0\0\0") == b""


@pytest.mark.parametrize("raw,want", [
    (b"ASCII\0\0\0hello  \0zz", b"hello"),
    (b"\0" * 8 + b"abc  ", b"abc"),
    (b"\0" * 20, b""),
    (b"UNICODE\0h\0i\0", b"hi"),
    (b"UNICODE\0\0h\0i", b"hi"),                       # byte order guessed from the zeros
    (b"1 ATTEMPT G1H\0\0\0", b"1 ATTEMPT G1H\0\0\0"),  # no header: the whole value (NULs go at output)
    (b"NOHEADER text\0tail  ", b"NOHEADER text\0tail"),
    (b"short", b"short"),
])
def test_user_comment_headers(raw: bytes, want: bytes) -> None:
    assert text.user_comment(raw) == want


def test_printable_removes_nuls_and_keeps_control_characters() -> None:
    assert text.printable(b"NOHEADER text\0tail") == "NOHEADER texttail"
    assert text.printable(b"a\r\nb\x01") == "a\r\nb\x01"


@pytest.mark.parametrize("printed,want", [
    ("72", 72), ("0.6241449603", 0.6241449603), ("-3", -3), ("1e5", 1e5), ("true", True),
    ("0220", "0220"), ("0560018150", "0560018150"), ("1/43", "1/43"),
    ("12345678901234567", "12345678901234567"),
    ("٣", "٣"), ("19 C", "19 C"), ("", ""),
])
def test_json_scalar_follows_exiftool_number_rule(printed: str, want: object) -> None:
    assert text.json_scalar(printed) == want
    assert type(text.json_scalar(printed)) is type(want)


def test_ucs2le_stops_at_nul() -> None:
    assert text.ucs2le("H500HH06211894".encode("utf-16-le") + b"\0\0X\0") == "H500HH06211894"


def test_trailing_blank_rules_in_a_real_record() -> None:
    """exiftool (measured, 12.57) trims trailing whitespace of Make, Model, Software and Artist only;
    SerialNumber and ImageDescription keep theirs (a changed serial would be another camera)."""
    data = jpeg({"0th": {piexif.ImageIFD.Make: b"G4       ", piexif.ImageIFD.Model: b"CUDDEBACK \t",
                         piexif.ImageIFD.ImageDescription: b"desc   ", piexif.ImageIFD.Software: b"v1 "},
                 "Exif": {piexif.ExifIFD.BodySerialNumber: b"SN12  "}})
    md = read_metadata(data, "x.jpg").md
    assert md["Make"] == "G4" and md["Model"] == "CUDDEBACK" and md["Software"] == "v1"
    assert md["ImageDescription"] == "desc   "
    assert md["SerialNumber"] == "SN12  "


def test_blank_and_nul_filled_values_are_absent() -> None:
    data = jpeg({"0th": {piexif.ImageIFD.Make: b"\0\0\0\0\0\0\0\0", piexif.ImageIFD.Model: b"    "},
                 "Exif": {piexif.ExifIFD.BodySerialNumber: b"   "}})
    meta = read_metadata(data, "x.jpg")
    assert meta.md["Make"] == "unknown"
    assert "Model" not in meta.md
    assert meta.md["SerialNumber"] == "unknown"
    assert any("blank" in p for p in meta.problems)


def test_comment_keeps_line_breaks_and_loses_trailing_nuls() -> None:
    md = read_metadata(jpeg(comment=b"TEXT1=Camera 2\nSN=X1\r\nend\0\0\0"), "x.jpg").md
    assert md["Comment"] == "TEXT1=Camera 2\nSN=X1\r\nend"
