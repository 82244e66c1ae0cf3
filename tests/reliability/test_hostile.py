"""Hostile input through the installed `animl-ingest ingest` and `inspect` (the local stage): each file
gets a clear outcome and a one-line reason, the process stays well under 600 MB, and nothing ever
prints a traceback. The files are made by tests/reliability/hostile.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from animl_ingest_cli.api_local import LocalApi
from tests.conftest import REPO
from tests.reliability import figures
from tests.reliability.conftest import jpeg, md5
from tests.reliability.hostile import (
    MIB,
    RawEntry,
    _repeated_deflate,
    bomb_zip,
    crc32_of_zeros,
    escaping_zip,
    hostile_files,
    png,
    raw_zip,
)
from tests.reliability.invariants import LocalView, check

MEMORY_LIMIT_MB = 600
HUGE = "huge 1 GiB.jpg"
UUID = "0d6c4d5e-1b8a-4c4e-9f55-2a1b3c4d5e6f"
LOCAL = {k: f"animl-images-{k}-local" for k in ("ingestion", "serving", "dead-letter", "parkinglot")}


@dataclass
class Run:
    code: int
    out: str
    err: str
    peak_mb: float

    def items(self) -> list[dict]:
        return [json.loads(x) for x in self.out.splitlines() if '"summary"' not in x[:12]]


def run(tmp: Path, *args: str, local: str = "animl-local") -> Run:
    """The installed CLI on the local stage (data in tmp/`local`); its peak memory from the kernel
    (wait4's rusage)."""
    out, err = tmp / "out.txt", tmp / "err.txt"
    with out.open("wb") as fo, err.open("wb") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "animl_ingest_cli", *args], stdout=fo, stderr=fe,
                                env={**os.environ, "ANIML_LOCAL_DIR": str(tmp / local)}, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    r = Run(proc.returncode, out.read_text(), err.read_text(), usage.ru_maxrss / 1024)
    assert "Traceback" not in r.err and "Traceback" not in r.out, r.err
    assert r.peak_mb < MEMORY_LIMIT_MB, f"peak {r.peak_mb:.0f} MB"
    return r


def one_line(text: str | None) -> bool:
    return text is not None and "\n" not in text and 0 < len(text) <= 400


def local_check(tmp: Path, originals: dict[str, str], reported: dict[str, str]) -> dict[str, list[str]]:
    root = tmp / "animl-local"
    views = {kind: LocalView(root, name) for kind, name in LOCAL.items()}
    catalog = LocalApi(root / "catalog.sqlite")
    try:
        return check(views, originals, catalog, reported=reported).assert_ok().places
    finally:
        catalog.close()


# what each hostile file must come to: (outcome, start of the reason)
EXPECTED = {
    "empty.jpg": ("dead-lettered", "MULTIPLE_ERRORS"),
    "truncated header.jpg": ("dead-lettered", "MULTIPLE_ERRORS"),
    "truncated tables.JPG": ("dead-lettered", "CORRUPTED_IMAGE_FILE"),  # cut before the scan data
    "truncated scan.jpg": ("served", None),  # a camera's cut-off scan: served, grey at the bottom
    "text.jpg": ("dead-lettered", "MULTIPLE_ERRORS"),
    "page.jpeg": ("dead-lettered", "MULTIPLE_ERRORS"),
    "bomb 40000x40000.png": ("dead-lettered", "IMAGE_ERROR"),  # error: image too large to decode...
    "bomb 40000x40000.jpg": ("dead-lettered", "IMAGE_ERROR"),  # error: image too large to decode...
    "zero size.jpg": ("dead-lettered", "CORRUPTED_IMAGE_FILE"),
    "huge exif.jpg": ("served", None),
    "exif loop.jpg": ("dead-lettered", "MULTIPLE_ERRORS"),
    "exif garbage.jpg": ("dead-lettered", "MULTIPLE_ERRORS"),
    "exif empty.jpg": ("dead-lettered", "MULTIPLE_ERRORS"),
    "a zip named.jpg": ("dead-lettered", "MULTIPLE_ERRORS"),
    "wide+%20 ünï ☃ #?.jpg": ("served", None),
    "%2e%2e%2fdots.jpg": ("served", None),
}


def test_hostile_files_through_ingest_and_inspect(tmp_path: Path) -> None:
    folder = tmp_path / "card"
    files = hostile_files()
    # three 64-megapixel PNGs (the most pixels allowed), decoded at once by the worker pool
    files.update({f"big {i}.png": png(8000, 8000, full=True, n=i) for i in range(3)})
    for name, data in files.items():
        (folder / "DCIM" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "DCIM" / name).write_bytes(data)
    with (folder / "DCIM" / HUGE).open("wb") as fh:  # 1 GiB, sparse: no disk, all zeros when read
        fh.truncate(1 << 30)
    figures.add("hostile inputs", len(files) + 1)
    r = run(tmp_path, "ingest", str(folder), "--json", "--concurrency", "4")
    assert r.code == 1, r.err  # some dead-lettered
    items = {Path(i["key"]).name: i for i in r.items()}
    assert sorted(items) == sorted([*files, HUGE])
    huge = items.pop(HUGE)  # never read into memory: reported, left where it is
    assert huge["outcome"] == "failed" and not huge["complete"] and one_line(huge["error"])
    assert "too large to read (1073741824 bytes" in huge["error"]
    for name, item in items.items():
        want, reason = EXPECTED.get(name, ("served", None))
        assert item["outcome"] == want, (name, item)
        assert item["complete"], item  # a dead letter's `error` is its detail (the reason is its folder)
        assert item["error"] is None or (want == "dead-lettered" and one_line(item["error"])), item
        if reason:
            assert one_line(item["reason"]) and item["reason"].startswith(reason), (name, item["reason"])
        if name.startswith("bomb"):
            assert item["error"].startswith("image too large to decode: 40000x40000 pixels"), item
    places = local_check(tmp_path, {f"DCIM/{n}": md5(d) for n, d in files.items()},
                         {f"DCIM/{n}": i["outcome"] for n, i in items.items()})
    assert all(len(p) == 1 for p in places.values())
    assert all((folder / "DCIM" / n).exists() for n in files)  # a folder source is left as it is

    r = run(tmp_path, "inspect", str(folder), "--json")
    assert r.code == 0, r.err
    rows = {Path(i["path"]).name: i for i in r.items()}
    assert sorted(rows) == sorted([*files, HUGE])
    assert rows[HUGE]["problems"][0].startswith("too large to read (1073741824 bytes")
    for name, row in rows.items():
        assert all(one_line(p) for p in row["problems"]), (name, row["problems"])
        assert len(json.dumps(row["md"])) < 300_000  # a 60 KB EXIF does not balloon the record


def test_zip_escapes_links_and_bombs(tmp_path: Path) -> None:
    """A zip given to `ingest` and the same zip arriving in the (local) ingestion bucket."""
    good = jpeg(21)
    zips = {
        "escaping.zip": escaping_zip(good),
        "bomb.zip": bomb_zip("site/bomb.jpg", gib=1),             # 1 GiB entry, honest headers
        "liar.zip": bomb_zip("site/liar.jpg", gib=1, lie=True),   # 1 GiB inflating, claims 4 KB
        # four entries just under the entry limit, read by four workers at once
        "heavy.zip": raw_zip([RawEntry(f"site/heavy {i}.jpg", _repeated_deflate(bytes(MIB), 60),
                                       crc32_of_zeros(60 * MIB), 60 * MIB) for i in range(4)]),
    }
    figures.add("hostile inputs", len(zips) + 8)
    outcomes: dict[str, dict] = {}
    for name, data in zips.items():
        path = tmp_path / name
        path.write_bytes(data)
        r = run(tmp_path, "ingest", str(path), "--batch", f"batch-{UUID}", "--json", "--concurrency", "4")
        assert r.code in (0, 1), r.err
        for item in r.items():
            assert one_line(item.get("reason") or item.get("error") or item["outcome"]), item
            outcomes[item["key"]] = item
    skipped = {k: o["reason"] for k, o in outcomes.items() if o["outcome"] == "skipped"}
    assert skipped == {
        "../../escape.jpg": "path escapes the zip's folder",
        "cam/../../../escape2.jpg": "path escapes the zip's folder",
        "/etc/abs.jpg": "absolute path",
        "C:\\Windows\\drive.jpg": "absolute path",
        "cam/link.jpg": "symbolic link",
        "__MACOSX/cam/._good.jpg": "__MACOSX resource fork",
        "site/bomb.jpg": f"entry too large ({1 << 30} bytes, limit {64 * MIB})",
    }
    # on the local stage a zip is a bulk upload: the job writes its images under batch-<uuid>/
    assert outcomes[f"batch-{UUID}/cam/good.jpg"]["outcome"] == "served"
    liar = outcomes["site/liar.jpg"]
    assert liar["outcome"] == "failed" and liar["error"].startswith("corrupt zip entry"), liar
    assert not outcomes["liar.zip"]["complete"]  # the zip whose entry failed says so
    assert {outcomes[f"batch-{UUID}/site/heavy {i}.jpg"]["reason"] for i in range(4)} == {"MULTIPLE_ERRORS"}
    assert not list(tmp_path.rglob("escape*.jpg")) and not list(tmp_path.rglob("abs.jpg"))

    # the same zips dropped in the local stage's ingestion bucket: unpacked there, as AWS Batch does
    ingestion = tmp_path / "stage2" / "buckets" / LOCAL["ingestion"]
    ingestion.mkdir(parents=True, exist_ok=True)
    for name in ("escaping.zip", "bomb.zip", "liar.zip"):
        for old in ingestion.rglob("*"):
            if old.is_file():
                old.unlink()
        (ingestion / f"batch-{UUID}.zip").write_bytes(zips[name])
        r = run(tmp_path, "ingest", f"s3://{LOCAL['ingestion']}/", "--json", local="stage2")
        items = {i["key"]: i for i in r.items()}
        zip_item = items[f"batch-{UUID}.zip"]
        assert zip_item["outcome"] == "batch-submitted"
        if name == "liar.zip":  # an entry could not be unpacked: the zip is kept, and says why
            assert r.code == 1 and not zip_item["complete"] and one_line(zip_item["error"])
            assert (ingestion / f"batch-{UUID}.zip").exists()
        else:
            assert r.code == 0 and zip_item["complete"], zip_item
        assert not list(tmp_path.rglob("escape*.jpg")) and not list(tmp_path.rglob("abs.jpg"))


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04" + b"\0" * 26, b""])
def test_a_broken_zip_is_one_line_and_exit_2(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "upload.zip"
    path.write_bytes(content)
    figures.add("hostile inputs")
    r = run(tmp_path, "ingest", str(path), "--batch", f"batch-{UUID}")
    assert r.code == 2 and r.err.startswith("error: not a readable zip file") and r.err.count("\n") == 1


def test_an_object_too_large_to_read_is_dead_lettered_unread(world, monkeypatch) -> None:  # noqa: ANN001
    """From S3, an object over the read limit is dead-lettered by a server-side copy under the
    error animl-api gives for 8 MB or more; its bytes never pass through the function. (The limit
    is lowered to 1 MB here: moto holds objects in this process.)"""
    from animl_ingest_cli import ingest
    from animl_ingest_cli.ingest import Ingestor
    from tests.reliability.conftest import BUCKETS

    monkeypatch.setattr(ingest, "MAX_OBJECT_BYTES", MIB)
    figures.add("hostile inputs")
    big = jpeg(31) + bytes(MIB)
    world.put("cam/panorama.jpg", big)
    world.put("cam/small.jpg", jpeg(30))
    ctx = world.ctx()
    (plan,) = Ingestor(ctx, world.api(), dry_run=True).process(ctx.store("ingestion"), "cam/panorama.jpg",
                                                                 delete_source=True)
    assert plan.planned and plan.outcome == "dead-lettered" and plan.reason == "Image Size Exceed 8 MB"
    results = world.ingest()
    out = results["cam/panorama.jpg"]
    assert out.outcome == "dead-lettered" and out.complete and out.image_id is None
    assert world.keys("dead-letter") == ["Image Size Exceed 8 MB/UNKNOWN_ID/panorama.jpg"]
    head = world.s3.head_object(Bucket=BUCKETS["dead-letter"], Key=world.keys("dead-letter")[0])
    assert head["ContentLength"] == len(big) and head["ETag"].strip('"') == md5(big)
    assert results["cam/small.jpg"].outcome == "served"
    assert [r.input["md"]["Key"] for r in world.stub.calls("createImage")] == ["cam/small.jpg"]
    world.check(results)
