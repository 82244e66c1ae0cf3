"""Thumbnails: sizes, formats, modes, truncated JPEGs, pixel bombs, draft decoding."""

from __future__ import annotations

import io
import resource
import struct
import time
import zlib

import piexif
import pytest
from PIL import Image, ImageFile, JpegImagePlugin

from animl_ingest_cli import images
from animl_ingest_cli.errors import ImageError
from animl_ingest_cli.images import (
    MAX_PIXELS,
    MAX_SCAN_BLOCKS,
    MAX_SCANS,
    decode_cost_error,
    fit,
    make_thumbnails,
    probe,
)
from tests.conftest import CORPUS_IMAGES, corpus_files, needs_corpus
from tests.jpegscans import issue_file, many_scan_jpeg


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def photo(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A picture with structure (gradients), so JPEG has real scan data to cut."""
    w, h = size
    r = Image.linear_gradient("L").resize(size)
    g = Image.radial_gradient("L").resize(size)
    b = Image.linear_gradient("L").rotate(90).resize(size)
    img = Image.merge("RGB", (r, g, b))
    return img if mode == "RGB" else img.convert(mode)


def decoded(thumb_data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(thumb_data))
    img.load()
    return img


@pytest.mark.parametrize("size,medium,small", [
    ((4000, 3000), (940, 705), (120, 90)),       # landscape
    ((3000, 4000), (705, 940), (90, 120)),       # portrait
    ((2000, 2000), (940, 940), (120, 120)),
    ((1000, 10), (940, 9), (120, 1)),            # extreme aspect, at least one pixel
    ((500, 300), (500, 300), (120, 72)),         # medium not enlarged
    ((100, 50), (100, 50), (100, 50)),           # neither enlarged
])
def test_sizes_fit_the_boxes_and_are_never_enlarged(size: tuple[int, int], medium: tuple[int, int],
                                                    small: tuple[int, int]) -> None:
    assert fit(size, (940, 940)) == medium and fit(size, (120, 120)) == small
    m, s = make_thumbnails(encode(photo(size), "JPEG", quality=80))
    assert (m.width, m.height) == medium and (s.width, s.height) == small
    assert decoded(m.data).size == medium and decoded(s.data).size == small
    assert m.content_type == s.content_type == "image/jpeg"


def test_small_image_is_re_encoded_at_its_own_size() -> None:
    src = encode(photo((80, 60)), "PNG")
    m, s = make_thumbnails(src)
    assert (m.width, m.height) == (s.width, s.height) == (80, 60)
    assert decoded(m.data).tobytes() == Image.open(io.BytesIO(src)).convert("RGB").tobytes()  # lossless


def test_png_stays_png_and_keeps_alpha() -> None:
    img = photo((1200, 800)).convert("RGBA")
    img.paste((0, 0, 0, 0), (0, 0, 600, 800))  # left half fully transparent
    m, s = make_thumbnails(encode(img, "PNG"))
    assert m.content_type == s.content_type == "image/png"
    for thumb, size in ((m, (940, 627)), (s, (120, 80))):
        out = decoded(thumb.data)
        assert out.format == "PNG" and out.mode == "RGBA" and out.size == size
        assert out.getpixel((2, 2))[3] == 0 and out.getpixel((size[0] - 3, 2))[3] == 255


@pytest.mark.parametrize("mode,expected", [
    ("P", "RGB"), ("L", "L"), ("LA", "LA"), ("1", "L"), ("I;16", "I;16"),
])
def test_png_modes(mode: str, expected: str) -> None:
    img = photo((1000, 400))
    if mode == "I;16":  # 16-bit grey with values above 255
        img = img.convert("L").convert("I").point(lambda v: v * 256).convert("I;16")
    else:
        img = img.convert(mode)
    m, s = make_thumbnails(encode(img, "PNG"))
    assert decoded(m.data).mode == expected and decoded(s.data).size == (120, 48)
    if mode == "I;16":
        assert decoded(m.data).getextrema()[1] > 255


def test_palette_png_with_transparency_gets_alpha() -> None:
    img = photo((300, 300)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    m, _ = make_thumbnails(encode(img, "PNG", transparency=0))
    assert decoded(m.data).mode == "RGBA"


@pytest.mark.parametrize("mode,expected", [("RGB", "RGB"), ("L", "L"), ("CMYK", "RGB")])
def test_jpeg_modes(mode: str, expected: str) -> None:
    m, s = make_thumbnails(encode(photo((1600, 1200), mode), "JPEG"))
    assert decoded(m.data).format == "JPEG" and decoded(m.data).mode == expected
    assert decoded(s.data).mode == expected


def test_truncated_jpeg_is_accepted_without_touching_the_global() -> None:
    full = encode(photo((1600, 1200)), "JPEG", quality=90)
    cut = full[:len(full) // 3]
    with pytest.raises(OSError, match="truncated"):  # Pillow alone refuses it
        Image.open(io.BytesIO(cut)).load()
    m, s = make_thumbnails(cut)
    assert (m.width, m.height) == (940, 705) and (s.width, s.height) == (120, 90)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(OSError, match="truncated"):  # and still refuses it afterwards
        Image.open(io.BytesIO(cut)).load()


def test_truncated_progressive_jpeg_is_accepted() -> None:
    full = encode(photo((1200, 900)), "JPEG", progressive=True)
    m, _ = make_thumbnails(full[:len(full) // 4])
    assert (m.width, m.height) == (940, 705)


def test_jpeg_cut_inside_its_header_is_corrupt() -> None:
    with pytest.raises(ImageError, match="corrupt"):
        make_thumbnails(encode(photo((800, 600)), "JPEG")[:120])


@pytest.mark.parametrize("data", [b"", b"hello, I am text with a .jpg name", b"\xff\xd8\xff\xe0garbage",
                                  b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_non_images_are_corrupt(data: bytes) -> None:
    with pytest.raises(ImageError, match="corrupt"):
        make_thumbnails(data)


def test_gif_with_an_image_extension_is_corrupt() -> None:
    with pytest.raises(ImageError, match="corrupt"):
        make_thumbnails(encode(photo((50, 50)), "GIF"))


def png_header_bomb(width: int, height: int) -> bytes:
    """A valid PNG header claiming `width`x`height`, with a few bytes of IDAT: nothing allocated."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def test_pixel_bomb_is_refused_before_decoding() -> None:
    bomb = png_header_bomb(40000, 40000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(ImageError) as info:
        make_thumbnails(bomb)
    assert time.perf_counter() - start < 0.5
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 50_000  # 1.6 GP of RGB would be 4.8 GB
    assert info.value.message == f"image too large to decode: 40000x40000 pixels (limit {MAX_PIXELS})"
    assert "corrupt" not in info.value.message


def test_pixel_limit_boundary() -> None:
    assert probe(png_header_bomb(8000, 8000)).width == 8000  # exactly 64 MP passes the header check
    with pytest.raises(ImageError, match="too large"):
        probe(png_header_bomb(8000, 8001))


def test_large_jpeg_is_decoded_in_draft_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str | None, tuple[int, int] | None, tuple[int, int]]] = []
    real = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: tuple[int, int] | None):  # noqa: ANN202
        result = real(self, mode, size)
        seen.append((mode, size, self.size))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    data = encode(photo((4000, 3000)), "JPEG", quality=85)  # 12 MP
    start = time.perf_counter()
    m, s = make_thumbnails(data)
    elapsed = time.perf_counter() - start
    assert seen == [("RGB", (940, 705), (1000, 750))]  # libjpeg decoded at 1/4 scale
    assert (m.width, m.height, s.width, s.height) == (940, 705, 120, 90)
    assert elapsed < 1.0


def test_probe_reads_the_header() -> None:
    info = probe(encode(photo((321, 123)), "PNG"))
    assert (info.format, info.width, info.height, info.content_type) == ("PNG", 321, 123, "image/png")


@needs_corpus
def test_corpus_truncated_scan_data_is_accepted() -> None:
    m, s = make_thumbnails((CORPUS_IMAGES / "adv_truncated_scan_data.jpg").read_bytes())
    assert m.content_type == "image/jpeg" and (s.width, s.height) == (120, 90)


@needs_corpus
@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus(path) -> None:  # noqa: ANN001 - a pytest parameter
    data = path.read_bytes()
    if path.name in ("adv_zero_bytes.jpg", "adv_text_named.jpg"):
        with pytest.raises(ImageError, match="corrupt"):
            make_thumbnails(data)
        return
    m, s = make_thumbnails(data)
    assert m.width <= 940 and m.height <= 940 and s.width <= 120 and s.height <= 120
    expected = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
    assert m.content_type == s.content_type == expected
    assert decoded(m.data).size == (m.width, m.height)


# -- decode work (issue 15 item 7): a progressive JPEG of thousands of scans ------------------------

def test_thousands_of_scans_are_refused_before_decoding() -> None:
    """0.6 MB, 4900 scans over an 8000x8000 frame: within the pixel limit, minutes of libjpeg work."""
    data = issue_file()
    assert 550_000 < len(data) < 650_000
    assert probe(data).width * probe(data).height <= MAX_PIXELS, "not a pixel bomb"
    cpu = time.thread_time()
    reason = decode_cost_error(data)
    assert reason and "too costly to decode" in reason and f"more than {MAX_SCANS} scans" in reason
    with pytest.raises(ImageError, match="too costly to decode"):
        make_thumbnails(data)
    assert time.thread_time() - cpu < 0.5, "refused from the markers, nothing decoded"


def test_the_many_scan_file_is_a_real_image_whose_cost_grows_with_its_scans() -> None:
    """The same construction with fewer scans decodes (grey, as written), and each scan costs a pass
    over every block: 200 scans cost several times the CPU of 1 (CPU time of this thread)."""
    def decode_cpu(scans: int) -> float:
        img = Image.open(io.BytesIO(many_scan_jpeg(4000, 4000, scans)))
        start = time.thread_time()
        img.load()
        assert img.size == (4000, 4000) and img.getextrema() == (128, 128)
        return time.thread_time() - start
    # the least of a few decodes of one scan: a first one can pay the page faults of a fresh 16 MB
    # buffer (the whole suite's memory in use) and take three times its usual CPU
    one, many = min(decode_cpu(1) for _ in range(3)), decode_cpu(200)
    assert many > 3 * one
    assert decode_cost_error(many_scan_jpeg(4000, 4000, 200)) is None, "within the work budget"


def test_scan_work_budget_counts_blocks_per_scan() -> None:
    assert decode_cost_error(many_scan_jpeg(8000, 8000, 60)) is None          # 61M blocks decoded
    reason = decode_cost_error(many_scan_jpeg(8000, 8000, 70))                # 71M
    assert reason and f"limit {MAX_SCAN_BLOCKS}" in reason and "71 scans" in reason
    assert decode_cost_error(many_scan_jpeg(64, 64, 900)) is None             # many scans, tiny frame


def test_ordinary_and_progressive_photos_pass_the_work_check() -> None:
    big = photo((3000, 2000))
    for options in ({"progressive": True}, {"progressive": True, "subsampling": 0}, {}):
        assert decode_cost_error(encode(big, "JPEG", quality=85, **options)) is None
    # markers inside an EXIF thumbnail (its own SOS) are inside the APP1 segment, not counted
    thumb = encode(photo((160, 120)), "JPEG", progressive=True)
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"CAM"}, "1st": {}, "thumbnail": thumb})
    assert decode_cost_error(encode(photo((320, 240)), "JPEG", exif=exif)) is None
    assert decode_cost_error(b"\x89PNG\r\n\x1a\n") is None and decode_cost_error(b"") is None
    for path in corpus_files():
        assert decode_cost_error(path.read_bytes()) is None, path.name


def test_cpu_budget_stops_a_decode_that_runs_long(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backstop for costs the marker check does not foresee: the decoder is fed in chunks and
    stopped once its thread used DECODE_CPU_SECONDS of CPU."""
    monkeypatch.setattr(images, "MAX_SCANS", 100_000)
    monkeypatch.setattr(images, "MAX_SCAN_BLOCKS", 1 << 60)
    monkeypatch.setattr(images, "DECODE_CPU_SECONDS", 0.05)
    data = many_scan_jpeg(2000, 2000, 4000)
    start = time.thread_time()
    with pytest.raises(ImageError, match="decoding took more than 0.05 s of CPU"):
        make_thumbnails(data)
    assert time.thread_time() - start < 2.0
    make_thumbnails(encode(photo((400, 300)), "JPEG"))  # an ordinary image is well within it
