"""`animl-ingest inspect`: the md record each image would send, read in-process like exiftool."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from animl_ingest_cli.api_rules import TOO_LARGE
from animl_ingest_cli.cli.common import JsonOpt, emit_json, info, out_console

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

    from animl_ingest_cli.metadata import FileMetadata

SHORT = "Show the metadata each image would send."
EPILOG = ("\b\nExamples:\n"
          "  animl-ingest inspect examples/images\n"
          "  animl-ingest inspect /media/SDCARD/DCIM --json | jq .md.SerialNumber")

HELP = (
    "Show the metadata record each image would send to animl-api, and what is wrong with it.\n\n"
    "PATH may be files or folders. Folders are searched recursively (sorted, hidden files skipped) for "
    ".jpg, .jpeg and .png files in any case; files named directly are read whatever their name. "
    "Nothing is uploaded and no AWS account is needed.\n\n"
    "Output: a table (file, make, model, serial, time, size, type, problems) on stdout. With --json: "
    'JSON Lines on stdout, one {"path", "md", "problems"} object per file, then one summary object '
    '{"summary": {"files", "images", "not_images", "with_problems", "unknown_serial", "no_date"}}.\n\n'
    "Problems say why animl-api would refuse the image (no serial, no date, 8 MB or more, not a readable "
    "JPEG/PNG) and show serials found where exiftool does not look (Browning maker note, RapidFire "
    "comment, CuddeLink UserComment); those are never sent as SerialNumber.\n\n"
    "Exit status: 0 when every path was read, problems or not; 2 when a path does not exist."
)

SUMMARY_KEYS = ("files", "images", "not_images", "with_problems", "unknown_serial", "no_date")
# described in HELP: typer would show `<list[path]>` after it
PathsArg = Annotated[list[Path], typer.Argument(show_default=False, metavar="PATH", hidden=True)]


def inspect(paths: PathsArg, json_out: JsonOpt = False) -> None:
    """Read each file in-process (never uploads); JSON lines stream as files are read."""
    from rich.console import Console

    from animl_ingest_cli.files import iter_image_files

    files = iter_image_files(paths)  # every path checked before anything is printed
    summary = dict.fromkeys(SUMMARY_KEYS, 0)
    table = _new_table()
    for path in files:
        meta = _read(path)
        _count(summary, meta)
        if json_out:
            emit_json({"path": str(path), "md": meta.md, "problems": meta.problems})
        else:
            table.add_row(*_row(path, meta))
    if json_out:
        emit_json({"summary": summary})
        return
    # a pipe gets wide lines rather than a table folded into 80 columns
    console = out_console.get() if out_console.is_terminal else Console(width=200, highlight=False)
    console.print(table)
    info(f"{summary['files']} files: {summary['images']} images, {summary['not_images']} not images, "
         f"{summary['with_problems']} with problems")


def _read(path: Path) -> FileMetadata:
    from animl_ingest_cli.metadata import FileMetadata, read_metadata_file
    from animl_ingest_cli.stores import MAX_OBJECT_BYTES

    try:
        size = path.stat().st_size
        if size > MAX_OBJECT_BYTES:  # never read into memory, as ingest would not read it either
            return FileMetadata(md={"ImageBytes": size}, problems=[
                f"too large to read ({size} bytes, limit {MAX_OBJECT_BYTES}); animl-api: {TOO_LARGE!r}"],
                is_image=False)
        return read_metadata_file(path)
    except OSError as exc:  # unreadable file (permissions, vanished): a row, not a crash
        problem = f"cannot read the file: {exc.strerror or type(exc).__name__}"
        return FileMetadata(md={}, problems=[problem], is_image=False)


def _count(summary: dict[str, int], meta: FileMetadata) -> None:
    summary["files"] += 1
    summary["images" if meta.is_image else "not_images"] += 1
    summary["with_problems"] += bool(meta.problems)
    summary["unknown_serial"] += meta.md.get("SerialNumber", "unknown") == "unknown"
    summary["no_date"] += "DateTimeOriginal" not in meta.md


def _new_table() -> Table:
    from rich.table import Table

    table = Table(show_lines=False, header_style="bold")
    for name in ("file", "make", "model", "serial", "time", "size", "type", "problems"):
        table.add_column(name, overflow="fold")
    return table


def _row(path: Path, meta: FileMetadata) -> list[Text]:
    from rich.text import Text

    md: dict[str, Any] = meta.md
    size = f"{md['ImageWidth']}x{md['ImageHeight']}" if "ImageWidth" in md else "-"
    when = str(md.get("DateTimeOriginal", "-")).removesuffix(".000Z").replace("T", " ")
    cells = [str(path), md.get("Make", "-"), md.get("Model", "-"), md.get("SerialNumber", "-"), when, size,
             md.get("FileTypeExtension", "-")]
    return [_cell(str(c)) for c in cells] + [Text("\n".join(_visible(p) for p in meta.problems) or "-")]


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def _visible(value: str) -> str:
    """Camera text may hold control characters (even escape sequences): show them, never send them."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def _cell(value: str) -> Text:
    from rich.text import Text

    return Text(_visible(value))  # a Text is never read as rich markup
