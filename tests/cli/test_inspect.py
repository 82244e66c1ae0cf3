"""`animl-ingest inspect`: table and JSON Lines over files and folders; missing paths are errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import piexif
from typer.testing import CliRunner

from animl_ingest_cli.cli import app
from animl_ingest_cli.metadata import read_metadata_file
from tests.conftest import CORPUS_IMAGES, corpus_files, needs_corpus, subprocess_env
from tests.metadata import builders as B


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "animl_ingest_cli", "inspect", *args], capture_output=True,
                          text=True, timeout=120, env=subprocess_env())


def _folder(root: Path) -> dict[str, Path]:
    reconyx = B.jpeg({"0th": {piexif.ImageIFD.Make: b"RECONYX", piexif.ImageIFD.Model: b"HC500 HYPERFIRE"}},
                     maker_note=B.hyperfire_note(), size=(80, 60))
    files = {
        "cam/IMG_0002.JPG": reconyx,
        "cam/IMG_0001.jpg": B.jpeg({"0th": {piexif.ImageIFD.Make: b"[bold]Evil\x1b[31m"}}),
        "cam/sub/shot.png": B.png(size=(10, 7)),
        "cam/readme.txt": b"not walked: wrong extension",
        "cam/.hidden.jpg": b"never seen",
        "cam/broken.jpeg": b"<html>503</html>",
        "cam/empty.jpg": b"",
    }
    paths = {}
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths[rel] = path
    return paths


def test_json_lines_one_object_per_file_then_a_summary(tmp_path: Path) -> None:
    paths = _folder(tmp_path)
    result = CliRunner().invoke(app, ["inspect", "--json", str(tmp_path / "cam")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    records, summary = lines[:-1], lines[-1]
    names = [Path(r["path"]).relative_to(tmp_path).as_posix() for r in records]
    assert names == ["cam/IMG_0001.jpg", "cam/IMG_0002.JPG", "cam/broken.jpeg", "cam/empty.jpg",
                     "cam/sub/shot.png"]
    by_name = dict(zip(names, records, strict=True))
    reconyx = by_name["cam/IMG_0002.JPG"]
    assert reconyx["md"] == read_metadata_file(paths["cam/IMG_0002.JPG"]).md
    assert reconyx["md"]["SerialNumber"] == "H500HH06211894" and reconyx["problems"] == []
    assert by_name["cam/broken.jpeg"]["md"]["MIMEType"] == "text/html"
    assert any("corrupt" in p for p in by_name["cam/empty.jpg"]["problems"])
    assert summary == {"summary": {"files": 5, "images": 3, "not_images": 2, "with_problems": 4,
                                   "unknown_serial": 4, "no_date": 4}}


def test_table_shows_the_columns_and_escapes_camera_text(tmp_path: Path) -> None:
    _folder(tmp_path)
    result = CliRunner().invoke(app, ["inspect", str(tmp_path / "cam" / "IMG_0001.jpg"),
                                      str(tmp_path / "cam" / "IMG_0002.JPG")])
    assert result.exit_code == 0
    out = result.stdout
    for column in ("file", "make", "model", "serial", "time", "size", "type", "problems"):
        assert column in out
    assert "H500HH06211894" in out and "2014-11-23 20:26:22" in out and "80x60" in out
    assert "[bold]Evil\\x1b[31m" in out, "markup shown as text, escape character made visible"
    assert "\x1b" not in out
    assert "2 files: 2 images" in result.stderr


def test_a_file_named_directly_is_read_whatever_its_extension(tmp_path: Path) -> None:
    _folder(tmp_path)
    result = CliRunner().invoke(app, ["inspect", "--json", str(tmp_path / "cam" / "readme.txt")])
    record = json.loads(result.stdout.splitlines()[0])
    assert record["md"]["MIMEType"] == "text/plain" and record["problems"]


def test_missing_path_is_one_line_and_exit_2(tmp_path: Path) -> None:
    _folder(tmp_path)
    result = run(str(tmp_path / "cam"), str(tmp_path / "nope.jpg"))
    assert result.returncode == 2
    assert result.stdout == "", "nothing is read before every path is checked"
    assert result.stderr == f"error: no such file or directory: {tmp_path / 'nope.jpg'}\n"


def test_no_path_is_a_usage_error() -> None:
    result = run()
    assert result.returncode == 2 and "Traceback" not in result.stderr


@needs_corpus
def test_corpus_through_the_installed_command() -> None:
    result = run("--json", str(CORPUS_IMAGES))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(corpus_files()) + 1
    assert lines[-1]["summary"]["files"] == len(corpus_files())
    records = {Path(r["path"]).name: r for r in lines[:-1]}
    assert records["reconyx_ultrafire_idaho.jpg"]["md"]["SerialNumber"] == "UXR6BI02004234"
    assert records["spartan_gl-vlteb.JPG"]["md"]["GPSLongitude"] < 0


def test_example_images_all_have_a_serial_and_a_date() -> None:
    """examples/images must go all the way through ingest: every file a readable image with both."""
    from tests.conftest import EXAMPLES

    files = sorted(EXAMPLES.iterdir())
    assert len(files) >= 4
    for path in files:
        meta = read_metadata_file(path)
        assert meta.is_image and meta.md["errors"] == [], path.name
        assert meta.md["SerialNumber"] != "unknown" and "DateTimeOriginal" in meta.md, path.name
        assert meta.md["ImageBytes"] < 8_000_000
    sources = (EXAMPLES.parent / "SOURCES.md").read_text(encoding="utf-8")
    assert all(p.name in sources for p in files), "every example has its origin and licence"
