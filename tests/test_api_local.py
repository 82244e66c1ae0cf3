"""The local stage's catalog: animl-api's createImage rules, projects, duplicates, many writers."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from animl_ingest_cli.api_local import DEFAULT_PROJECT, LocalApi
from animl_ingest_cli.api_rules import check_md, duplicate_text, normalise_key
from animl_ingest_cli.errors import ApiError


def md_for(content: bytes = b"pixels", **extra: object) -> dict:
    md = {"Bucket": "animl-images-ingestion-local", "Key": "IMG_0001.JPG", "FileName": "IMG_0001.jpg",
          "batchId": None, "errors": [], "FileTypeExtension": "jpg", "MIMEType": "image/jpeg",
          "DateTimeOriginal": "2023-01-02T03:04:05.000Z", "Make": "BuckEyeCam", "Model": "X80",
          "SerialNumber": "SN-1", "Hash": hashlib.md5(content).hexdigest(), "ImageBytes": len(content),
          "Path": None, "ProdBucket": "animl-images-serving-local"}
    md.update(extra)
    return md


@pytest.fixture
def api(tmp_path: Path) -> Iterator[LocalApi]:
    catalog = LocalApi(tmp_path / "catalog.sqlite")
    yield catalog
    catalog.close()


@pytest.mark.parametrize("key,expected", [
    ("SerialNumber", "serialNumber"), ("FileName", "fileName"), ("MIMEType", "MIMEType"),
    ("GPSLatitude", "GPSLatitude"), ("batchId", "batchId"), ("errors", "errors"),
    ("X", "X"), ("A1", "A1"), ("Hash", "hash"), ("ImageBytes", "imageBytes"),
])
def test_key_normalisation(key: str, expected: str) -> None:
    assert normalise_key(key) == expected


def test_success_records_the_image(api: LocalApi) -> None:
    md = md_for(Path="sub/IMG_0001.jpg")
    attempt = api.create_image(md)
    assert attempt.ok and attempt.image_id == f"{DEFAULT_PROJECT}:{md['Hash']}"
    (image,) = api.images()
    assert image["_id"] == attempt.image_id and image["project"] == DEFAULT_PROJECT
    assert (image["serial"], image["fileName"], image["path"], image["dateTimeOriginal"]) == (
        "SN-1", "IMG_0001.jpg", "sub/IMG_0001.jpg", "2023-01-02T03:04:05.000Z")
    assert (image["make"], image["model"], image["imageBytes"], image["batch"]) == (
        "BuckEyeCam", "X80", 6, None)
    assert image["created"].endswith("Z") and image["md"] == md
    assert api.image_errors() == []


def test_validation_errors_in_animl_api_order(api: LocalApi) -> None:
    md = md_for(SerialNumber="", ImageBytes=8_000_000, errors=["Corrupt image: cannot decode", 7])
    del md["DateTimeOriginal"]
    attempt = api.create_image(md)
    assert attempt.errors == ["Corrupt image: cannot decode", "Unknown Serial Number",
                              "Unknown DateTimeOriginal", "Image Size Exceed 8 MB"]
    assert attempt.image_id == f"{DEFAULT_PROJECT}:{md['Hash']}"
    assert api.images() == []
    errors = api.image_errors()
    assert [e["error"] for e in errors] == attempt.errors
    assert {e["image"] for e in errors} == {attempt.image_id}
    assert {e["path"] for e in errors} == {"IMG_0001.jpg"}  # path, else fileName


@pytest.mark.parametrize("serial,size,ok", [
    ("unknown", 10, False), ("", 10, False), (12345, 10, True), ("SN", 7_999_999, True),
    ("SN", "8000000", False), ("SN", None, True),
])
def test_serial_and_size_rules(api: LocalApi, serial: object, size: object, ok: bool) -> None:
    assert api.create_image(md_for(SerialNumber=serial, ImageBytes=size)).ok is ok


@pytest.mark.parametrize("key", ["SerialNumber", "Hash"])
def test_required_keys_raise_like_a_graphql_error(api: LocalApi, key: str) -> None:
    md = md_for()
    del md[key]
    with pytest.raises(ApiError, match=key[0].lower() + key[1:]) as info:
        api.create_image(md)
    assert not info.value.transient
    assert api.images() == [] and api.image_errors() == []


def test_lower_case_keys_are_taken_as_they_are() -> None:
    checked = check_md({"serialNumber": "A", "hash": "h", "dateTimeOriginal": "2020-01-01T00:00:00.000Z"})
    assert checked.errors == [] and checked.camera_id == "A"


def test_duplicate_in_one_project(api: LocalApi) -> None:
    first = api.create_image(md_for())
    second = api.create_image(md_for(Key="copy.jpg", FileName="copy.jpg"))
    assert second.image_id == first.image_id
    assert second.errors == [duplicate_text(first.image_id)]
    assert duplicate_text("p:1") == ('E11000 duplicate key error collection: animl.images index: _id_ '
                                     'dup key: { _id: "p:1" }')
    assert len(api.images()) == 1


def test_failed_attempt_does_not_block_a_later_valid_one(api: LocalApi) -> None:
    """animl-api only refuses a second *image* record; an attempt with errors made none."""
    assert not api.create_image(md_for(SerialNumber="unknown")).ok
    assert api.create_image(md_for()).ok


def test_wireless_project_comes_from_the_camera_registration(api: LocalApi) -> None:
    api.register_camera("SN-7", "sci_biosecurity")
    attempt = api.create_image(md_for(b"a", SerialNumber="SN-7"))
    assert attempt.image_id == f"sci_biosecurity:{hashlib.md5(b'a').hexdigest()}"
    # the same bytes from an unregistered camera are another image in another project
    other = api.create_image(md_for(b"a", SerialNumber="SN-8"))
    assert other.ok and other.image_id.startswith(f"{DEFAULT_PROJECT}:")


def test_new_wireless_camera_is_registered_on_success_only(api: LocalApi) -> None:
    api.create_image(md_for(b"x", SerialNumber="NEW-1", DateTimeOriginal=None))
    assert [c["serial"] for c in api.cameras()] == []
    api.create_image(md_for(b"y", SerialNumber="NEW-1"))
    (camera,) = api.cameras()
    assert (camera["serial"], camera["project"], camera["make"]) == ("NEW-1", DEFAULT_PROJECT, "BuckEyeCam")


def test_batch_images_take_the_batch_project(api: LocalApi) -> None:
    api.register_camera("SN-1", "wireless_project")  # ignored for batch images
    api.register_batch("batch-aaaa", "island_foxes")
    attempt = api.create_image(md_for(batchId="batch-aaaa"))
    assert attempt.image_id.startswith("island_foxes:")
    unknown = api.create_image(md_for(b"other", batchId="batch-bbbb"))
    assert unknown.image_id.startswith(f"{DEFAULT_PROJECT}:")
    assert {i["batch"] for i in api.images()} == {"batch-aaaa", "batch-bbbb"}


def test_batch_override_serial_replaces_the_camera_serial(api: LocalApi) -> None:
    api.register_batch("batch-cccc", "p2", override_serial="OVR-9")
    attempt = api.create_image(md_for(SerialNumber="unknown", batchId="batch-cccc"))
    assert attempt.ok
    assert api.images()[0]["serial"] == "OVR-9"


def test_update_batch_upserts_and_keeps_the_project(api: LocalApi) -> None:
    api.register_batch("batch-dddd", "p3")
    api.update_batch({"_id": "batch-dddd", "total": 10, "processingStart": "2024-01-01T00:00:00.000Z"})
    api.update_batch({"_id": "batch-dddd", "total": 12})
    api.update_batch({"_id": "batch-eeee", "uploadComplete": "2024-01-01T00:00:00.000Z"})
    batches = {b["_id"]: b for b in api.batches()}
    assert batches["batch-dddd"]["project"] == "p3"
    assert batches["batch-dddd"]["fields"] == {"total": 12, "processingStart": "2024-01-01T00:00:00.000Z"}
    assert batches["batch-eeee"]["project"] is None
    with pytest.raises(ApiError, match="_id"):
        api.update_batch({"total": 1})


def test_image_and_batch_errors_are_recorded(api: LocalApi) -> None:
    api.create_image_error("resize failed", "default_project:abc", None)
    api.create_image_error("copy failed", "p:def", "batch-1")
    api.create_batch_error("unzip failed", "batch-1")
    assert [(e["error"], e["image"], e["batch"]) for e in api.image_errors()] == [
        ("resize failed", "default_project:abc", None), ("copy failed", "p:def", "batch-1")]
    assert [(e["error"], e["batch"]) for e in api.batch_errors()] == [("unzip failed", "batch-1")]


def test_one_catalog_file_is_shared_by_two_objects(tmp_path: Path) -> None:
    a, b = LocalApi(tmp_path / "c.sqlite"), LocalApi(tmp_path / "c.sqlite")
    assert a.create_image(md_for()).ok
    assert "E11000" in b.create_image(md_for()).errors[0]
    a.close()
    b.close()


def test_threads_race_for_one_image(api: LocalApi) -> None:
    with ThreadPoolExecutor(8) as pool:
        attempts = list(pool.map(lambda _: api.create_image(md_for()), range(16)))
    assert sum(a.ok for a in attempts) == 1
    assert sum("E11000" in "".join(a.errors) for a in attempts) == 15
    api.close()  # closes the pool threads' connections too
    assert api.images()[0]["serial"] == "SN-1"  # and a new one opens on demand


def test_processes_share_the_catalog(tmp_path: Path) -> None:
    """Four processes each create 20 images; half of the bytes are the same in every process."""
    db = tmp_path / "shared.sqlite"
    LocalApi(db).close()
    script = textwrap.dedent(f"""
        import hashlib, sys
        from animl_ingest_cli.api_local import LocalApi
        api = LocalApi({str(db)!r})
        ok = 0
        for i in range(20):
            data = f"common {{i}}" if i % 2 else f"own {{sys.argv[1]}} {{i}}"
            md = {{"SerialNumber": "S", "Hash": hashlib.md5(data.encode()).hexdigest(),
                   "DateTimeOriginal": "2024-01-01T00:00:00.000Z"}}
            ok += api.create_image(md).ok
        print(ok)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(n)], stdout=subprocess.PIPE, text=True)
             for n in range(4)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    successes = sum(int(o) for o in outs)
    api = LocalApi(db)
    assert successes == len(api.images()) == 4 * 10 + 10  # own images, plus each common one once
    assert sum("E11000" in e["error"] for e in api.image_errors()) == 3 * 10
    api.close()
