"""EXIF values, GPS signs, dates, truncated and hostile input: the record never raises and stays small."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import piexif
import pytest

from animl_ingest_cli.metadata import iso_date, read_metadata
from animl_ingest_cli.metadata.exif import MAX_IFD_ENTRIES
from tests.metadata.builders import jpeg, jpeg_with_tiff, png, tiff, tiff_exif


def _gps(lat_ref: bytes, lon_ref: bytes, alt_ref: int | None = None,
         alt: tuple[int, int] = (1234, 10)) -> dict:
    gps = {piexif.GPSIFD.GPSLatitudeRef: lat_ref, piexif.GPSIFD.GPSLatitude: ((33, 1), (59, 1), (2212, 100)),
           piexif.GPSIFD.GPSLongitudeRef: lon_ref,
           piexif.GPSIFD.GPSLongitude: ((119, 1), (42, 1), (176, 100)),
           piexif.GPSIFD.GPSAltitude: alt}
    if alt_ref is not None:
        gps[piexif.GPSIFD.GPSAltitudeRef] = alt_ref
    return {"GPS": gps}


LAT = 33 + 59 / 60 + 22.12 / 3600
LON = 119 + 42 / 60 + 1.76 / 3600


@pytest.mark.parametrize("lat_ref,lon_ref,lat_sign,lon_sign", [
    (b"N", b"E", 1, 1), (b"S", b"W", -1, -1), (b"N", b"W", 1, -1), (b"S", b"E", -1, 1)])
def test_gps_signs(lat_ref: bytes, lon_ref: bytes, lat_sign: int, lon_sign: int) -> None:
    md = read_metadata(jpeg(_gps(lat_ref, lon_ref, 0)), "x.jpg").md
    assert md["GPSLatitude"] == pytest.approx(lat_sign * LAT, abs=1e-9)
    assert md["GPSLongitude"] == pytest.approx(lon_sign * LON, abs=1e-9)
    assert md["GPSLatitudeRef"] == ("North" if lat_sign > 0 else "South")
    json.dumps(md)


def test_gps_altitude_below_sea_level_is_negative() -> None:
    assert read_metadata(jpeg(_gps(b"N", b"E", 1)), "x.jpg").md["GPSAltitude"] == pytest.approx(-123.4)
    assert read_metadata(jpeg(_gps(b"N", b"E", 0)), "x.jpg").md["GPSAltitude"] == pytest.approx(123.4)
    zero = read_metadata(jpeg(_gps(b"N", b"E", 1, alt=(0, 1))), "x.jpg").md["GPSAltitude"]
    assert zero == 0 and str(zero) == "0.0", "no -0.0 in the record"


def test_gps_without_reference_is_unsigned_and_noted() -> None:
    gps = _gps(b"N", b"E", None)
    del gps["GPS"][piexif.GPSIFD.GPSLongitudeRef]
    meta = read_metadata(jpeg(gps), "x.jpg")
    assert meta.md["GPSLongitude"] == pytest.approx(LON)
    assert meta.md["GPSAltitude"] == pytest.approx(123.4)
    assert any("GPSLongitudeRef missing" in p for p in meta.problems)


def test_gps_zero_denominator_is_left_out() -> None:
    gps = {"GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: ((33, 0), (1, 1), (1, 1)),
                   piexif.GPSIFD.GPSAltitude: (5, 0)}}
    meta = read_metadata(jpeg(gps), "x.jpg")
    assert "GPSLatitude" not in meta.md and "GPSAltitude" not in meta.md
    assert meta.is_image and meta.md["errors"] == []


@pytest.mark.parametrize("raw,iso", [
    (b"2014:11:23 20:26:22", "2014-11-23T20:26:22.000Z"),
    (b"2014:11:23 20:26:22+02:00", "2014-11-23T20:26:22.000Z"),   # wall clock, offset ignored
    (b"0000:00:00 00:00:00", None),
    (b"2021:02:30 10:00:00", None),
    (b"    :  :     :  :  ", None),
    (b"garbage", None),
])
def test_date_time_original(raw: bytes, iso: str | None) -> None:
    meta = read_metadata(jpeg({"Exif": {piexif.ExifIFD.DateTimeOriginal: raw}}), "x.jpg")
    assert meta.md.get("DateTimeOriginal") == iso
    if iso is None:
        assert "DateTimeOriginal" not in meta.md
        assert any("DateTimeOriginal" in p for p in meta.problems)
    assert meta.md["errors"] == []


def test_iso_date_takes_only_strings() -> None:
    assert iso_date(20200101) is None and iso_date(None) is None


def test_print_conversions_match_exiftool() -> None:
    exif = {"0th": {piexif.ImageIFD.Orientation: 6, piexif.ImageIFD.XResolution: (72, 1),
                    piexif.ImageIFD.ResolutionUnit: 2},
            "Exif": {piexif.ExifIFD.ExposureTime: (1, 43), piexif.ExifIFD.FNumber: (28, 10),
                     piexif.ExifIFD.Flash: 0x19, piexif.ExifIFD.ISOSpeedRatings: 200,
                     piexif.ExifIFD.ExposureBiasValue: (-2, 3), piexif.ExifIFD.FocalLength: (50, 10),
                     piexif.ExifIFD.ComponentsConfiguration: b"\x01\x02\x03\x00",
                     piexif.ExifIFD.ExifVersion: b"0230", piexif.ExifIFD.SubjectDistance: (1, 0),
                     piexif.ExifIFD.DeviceSettingDescription: b"\x00\x01\x02\x03",
                     piexif.ExifIFD.MeteringMode: 42, piexif.ExifIFD.UserComment: b"ASCII\0\0\0hello"}}
    md = read_metadata(jpeg(exif), "x.jpg").md
    assert md["Orientation"] == "Rotate 90 CW"
    # Pillow writes a JFIF segment (1 dot per unit) before EXIF: first non-empty wins, as in exiftool
    assert md["XResolution"] == 1 and md["ResolutionUnit"] == "None"
    assert md["ExposureTime"] == "1/43" and md["FNumber"] == 2.8
    assert md["Flash"] == "Auto, Fired" and md["ISO"] == 200
    assert md["ExposureCompensation"] == "-2/3" and md["FocalLength"] == "5.0 mm"
    assert md["ComponentsConfiguration"] == "Y, Cb, Cr, -"
    assert md["ExifVersion"] == "0230"
    assert md["SubjectDistance"] == "inf"
    assert md["DeviceSettingDescription"] == "(Binary data 4 bytes, use -b option to extract)"
    assert md["MeteringMode"] == "Unknown (42)"
    assert md["UserComment"] == "hello"


def test_thumbnail_is_a_placeholder_not_bytes() -> None:
    thumb = jpeg(size=(16, 12))
    exif = {"0th": {piexif.ImageIFD.Make: b"CAM"}, "1st": {piexif.ImageIFD.Compression: 6},
            "thumbnail": thumb}
    md = read_metadata(jpeg(exif), "x.jpg").md
    assert 0 < md["ThumbnailLength"] <= len(thumb)  # piexif drops the thumbnail's JFIF segment
    assert md["ThumbnailImage"] == f"(Binary data {md['ThumbnailLength']} bytes, use -b option to extract)"
    assert md["Compression"] == "JPEG (old-style)"
    assert len(json.dumps(md)) < 4000


def test_png_exif() -> None:
    tiff = tiff_exif({"0th": {piexif.ImageIFD.Make: b"PNGCAM"},
                      "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2021:05:04 03:02:01"}})
    meta = read_metadata(png(size=(320, 240), exif_tiff=tiff), "x.png")
    assert meta.is_image and meta.md["Make"] == "PNGCAM"
    assert meta.md["DateTimeOriginal"] == "2021-05-04T03:02:01.000Z"
    assert (meta.md["ImageWidth"], meta.md["ImageHeight"], meta.md["ColorType"]) == (320, 240, "RGB")


def test_stream_size_wins_over_exif_size() -> None:
    exif = {"0th": {piexif.ImageIFD.ImageWidth: 3840, piexif.ImageIFD.ImageLength: 2160},
            "Exif": {piexif.ExifIFD.PixelXDimension: 3840, piexif.ExifIFD.PixelYDimension: 2160}}
    md = read_metadata(jpeg(exif, size=(300, 169)), "x.jpg").md
    assert (md["ImageWidth"], md["ImageHeight"]) == (300, 169)
    assert md["ExifImageWidth"] == 3840


def test_browning_json_maker_note_is_only_a_hint() -> None:
    note = (b'{"maker":"Browning","model":"BTC-6PX","camera_name":"    167BWS",'
            b'"serial_number":" 4569999999995PX ","moon_phase":8}')
    meta = read_metadata(jpeg({"0th": {piexif.ImageIFD.Make: b"Browning"}}, maker_note=note), "x.jpg")
    assert meta.md["SerialNumber"] == "unknown"
    assert meta.md["SerialNumberHint"] == "4569999999995PX"
    assert "Browning" in meta.md["SerialNumberHintSource"]
    assert meta.md["MakerNoteUnknownText"].startswith("(Binary data")


def test_cuddelink_user_comment_id_is_only_a_hint() -> None:
    comment = b"MR=C.1,AD=4/15/2023,LD=199,ID=WAI SAT 01-09,LO=009"
    meta = read_metadata(jpeg({"Exif": {piexif.ExifIFD.UserComment: comment}}), "x.jpeg")
    assert meta.md["UserComment"] == comment.decode()
    assert meta.md["SerialNumber"] == "unknown" and meta.md["SerialNumberHint"] == "WAI SAT 01-09"
    assert any("'WAI SAT 01-09'" in p for p in meta.problems)


# -- truncated and hostile input ----------------------------------------------------------------

def test_truncated_scan_data_still_has_size_and_tags() -> None:
    data = jpeg({"0th": {piexif.ImageIFD.Make: b"RECONYX"}}, size=(640, 480))
    cut = data[: len(data) * 2 // 3]
    meta = read_metadata(cut, "x.jpg")
    assert meta.is_image and (meta.md["ImageWidth"], meta.md["ImageHeight"]) == (640, 480)
    assert meta.md["Make"] == "RECONYX" and meta.md["errors"] == []


def test_file_cut_before_the_frame_header_is_corrupt() -> None:
    data = jpeg({"0th": {piexif.ImageIFD.Make: b"RECONYX"}})
    sof = data.index(b"\xff\xc0")
    meta = read_metadata(data[:sof], "x.jpg")
    assert not meta.is_image
    assert meta.md["errors"] == ["corrupt image file: JPEG image size unreadable"]
    assert meta.md["Make"] == "RECONYX", "what could be read is still there"


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 20, 60, 200])
def test_every_short_prefix_is_handled(cut: int) -> None:
    data = jpeg({"0th": {piexif.ImageIFD.Make: b"X" * 100}, "Exif": {piexif.ExifIFD.UserComment: b"y" * 300}})
    meta = read_metadata(data[:cut], "x.jpg")
    assert not meta.is_image and meta.md["errors"]
    json.dumps(meta.md)


def _app1_jpeg(tiff: bytes) -> bytes:
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, 10, 10, 3) + bytes([1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1])
    app1 = b"Exif\0\0" + tiff
    return b"\xff\xd8\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + sof + b"\xff\xda\x00\x02\xff\xd9"


def _tiff(entries: list[tuple[int, int, int, int]], extra: bytes = b"", count: int | None = None) -> bytes:
    n = len(entries) if count is None else count
    ifd = struct.pack("<H", n) + b"".join(struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", 8) + ifd + extra


def test_hostile_entry_count_is_refused_quickly() -> None:
    meta = read_metadata(_app1_jpeg(_tiff([(0x010F, 2, 4, 0)], count=65535)), "x.jpg")
    assert meta.is_image and meta.md["Make"] == "unknown"
    assert any(f"more than {MAX_IFD_ENTRIES}" in p for p in meta.problems)


def test_hostile_overlapping_values_keep_md_bounded_and_fast() -> None:
    n = 900
    blob_at = 8 + 2 + 12 * n + 4
    entries = [(0x010E if i == 0 else 0x9000 + i, 2, 40_000, blob_at) for i in range(n)]
    data = _app1_jpeg(_tiff(entries, b"A" * 40_000))
    start = time.perf_counter()
    meta = read_metadata(data, "x.jpg")
    assert time.perf_counter() - start < 0.5
    assert meta.is_image and len(json.dumps(meta.md)) < 20_000
    assert len(meta.md["ImageDescription"]) == 8192, "long text is cut"


def test_hostile_png_exif_is_bounded() -> None:
    n = 999
    blob_at = 8 + 2 + 12 * n + 4
    entries = [(0x9000 + i, 2, 50_000, blob_at) for i in range(n)]
    meta = read_metadata(png(exif_tiff=_tiff(entries, b"B" * 50_000)), "x.png")
    assert meta.is_image and len(json.dumps(meta.md)) < 20_000


def test_not_a_tiff_header_and_ifd_loops() -> None:
    bad = read_metadata(_app1_jpeg(b"XX*\0garbage"), "x.jpg")
    assert bad.is_image and any("TIFF header" in p for p in bad.problems)
    loop = _tiff([(0x010F, 2, 4, 0x00414141), (0x8769, 4, 1, 8), (0x8825, 4, 1, 8)])
    meta = read_metadata(_app1_jpeg(loop), "x.jpg")
    assert meta.is_image and meta.md["Make"] == "AAA"


@pytest.mark.parametrize("body", [b"\xff" * 4_000_000, b"\xff\xfe\x00\x02" * 1_000_000])
def test_hostile_jpeg_structure_is_cut_short(body: bytes) -> None:
    start = time.perf_counter()
    meta = read_metadata(b"\xff\xd8" + body, "x.jpg")
    assert time.perf_counter() - start < 0.5
    assert not meta.is_image and "corrupt" in meta.md["errors"][0]


def test_threads_get_the_same_records_as_one_reader() -> None:
    from concurrent.futures import ThreadPoolExecutor

    def warning_jpeg(i: int) -> bytes:  # Make inline, then a value beyond the end: Pillow warns
        make = struct.unpack("<I", f"C{i:02d}".encode() + b"\0")[0]
        return _app1_jpeg(_tiff([(0x010F, 2, 4, make), (0x0110, 2, 10, 60_000)]))

    inputs = [warning_jpeg(i) for i in range(40)] * 5
    alone = [read_metadata(d, "x.jpg") for d in inputs]
    assert alone[7].md["Make"] == "C07" and any("Truncated" in p for p in alone[7].problems)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so that shared warning state would show
    try:
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda d: read_metadata(d, "x.jpg"), inputs))
    finally:
        sys.setswitchinterval(interval)
    assert [m.md for m in together] == [m.md for m in alone]
    assert [m.problems for m in together] == [m.problems for m in alone]


DUPLICATES = jpeg_with_tiff(tiff([(0x829A, 5, (2567, 10)), (0xA002, 4, 3840), (0x0112, 3, 1)],
                                 [(0x829A, 5, (1, 50)), (0xA002, 4, 160), (0x0112, 3, 3)]))


def test_duplicate_tags_resolve_as_exiftool_does() -> None:
    """Measured with exiftool 12.57: the later duplicate wins (the Exif IFD is read where its pointer
    sits in IFD0), except tags exiftool gives priority 0 (Orientation...), where the first stays."""
    md = read_metadata(DUPLICATES, "x.jpg").md
    assert md["ExposureTime"] == "1/50"        # IFD0 0x829A, then the Exif IFD's: the later wins
    assert md["ExifImageWidth"] == 3840        # Exif IFD's, then IFD0's 0xA002 after the pointer
    assert md["Orientation"] == "Horizontal (normal)"  # priority 0: the first stays


def test_unknown_values_print_like_exiftool() -> None:
    exif = [(0x9209, 3, 0x3EA4), (0xA001, 3, 0xFF), (0x9207, 3, 42), (0x920A, 5, (5, 0)), (0x9202, 5, (1, 0))]
    md = read_metadata(jpeg_with_tiff(tiff([], exif)), "x.jpg").md
    assert md["Flash"] == "Unknown (0x3ea4)" and md["ColorSpace"] == "Unknown (0xff)"
    assert md["MeteringMode"] == "Unknown (42)"
    assert md["FocalLength"] == "Inf mm" and md["ApertureValue"] == "Inf"


EXIFTOOL = shutil.which("exiftool")


@pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed: cross-check skipped")
def test_exif_group_matches_the_installed_exiftool(tmp_path: Path) -> None:
    """Where exiftool is on the machine: every EXIF tag it prints for these files, we print alike."""
    files = {"dup": DUPLICATES,
             "gps": jpeg(_gps(b"S", b"W", 1)),
             "mixed": jpeg({
                 "0th": {piexif.ImageIFD.Make: b"G4       ", piexif.ImageIFD.Copyright: b"me \0ed  "},
                 "Exif": {piexif.ExifIFD.ExposureBiasValue: (1, 3), piexif.ExifIFD.Flash: 0x59,
                          piexif.ExifIFD.UserComment: b"UNICODE\0h\0i\0",
                          piexif.ExifIFD.LensSpecification: ((18, 1), (55, 1), (35, 10), (56, 10))},
                 "GPS": {piexif.GPSIFD.GPSTimeStamp: ((17, 1), (17, 1), (5865, 100)),
                         piexif.GPSIFD.GPSDateStamp: b"2016:09:28"}})}
    for name, data in files.items():
        (tmp_path / f"{name}.jpg").write_bytes(data)
    run = subprocess.run([EXIFTOOL, "-json", "-G", *[str(tmp_path / f"{n}.jpg") for n in files]],
                         capture_output=True, timeout=60)
    for (name, data), exiftool in zip(files.items(), json.loads(run.stdout), strict=True):
        md = read_metadata(data, f"{name}.jpg").md
        for key, value in exiftool.items():
            group, _, tag = key.partition(":")
            if group != "EXIF" or value == "" or tag in ("GPSLatitude", "GPSLongitude", "GPSAltitude",
                                                         "XResolution", "YResolution", "ResolutionUnit"):
                continue  # GPS is signed on purpose; JFIF's resolution comes first in the record
            assert md.get(tag) == value, (name, tag)
