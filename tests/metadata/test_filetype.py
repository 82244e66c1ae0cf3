"""File typing by magic bytes, named as exiftool names it."""

from __future__ import annotations

import io

from PIL import Image

from animl_ingest_cli.metadata import read_metadata
from animl_ingest_cli.metadata.filetype import detect
from tests.metadata.builders import jpeg, png


def test_png_named_jpg_is_a_png() -> None:
    meta = read_metadata(png(size=(31, 17)), "camera.jpg")
    assert meta.is_image
    assert (meta.md["MIMEType"], meta.md["FileTypeExtension"]) == ("image/png", "png")
    assert (meta.md["ImageWidth"], meta.md["ImageHeight"]) == (31, 17)
    assert meta.md["errors"] == []


def test_jpeg_named_png_is_a_jpeg() -> None:
    meta = read_metadata(jpeg(), "IMG_0001.PNG")
    assert (meta.md["MIMEType"], meta.md["FileTypeExtension"]) == ("image/jpeg", "jpg")


def test_text_and_html() -> None:
    assert detect(b"hello\n", "a.jpg").mime == "text/plain"
    assert detect("h\u00e9llo\n".encode(), "a.jpg").extension == "txt"
    assert detect(b"  <!doctype html><p>x", "a.jpg").mime == "text/html"
    assert detect(b"\xef\xbb\xbf<HTML>", "a.jpg").extension == "html"
    assert detect(b"<?xml version='1.0'?><a/>", "a.jpg").extension == "xml"


def test_zero_bytes_fall_back_to_the_extension() -> None:
    ftype = detect(b"", "photo.JPEG")
    assert (ftype.mime, ftype.extension, ftype.from_content) == ("image/jpeg", "jpeg", False)
    assert detect(b"", "noext").mime == "application/octet-stream"


def test_mpf_jpeg_is_still_jpeg() -> None:
    """A JPEG carrying an MPF second frame: Pillow calls it MPO, exiftool (and we) JPEG."""
    first, second = Image.new("RGB", (40, 30), "red"), Image.new("RGB", (20, 15), "blue")
    buf = io.BytesIO()
    first.save(buf, format="MPO", save_all=True, append_images=[second])
    data = buf.getvalue()
    assert Image.open(io.BytesIO(data)).format == "MPO"
    meta = read_metadata(data, "x.jpg")
    assert meta.is_image
    assert (meta.md["MIMEType"], meta.md["FileTypeExtension"]) == ("image/jpeg", "jpg")
    assert (meta.md["ImageWidth"], meta.md["ImageHeight"]) == (40, 30), "the first frame's size"
    assert any("MPF" in p for p in meta.problems)


def test_other_image_formats_are_not_accepted() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (5, 4)).save(buf, format="WEBP")
    meta = read_metadata(buf.getvalue(), "x.jpg")
    assert not meta.is_image
    assert meta.md["MIMEType"] == "image/webp"
    assert meta.md["errors"] == ["corrupt image file: not a JPEG or PNG (image/webp)"]
