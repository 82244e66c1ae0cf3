"""Every JPEG layout of issue 14 against exiftool 12.57's recorded answer (tests/metadata/oracle).

The layouts are built from bytes by tests/metadata/layouts.py; `python -m tests.metadata.record_oracle`
ran exiftool on the same bytes. For each layout the record must hold what the Node ingest made of
exiftool's JSON (group prefixes stripped, first non-empty value per name) for every tag of the groups
this reader reads, apart from the explicit, documented choices in `CHOICES` (docs/metadata.md).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from animl_ingest_cli.metadata import FileMetadata, read_metadata
from tests.metadata.layouts import LAYOUTS, build

ORACLE_FILE = Path(__file__).with_name("oracle") / "layouts.json"
ORACLE: dict[str, Any] = json.loads(ORACLE_FILE.read_text(encoding="utf-8"))
READ_GROUPS = {"File", "JFIF", "EXIF", "MakerNotes", "XMP", "PNG", "Composite"}
NOT_IN_RECORD = {"FileName", "Directory", "SourceFile"}   # the ingest adds FileName itself
IMAGE_TYPES = {"JPEG", "MPO", "THM", "JPS", "INSP", "PNG", "APNG", "MNG", "JNG"}

# Where the record differs from exiftool's view on purpose (docs/metadata.md, "Choices").
CHOICES: dict[str, dict[str, Any]] = {
    # a DateTimeOriginal with a zone or sub-seconds after the seconds keeps its wall clock
    "date_with_zone": {"DateTimeOriginal": "2010-10-10T10:10:10.000Z"},
    "xmp_date_forms": {"DateTimeOriginal": "2019-03-04T05:06:07.000Z"},
}


def exiftool_view(answer: dict[str, Any]) -> dict[str, Any]:
    """The Node ingest's view of exiftool's JSON, for the groups this reader reads."""
    view: dict[str, Any] = {}
    for key, value in answer.items():
        group, _, name = key.rpartition(":")
        if group not in READ_GROUPS or name in NOT_IN_RECORD:
            continue
        if name not in view and value not in ("", None):
            view[name] = value
    return view


def expected_record(view: dict[str, Any], answer: dict[str, Any], file_name: str) -> dict[str, Any]:
    """The normalised fields (docs/animl.md, The record the ingest sends) from exiftool's view, written
    independently."""
    want = dict(view)
    want.setdefault("Make", "unknown")
    want["SerialNumber"] = "unknown" if "SerialNumber" not in view else str(view["SerialNumber"])
    date = view.get("DateTimeOriginal")
    want.pop("DateTimeOriginal", None)
    m = re.fullmatch(r"(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})", str(date))
    if m and m.group(1) != "0000":
        want["DateTimeOriginal"] = "{}-{}-{}T{}:{}:{}.000Z".format(*m.groups())
    if answer.get("File:FileType") not in IMAGE_TYPES or "File:ImageWidth" not in answer and \
            "PNG:ImageWidth" not in answer:
        want.pop("ImageWidth", None)
        want.pop("ImageHeight", None)
    if "File:FileTypeExtension" not in answer:  # nothing from the content: the name decides
        want["FileTypeExtension"] = Path(file_name).suffix.lower().lstrip(".")
        want["MIMEType"] = "image/jpeg"
    return want


LAYOUT_NAMES = sorted(ORACLE["layouts"])


def test_oracle_is_exiftool_1257_and_covers_every_layout() -> None:
    assert ORACLE["exiftool"] == "12.57"
    assert set(LAYOUT_NAMES) == set(LAYOUTS), "record it again: python -m tests.metadata.record_oracle"
    assert len({file_name for file_name, _ in LAYOUTS.values()}) == len(LAYOUTS)


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_layout_reads_as_exiftool(name: str) -> None:
    entry = ORACLE["layouts"][name]
    file_name, data = build(name)
    assert file_name == entry["file"]
    meta = read_metadata(data, file_name)
    md = json.loads(json.dumps(meta.md))
    want = expected_record(exiftool_view(entry["json"]), entry["json"], file_name)
    want.update(CHOICES.get(name, {}))
    mismatches = {k: {"exiftool": v, "ours": md.get(k)} for k, v in want.items() if md.get(k) != v}
    assert not mismatches
    assert isinstance(md["SerialNumber"], str)
    if entry["json"].get("ExifTool:Warning") == "JPEG format error":
        assert any("JPEG format error" in p for p in meta.problems)


# -- the findings, one by one (the oracle holds the values; these say what they mean) -----------

def _read(name: str) -> FileMetadata:
    file_name, data = build(name)
    return read_metadata(data, file_name)


def _md(name: str) -> dict[str, Any]:
    return _read(name).md


def test_later_exif_segment_wins_and_fills_gaps() -> None:
    later = _md("two_exif_disagree")
    assert (later["Make"], later["SerialNumber"]) == ("CAM-B", "SN-B-0002")
    both = _md("two_exif_second_adds_serial")
    assert (both["Make"], both["SerialNumber"]) == ("CAM-A", "SN-ONLY-IN-2")
    assert _md("two_exif_second_blank_make")["Make"] == "unknown", "a blank later Make replaces the first"


def test_xmp_counts_where_its_segment_comes_first_or_exif_lacks_the_tag() -> None:
    first = _md("xmp_then_exif")
    assert (first["Make"], first["SerialNumber"]) == ("XMP-MAKE", "XMP-SN-7")
    assert first["DateTimeOriginal"] == "2021-06-07T08:09:10.000Z"
    after = _md("exif_then_xmp")
    assert (after["Make"], after["SerialNumber"]) == ("CAM-A", "XMP-SN-7")
    assert after["DateTimeOriginal"] == "2020-01-02T03:04:05.000Z"
    assert _md("exif_xmp_exif")["Make"] == "CAM-B", "the EXIF group is placed by its first segment"
    assert _md("xmp_lang_alt_and_body_serial")["SerialNumber"] == "BODY-SN-3"
    assert _md("two_xmp")["SerialNumber"] == "XMP-SN-7", "XMP tags have priority 0: the first stays"


def test_cut_off_inside_a_segment_yields_only_the_error() -> None:
    for name in ("truncated_in_exif", "exif_segment_overruns_file", "ends_after_exif",
                 "truncated_in_xmp_after_exif"):
        meta = _read(name)
        assert meta.md["Make"] == "unknown" and meta.md["SerialNumber"] == "unknown", name
        assert not meta.is_image and meta.md["errors"], name
    assert _md("truncated_in_xmp_after_exif_and_comment")["Make"] == "CAM-B"


def test_stored_type_decides_how_a_value_prints() -> None:
    assert _md("make_as_byte")["Make"] == "66 89 84 69 67 65 77 0"
    assert _md("make_as_undefined")["Make"] == "UNDEFCAM"
    assert _md("make_as_short")["Make"] == "67 65 77"
    assert _md("serial_as_long")["SerialNumber"] == "123456"
    for name in ("date_slashes", "date_dashes", "date_iso_t"):
        assert "DateTimeOriginal" not in _md(name), name


@pytest.mark.parametrize("name,comment", [
    ("uc_unicode_le_in_mm", "Microsoft wrote this"), ("uc_unicode_be_in_ii", "Backwards text"),
    ("uc_unicode_trailing", "pad"), ("uc_unicode_surrogates", "deer \U0001F98C"),
    ("uc_jis_in_ii", "鹿のカメラ"), ("uc_jis_in_mm", "鹿のカメラ"),
    ("uc_jis_shift_jis_bytes", "궎첂䪃膃覃"),  # Shift-JIS bytes are no JIS X 0208: what exiftool prints
])
def test_user_comment_charsets(name: str, comment: str) -> None:
    assert _md(name)["UserComment"] == comment


def test_file_type_by_name() -> None:
    assert _md("mpf_named_jpg")["FileTypeExtension"] == "jpg"
    mpo = _md("jpeg_named_mpo")
    assert (mpo["FileTypeExtension"], mpo["MIMEType"]) == ("mpo", "image/jpeg")
    assert _md("jpeg_named_jps")["MIMEType"] == "image/x-jps"
    assert _md("png_named_mng")["MIMEType"] == "video/mng"
    assert _md("jpeg_named_png")["FileTypeExtension"] == "jpg"


EXIFTOOL = shutil.which("exiftool")


@pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed: cross-check skipped")
def test_recorded_oracle_is_what_the_installed_exiftool_says() -> None:
    """Where exiftool 12.57 is installed: it still gives the recorded answer for today's bytes."""
    from tests.metadata.record_oracle import exiftool_version, run_exiftool

    if exiftool_version() != "12.57":
        pytest.skip("the installed exiftool is not 12.57")
    built = {name: build(name) for name in LAYOUT_NAMES}
    answers = run_exiftool(dict(built.values()), one_run=True)
    skip = {"File:FileSize", "Composite:Megapixels", "Composite:ImageSize", "File:ImageWidth",
            "File:ImageHeight", "File:EncodingProcess", "File:YCbCrSubSampling", "File:ColorComponents"}
    for name, (file_name, _) in built.items():
        recorded = {k: v for k, v in ORACLE["layouts"][name]["json"].items() if k not in skip}
        live = {k: v for k, v in answers[file_name]["json"].items() if k not in skip}
        assert live == recorded, name
