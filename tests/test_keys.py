"""Key layouts of docs/animl.md (Keys)."""

from __future__ import annotations

import pytest

from animl_ingest_cli import keys

UUID = "0d6c4d5e-1b8a-4c4e-9f55-2a1b3c4d5e6f"


@pytest.mark.parametrize("raw,key", [
    ("IMG+0001.JPG", "IMG 0001.JPG"),
    ("a%2Bb.jpg", "a+b.jpg"),
    ("caf%C3%A9+%E2%98%83.jpg", "café ☃.jpg"),
    (f"batch-{UUID}/deep/dir/x%20y.png", f"batch-{UUID}/deep/dir/x y.png"),
])
def test_event_keys_are_decoded_plus_first(raw: str, key: str) -> None:
    assert keys.decode_event_key(raw) == key


def test_file_name_lowercases_only_the_extension() -> None:
    assert keys.file_name("dir/IMG_0001.JPG") == "IMG_0001.jpg"
    assert keys.file_name("Trail Cam+1.JpEg") == "Trail Cam+1.jpeg"


@pytest.mark.parametrize("key,kind", [("a.JPG", "image"), ("a.jpeg", "image"), ("a.PNG", "image"),
                                      ("batch-x.zip", "batch"), ("a.tif", "unsupported"),
                                      ("noext", "unsupported")])
def test_kind(key: str, kind: str) -> None:
    assert keys.kind(key) == kind


def test_batch_id_and_path() -> None:
    key = f"batch-{UUID}/cam 1/IMG_1.JPG"
    assert keys.batch_id(key) == f"batch-{UUID}"
    assert keys.batch_path(key, keys.batch_id(key)) == "cam 1/IMG_1.JPG"
    assert keys.batch_id(f"batch-{UUID}.zip") == f"batch-{UUID}"
    assert keys.batch_id("IMG_1.JPG") is None
    assert keys.batch_id(f"batch-{UUID.upper()}/x.jpg") is None  # uuid is lower-case hex
    assert keys.batch_id(f"batch-{UUID}x/x.jpg") is None


def test_serving_keys_keep_the_colon_of_the_image_id() -> None:
    assert keys.serving_keys("proj:abc", "jpg") == {
        "original": "original/proj:abc-original.jpg",
        "medium": "medium/proj:abc-medium.jpg",
        "small": "small/proj:abc-small.jpg"}


@pytest.mark.parametrize("errors,folder", [
    (["E11000 duplicate key error collection"], "DUPLICATE_IMAGE"),
    (["Unknown Serial Number", "E11000 dup"], "DUPLICATE_IMAGE"),
    (["Unknown Serial Number", "Unknown DateTimeOriginal"], "MULTIPLE_ERRORS"),
    (["corrupt image file: not a JPEG"], "CORRUPTED_IMAGE_FILE"),
    (["Image is CORRUPT"], "CORRUPTED_IMAGE_FILE"),
    ([""], "UNKNOWN_ERROR"),
    ([], "UNKNOWN_ERROR"),
    (["Image Size Exceed 8 MB"], "Image Size Exceed 8 MB"),
    (["Unknown  Serial\nNumber"], "Unknown Serial Number"),
    (["Forbidden"], "Forbidden"),
    (["animl-api timed out"], "API_TIMEOUT"),
    (["animl-api unreachable: [Errno 111] Connection refused"], "API_UNREACHABLE"),
    # anything else is the detail (metadata), never a folder name
    (["a/b/c failed"], "UNKNOWN_ERROR"),
    (["CopyObject s3://serving/original/p:1-original.jpg: NoSuchBucket"], "UNKNOWN_ERROR"),
    (["é" * 500], "UNKNOWN_ERROR"),
])
def test_dead_letter_folder(errors: list[str], folder: str) -> None:
    assert keys.dead_letter_folder(errors) == folder
    assert folder in keys.DEAD_LETTER_FOLDERS


def test_an_unknown_api_error_has_its_own_folder() -> None:
    assert keys.dead_letter_folder(["<html>Bad Gateway</html>"], unknown=keys.API_ERROR) == "API_ERROR"
    with pytest.raises(ValueError):
        keys.dead_letter_folder(["x"], unknown="not a folder")


def test_every_folder_is_one_plain_path_segment() -> None:
    for folder in keys.DEAD_LETTER_FOLDERS:
        assert "/" not in folder and folder == " ".join(folder.split()) and folder.isascii()
        assert not keys.is_reserved(folder + "/")


@pytest.mark.parametrize("key", [".animl-moving/a.jpg", ".animl-key/b.jpg", ".animl-key/.animl-key/c.jpg",
                                 "a.jpg", "cam/.animl-moving/d.jpg"])
def test_park_keys_escape_reserved_prefixes_and_come_back(key: str) -> None:
    parked = keys.park_key(key)
    assert not parked.startswith(keys.STAGING_PREFIX)
    assert keys.unpark_key(parked) == key
    assert (parked == key) == (not keys.is_reserved(key))


def test_dead_letter_key_suffix_goes_before_the_extension() -> None:
    assert keys.dead_letter_key("X", None, "a.b.jpg") == "X/UNKNOWN_ID/a.b.jpg"
    assert keys.dead_letter_key("X", "p:1", "a.b.jpg", 3) == "X/p:1/a.b-3.jpg"
