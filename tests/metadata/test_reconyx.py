"""Reconyx maker notes, built byte by byte from the published layouts and written into JPEGs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import piexif
import pytest

from animl_ingest_cli.metadata import read_metadata
from animl_ingest_cli.metadata.makernotes import reconyx
from tests.metadata import builders as B

RECONYX = {"0th": {piexif.ImageIFD.Make: b"RECONYX"}}


def md_for(note: bytes, exif: dict | None = None) -> dict:
    return read_metadata(B.jpeg(exif if exif is not None else RECONYX, maker_note=note), "x.jpg").md


def test_hyperfire() -> None:
    md = md_for(B.hyperfire_note())
    assert md["SerialNumber"] == "H500HH06211894"
    assert md["FirmwareVersion"] == "4.1.0"
    assert md["FirmwareDate"] == "2014:05:06"
    assert md["TriggerMode"] == "Motion Detection"
    assert md["Sequence"] == "1 of 3"
    assert md["EventNumber"] == 559
    assert md["DateTimeOriginal"] == "2014-11-23T20:26:22.000Z"
    assert md["MoonPhase"] == "New"
    assert md["AmbientTemperatureFahrenheit"] == "67 F"
    assert md["AmbientTemperature"] == "19 C"
    assert md["BatteryVoltage"] == "7.62 V"
    assert md["UserLabel"] == "AE"
    assert md["MakerNoteVersion"] == "0xf101"


def test_hyperfire_firmware_2_and_3_need_no_make() -> None:
    for major in (2, 3):
        md = md_for(B.hyperfire_note(firmware=(major, 0, 1)), exif={})
        assert md["SerialNumber"] == "H500HH06211894" and md["Make"] == "unknown"
        assert md["DateTimeOriginal"] == "2014-11-23T20:26:22.000Z", "the date comes from the maker note"


def test_hyperfire_firmware_4_needs_make_reconyx() -> None:
    assert md_for(B.hyperfire_note(), exif={})["SerialNumber"] == "unknown"
    other = {"0th": {piexif.ImageIFD.Make: b"Reconyx"}}
    assert md_for(B.hyperfire_note(), exif=other)["SerialNumber"] == "unknown", "exactly 'RECONYX'"


def test_hyperfire_big_endian_date_words_are_swapped_back() -> None:
    md = md_for(B.hyperfire_note(swap_date=True, when=(2011, 5, 6, 6, 27, 12)), exif={})
    md3 = md_for(B.hyperfire_note(firmware=(3, 0, 1), swap_date=True, when=(2011, 5, 6, 6, 27, 12)), exif={})
    assert md["SerialNumber"] == "unknown"  # firmware 4 without Make: not recognised at all
    assert md3["DateTimeOriginal"] == "2011-05-06T06:27:12.000Z"


@pytest.mark.parametrize("code,meaning", [(b"M", "Motion Detection"), (b"T", "Time Lapse"),
                                          (b"E", "External Sensor"), (b"C", "CodeLoc Not Entered"),
                                          (b"Z", "Unknown (Z)")])
def test_hyperfire_trigger_modes(code: bytes, meaning: str) -> None:
    assert md_for(B.hyperfire_note(trigger=code))["TriggerMode"] == meaning


def test_hyperfire_negative_temperature_moon_and_label_blanks() -> None:
    md = md_for(B.hyperfire_note(celsius=-7, fahrenheit=19, moon=5, label=b"R01             "))
    assert md["AmbientTemperature"] == "-7 C" and md["AmbientTemperatureFahrenheit"] == "19 F"
    assert md["MoonPhase"] == "Waning Gibbous"
    assert md["UserLabel"] == "R01             ", "maker-note strings keep trailing blanks"


def test_ultrafire() -> None:
    md = md_for(B.ultrafire_note())
    assert md["SerialNumber"] == "UXR6BI02004234"
    assert md["FirmwareVersion"] == "V01.05 2015:11:30 Rev.a", "numbers printed as hex digits"
    assert md["TriggerMode"] == "Motion Detection"
    assert md["Sequence"] == "4 of 5"
    assert md["EventNumber"] == 1234
    assert md["DateTimeOriginal"] == "2016-01-28T15:14:45.000Z"
    assert md["DayOfWeek"] == "Thursday"
    assert md["MoonPhase"] == "Waning Gibbous"
    assert md["AmbientTemperature"] == "4 C"
    assert md["BatteryVoltage"] == "12.345 V"
    assert md["UserLabel"] == "AM100               "


@pytest.mark.parametrize("big_endian", [False, True])
def test_notes_are_little_endian_whatever_the_tiff_byte_order(big_endian: bool) -> None:
    note = B.ultrafire_note(trigger=b"P", event=0x01020304)
    block = B.tiff([(0x010F, 2, b"RECONYX\0")], [(0x927C, 7, note)], big_endian=big_endian)
    md = read_metadata(B.jpeg_with_tiff(block), "x.jpg").md
    want = "Big-endian (Motorola, MM)" if big_endian else "Little-endian (Intel, II)"
    assert md["ExifByteOrder"] == want
    assert md["TriggerMode"] == "Point and Shoot" and md["SerialNumber"] == "UXR6BI02004234"
    assert md["EventNumber"] == 0x01020304


def test_hyperfire2() -> None:
    md = md_for(B.hyperfire2_note())
    assert md["SerialNumber"] == "HLPXEL06008661", "UTF-16LE serial"
    assert md["FirmwareVersion"] == "1.4a"
    assert md["TriggerMode"] == "Motion Detection"
    assert md["Sequence"] == "5 of 5"
    assert md["EventNumber"] == 70000
    assert md["DateTimeOriginal"] == "2018-08-11T17:45:32.000Z", "day and month as exiftool reads them"
    assert md["MoonPhase"] == "New" and md["AmbientTemperature"] == "26 C"
    assert md["BatteryVoltage"] == 8123 and md["DayOfWeek"] == "Saturday"
    assert md["UserLabel"] == "CAM10"


def test_hyperfire2_exif_date_wins_over_maker_note() -> None:
    exif = {"0th": {piexif.ImageIFD.Make: b"RECONYX"},
            "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2018:11:08 17:45:32"}}
    md = md_for(B.hyperfire2_note(), exif=exif)
    assert md["DateTimeOriginal"] == "2018-11-08T17:45:32.000Z"


def test_microfire() -> None:
    md = md_for(B.microfire_note(), exif={})
    assert md["SerialNumber"] == "MF12345678ABCD"
    assert md["FirmwareVersion"] == "2.1b"
    assert md["TriggerMode"] == "Time Lapse"
    assert md["Sequence"] == "2 of 3"
    assert md["DateTimeOriginal"] == "2022-03-04T05:06:07.000Z"
    assert md["DayOfWeek"] == "Friday", "MicroFire counts days from 1 = Sunday"
    assert md["AmbientTemperature"] == "-3 C"
    assert md["UserLabel"] == "TRAIL 7"


def test_hyperfire4k() -> None:
    md = md_for(B.hyperfire4k_note(), exif={})
    assert md["SerialNumber"] == "HF4K0000123456"
    assert md["FirmwareVersion"] == "02.10 2024:06:15 Rev.c"
    assert md["TriggerMode"] == "Cell Status"
    assert md["Sequence"] == "1 of 1"
    assert md["EventNumber"] == 42
    assert md["DateTimeOriginal"] == "2024-12-31T23:59:58.000Z"
    assert md["DayOfWeek"] == "Tuesday"
    assert md["AmbientTemperature"] == "12 C"
    assert md["UserLabel"] == "RIDGE NORTH"
    assert md["DirectoryNumber"] == 100 and md["FileNumber"] == 7


def test_exif_serial_wins_over_maker_note_serial() -> None:
    exif = {"0th": {piexif.ImageIFD.Make: b"RECONYX"}, "Exif": {piexif.ExifIFD.BodySerialNumber: b"EXIF-1"}}
    assert md_for(B.ultrafire_note(), exif=exif)["SerialNumber"] == "EXIF-1"


def test_truncated_note_keeps_the_fields_it_holds() -> None:
    note = B.hyperfire_note()[:0x30]  # ends inside the serial number
    md = md_for(note)
    assert md["Sequence"] == "1 of 3" and md["DateTimeOriginal"] == "2014-11-23T20:26:22.000Z"
    assert md["SerialNumber"] == "unknown" and "UserLabel" not in md


def test_layout_recognition() -> None:
    assert reconyx.layout_for(b"\x01\xf1\x03\x00" + b"\0" * 10, "")[0] == "HyperFire"
    assert reconyx.layout_for(b"\x01\xf1\x04\x00" + b"\0" * 10, "") is None
    assert reconyx.layout_for(b"RECONYXUF\0", "")[0] == "UltraFire"
    assert reconyx.layout_for(b"RECONYXH2\0", "")[0] == "HyperFire 2"
    assert reconyx.layout_for(b"RECONYXMF\0", "")[0] == "MicroFire"
    assert reconyx.layout_for(b"RECONYXHF4K\0", "")[0] == "HyperFire 4K"
    assert reconyx.layout_for(b"RECONYXXX\0", "RECONYX") is None


def test_rapidfire_serial_from_comment() -> None:
    comment = b"Trg: M 2/3\rEvt: 1384\rSN:  RC33AC09006956\rVer: 2.3.0\r\0\0"
    assert reconyx.rapidfire_serial(comment) == "RC33AC09006956"
    assert reconyx.rapidfire_serial(b"SN=X811459F\n") is None, "BuckEyeCam lines are not RapidFire's"
    meta = read_metadata(B.jpeg({"0th": {piexif.ImageIFD.Make: b"Reconyx  "}}, comment=comment), "x.jpg")
    assert meta.md["Make"] == "Reconyx"
    assert meta.md["SerialNumber"] == "unknown" and meta.md["SerialNumberHint"] == "RC33AC09006956"


EXIFTOOL = shutil.which("exiftool")


@pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed: cross-check skipped")
def test_synthetic_notes_decode_like_the_installed_exiftool(tmp_path: Path) -> None:
    """Where exiftool is on the machine, it must read our synthetic notes as we do (it does not know
    MicroFire or HyperFire 4K before 12.8x, so those two are left out)."""
    cases = {
        "hf": B.jpeg(RECONYX, maker_note=B.hyperfire_note(celsius=-5, moon=7, trigger=b"E")),
        "hf3swap": B.jpeg({}, maker_note=B.hyperfire_note(firmware=(3, 0, 1), swap_date=True)),
        "uf": B.jpeg(RECONYX, maker_note=B.ultrafire_note(trigger=b"T", celsius=-12)),
        "h2": B.jpeg(RECONYX, maker_note=B.hyperfire2_note(label=b"LABEL  ")),
    }
    for name, data in cases.items():
        (tmp_path / f"{name}.jpg").write_bytes(data)
    run = subprocess.run([EXIFTOOL, "-json", "-G", *[str(tmp_path / f"{n}.jpg") for n in cases]],
                         capture_output=True, timeout=60)
    for (name, data), exiftool in zip(cases.items(), json.loads(run.stdout), strict=True):
        md = read_metadata(data, f"{name}.jpg").md
        tags = {k.split(":", 1)[1]: v for k, v in exiftool.items() if k.startswith("MakerNotes:")}
        assert len(tags) > 10
        for tag, value in tags.items():
            if tag == "DateTimeOriginal":
                continue
            assert md.get(tag) == (str(value) if tag == "SerialNumber" else value), (name, tag)
