"""Camera-trap-like test images: textured content (so JPEG sizes are realistic), EXIF with a serial.

Each size has a few textures (noise at three scales over a rotated gradient, like foliage and sky);
every image shifts its texture by a random offset and draws its own shapes, so no two images share
bytes or pixels, and each carries its own DateTimeOriginal. A folder is reused while its manifest
matches what was asked for (generation takes a while for the large sizes).
"""

from __future__ import annotations

import io
import json
import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

GEN_VERSION = 2
JPEG_QUALITY = 90
TEXTURES_PER_SIZE = 3
SIZES = {"2mp": (1600, 1200), "3mp": (2048, 1536), "12mp": (4000, 3000), "16mp": (5376, 3024)}
CAMERAS = [("RECONYX", "HF2X HYPERFIRE 2 4K COVERT IR"), ("BUSHNELL", "119949C"),
           ("Browning", "BTC-8E-HP4"), ("CUDDEBACK", "G-Series"), ("BuckEyeCam", "X7D")]


@dataclass(frozen=True)
class Spec:
    """One image to make: its file name, size, format and the seed that makes it unique."""

    name: str
    width: int
    height: int
    fmt: str  # "JPEG" or "PNG"
    seed: int


def plan(kind: str, count: int, *, start: int = 0) -> list[Spec]:
    """`mixed`: 3, 12 and 16 MP JPEGs in turn with every tenth image a 3 MP PNG (the main set);
    `2mp` (1600x1200, a common trail-camera setting) / `3mp` / `12mp` / `16mp`: one size only;
    `large`: 12 and 16 MP JPEGs in turn."""
    specs = []
    for i in range(start, start + count):
        if kind == "mixed":
            if i % 10 == 9:
                size, fmt = "3mp", "PNG"
            else:
                size, fmt = ("3mp", "12mp", "16mp")[i % 3], "JPEG"
        elif kind == "large":
            size, fmt = ("12mp", "16mp")[i % 2], "JPEG"
        else:
            size, fmt = kind, "JPEG"
        w, h = SIZES[size]
        ext = "png" if fmt == "PNG" else ("JPG" if i % 2 else "jpg")
        specs.append(Spec(f"{kind}-{size}-{i:05d}.{ext}", w, h, fmt, seed=hash_seed(kind, i)))
    return specs


def hash_seed(kind: str, i: int) -> int:
    return (sum(map(ord, kind)) * 1_000_003 + i) & 0x7FFFFFFF


_textures: dict[tuple[int, int, int], object] = {}


def _texture(w: int, h: int, n: int):  # noqa: ANN202 - PIL.Image
    from PIL import Image, ImageChops

    key = (w, h, n)
    if key in _textures:
        return _textures[key]
    rnd = random.Random(w * 7919 + h * 31 + n)
    chans = []
    for _ in range(3):
        low = Image.effect_noise((w // 16, h // 16), 60).resize((w, h), Image.BICUBIC)
        mid = Image.effect_noise((w // 3, h // 3), 40).resize((w, h), Image.BILINEAR)
        fine = Image.effect_noise((w, h), 12)
        grad = Image.linear_gradient("L").resize((w, h)).rotate(rnd.randint(0, 359))
        a = ImageChops.add(ImageChops.multiply(low, grad), mid, scale=1.6, offset=-40)
        chans.append(ImageChops.add(a, fine, scale=1.8, offset=-60))
    img = Image.merge("RGB", chans)
    _textures.clear()  # one texture held per worker process at a time: the large ones are 50 MB
    _textures[key] = img
    return img


def exif_bytes(spec: Spec, index: int) -> bytes:
    import piexif

    make, model = CAMERAS[index % len(CAMERAS)]
    when = datetime(2024, 5, 1, 6, 0, 0) + timedelta(minutes=7 * index, seconds=spec.seed % 60)
    stamp = when.strftime("%Y:%m:%d %H:%M:%S").encode()
    zeroth = {piexif.ImageIFD.Make: make.encode(), piexif.ImageIFD.Model: model.encode(),
              piexif.ImageIFD.DateTime: stamp, piexif.ImageIFD.Software: b"animl-ingest bench"}
    exif = {piexif.ExifIFD.DateTimeOriginal: stamp, piexif.ExifIFD.DateTimeDigitized: stamp,
            piexif.ExifIFD.BodySerialNumber: f"BENCH{index % len(CAMERAS):04d}".encode(),
            piexif.ExifIFD.PixelXDimension: spec.width, piexif.ExifIFD.PixelYDimension: spec.height}
    return piexif.dump({"0th": zeroth, "Exif": exif, "GPS": {}, "1st": {}, "thumbnail": None})


def make_image(spec: Spec, index: int) -> bytes:
    from PIL import ImageChops, ImageDraw

    rnd = random.Random(spec.seed)
    base = _texture(spec.width, spec.height, spec.seed % TEXTURES_PER_SIZE)
    img = ImageChops.offset(base, rnd.randrange(spec.width), rnd.randrange(spec.height))
    draw = ImageDraw.Draw(img)
    for _ in range(30):  # "animals", rocks, leaves
        x, y = rnd.randrange(spec.width), rnd.randrange(spec.height)
        r = rnd.randrange(20, spec.width // 8)
        colour = tuple(rnd.randrange(256) for _ in range(3))
        if rnd.random() < 0.5:
            draw.ellipse((x, y, x + r, y + r // 2), fill=colour)
        else:
            draw.polygon([(x, y), (x + r, y + rnd.randrange(-r, r)), (x + rnd.randrange(-r, r), y + r)],
                         fill=colour)
    draw.rectangle((0, spec.height - 40, spec.width, spec.height), fill=(0, 0, 0))  # the camera's banner
    draw.text((10, spec.height - 30), f"BENCH {index:05d} {spec.seed}", fill=(255, 255, 255))
    buf = io.BytesIO()
    if spec.fmt == "PNG":
        img.save(buf, "PNG", exif=exif_bytes(spec, index), compress_level=6)
    else:
        img.save(buf, "JPEG", quality=JPEG_QUALITY, exif=exif_bytes(spec, index))
    return buf.getvalue()


def _write(args: tuple[Spec, int, str]) -> int:
    spec, index, folder = args
    data = make_image(spec, index)
    tmp = Path(folder) / f".{spec.name}.tmp"
    tmp.write_bytes(data)
    tmp.rename(Path(folder) / spec.name)
    return len(data)


def ensure_set(folder: Path, kind: str, count: int, *, workers: int | None = None,
               log=print) -> list[Path]:  # noqa: ANN001
    """Make (or reuse) `folder` holding `count` images of `kind`; returns their paths in order."""
    specs = plan(kind, count)
    manifest = folder.parent / f"{folder.name}.manifest.json"  # beside, not inside: ingest reads it all
    want = {"version": GEN_VERSION, "quality": JPEG_QUALITY, "kind": kind,
            "specs": [asdict(s) for s in specs]}
    if manifest.exists():
        try:
            have = json.loads(manifest.read_text())
        except ValueError:
            have = None
        if have == want and all((folder / s.name).is_file() for s in specs):
            return [folder / s.name for s in specs]
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    log(f"generating {count} {kind} images into {folder} ...")
    # sorted by size so each worker keeps one texture warm; the largest first for load balance
    jobs = sorted(((s, i, str(folder)) for i, s in enumerate(specs)),
                  key=lambda j: (-j[0].width * j[0].height, j[0].seed % TEXTURES_PER_SIZE))
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        total = sum(pool.map(_write, jobs, chunksize=4))
    manifest.write_text(json.dumps(want))
    log(f"  {count} images, {total / 1e6:.0f} MB")
    return [folder / s.name for s in specs]


def link_subset(src: list[Path], folder: Path) -> Path:
    """A folder of hard links to `src` (same bytes, no copy): a smaller set out of a bigger one."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {p.name for p in src}
    for old in folder.iterdir():
        if old.name not in names:
            old.unlink()
    for p in src:
        target = folder / p.name
        if not target.exists():
            os.link(p, target)
    return folder
