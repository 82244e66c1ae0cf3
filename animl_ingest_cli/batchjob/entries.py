"""Which entries of a bulk-upload zip are written, under which path, and what is reported.

One home for the rules, used by the bulk-upload job and by `ingest` reading a zip directly:

- names are decoded as UTF-8 whatever the zip's language flag says (the Node job did; Python's
  `zipfile` decodes unflagged names as cp437, so the raw bytes are recovered first); bytes that are
  not UTF-8 become U+FFFD, as in the Node job, so the keys are the ones it wrote;
- `./` and empty path parts are dropped (`./DCIM/IMG_0001.JPG` is `DCIM/IMG_0001.JPG`, not hidden);
- skipped and reported: absolute paths, paths that escape the zip's folder, symbolic links,
  `__MACOSX` resource forks, hidden files, unsupported types, entries over the size limit, and an
  entry identical (size and CRC) to an earlier one of the same name (written once);
- failed and reported (the zip is kept: these are images that could not be read): encrypted entries,
  compression methods other than stored/deflated/bzip2/lzma, keys over S3's 1024 bytes;
- two entries with the same name and different bytes (appending to an archive does this) are both
  written: the first under its name, the next ones under `<stem>-2<ext>`, `-3`... (never silently
  dropped), and reported.

The count sent as the batch's `total` follows the Node job's rule (an extension, a base name not
starting with `.`, a supported type) on what is actually written, plus the images that fail.
"""

from __future__ import annotations

import posixpath
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

from animl_ingest_cli import keys
from animl_ingest_cli.stores import MAX_OBJECT_BYTES

MAX_ENTRY_BYTES = MAX_OBJECT_BYTES  # the ingest function never reads more; the API refuses >= 8 MB
MAX_ENTRIES = 200_000
MAX_KEY_BYTES = 1024               # S3's limit on a key
UTF8_FLAG = 0x800
SUPPORTED_COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated",
                         zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}

# problems: a skip is deliberate (the entry is not an image to ingest); a failure keeps the zip
DIRECTORY = "directory"
ABSOLUTE = "absolute path"
ESCAPES = "path escapes the zip's folder"
SYMLINK = "symbolic link"
MACOSX = "__MACOSX resource fork"
HIDDEN = "hidden file"
UNSUPPORTED = "unsupported file type"
TOO_LARGE = "entry too large"
IDENTICAL = "identical duplicate of an entry of the same name"
ENCRYPTED = "encrypted entry"
COMPRESSION = "unsupported compression method"
KEY_TOO_LONG = "key too long for S3"
FAILURES = frozenset({ENCRYPTED, COMPRESSION, KEY_TOO_LONG})
RENAMED = "renamed: another entry has the same name"  # a note, not a problem: the entry is written


def entry_name(info: zipfile.ZipInfo) -> str:
    """The entry's name as the Node job decoded it: UTF-8 (U+FFFD for bytes that are not)."""
    if info.flag_bits & UTF8_FLAG:
        return info.orig_filename
    try:
        raw = info.orig_filename.encode("cp437")  # zipfile decoded the raw bytes as cp437
    except UnicodeEncodeError:  # a metadata_encoding other than cp437 was used
        return info.orig_filename
    return raw.decode("utf-8", errors="replace")


def normalise(name: str) -> str:
    """`./DCIM//a.jpg` -> `DCIM/a.jpg`: `.` and empty parts dropped (`..` is refused elsewhere)."""
    return "/".join(p for p in name.split("/") if p not in ("", "."))


@dataclass
class Entry:
    index: int                 # position in the central directory
    info: zipfile.ZipInfo
    name: str                  # as decoded (UTF-8), before normalisation
    path: str                  # where it goes under `batch-<uuid>/`; the name for skipped entries
    problem: str | None = None  # one of the kinds above; None: written
    detail: str = ""           # the problem's particulars (sizes, method), for the message
    note: str | None = None    # RENAMED for a duplicate written under another name

    @property
    def size(self) -> int:
        return self.info.file_size

    @property
    def crc(self) -> int:
        return self.info.CRC

    @property
    def written(self) -> bool:
        return self.problem is None

    @property
    def failed(self) -> bool:
        return self.problem in FAILURES

    @property
    def reason(self) -> str:
        return f"{self.problem} ({self.detail})" if self.detail else str(self.problem)


def problem_of(info: zipfile.ZipInfo, name: str, path: str, prefix_bytes: int,
               max_bytes: int) -> tuple[str | None, str]:
    """Why an entry is not written (and the particulars), or (None, "") for a safe image."""
    if info.is_dir() or name.endswith("/"):
        return DIRECTORY, ""
    flat = name.replace("\\", "/")
    if flat.startswith("/") or (len(flat) > 1 and flat[1] == ":"):
        return ABSOLUTE, ""
    parts = flat.split("/")
    if ".." in parts or posixpath.normpath(flat).startswith(".."):
        return ESCAPES, ""
    if stat.S_ISLNK(info.external_attr >> 16):
        return SYMLINK, ""
    if "__MACOSX" in parts:
        return MACOSX, ""
    if any(p.startswith(".") for p in path.replace("\\", "/").split("/")):
        return HIDDEN, ""
    if not path or keys.kind(path) != "image":
        return UNSUPPORTED, ""
    if info.file_size > max_bytes:
        return TOO_LARGE, f"{info.file_size} bytes, limit {max_bytes}"
    if info.flag_bits & 0x1:
        return ENCRYPTED, ""
    if info.compress_type not in SUPPORTED_COMPRESSION:
        return COMPRESSION, str(info.compress_type)
    if prefix_bytes + len(path.encode("utf-8")) > MAX_KEY_BYTES:
        return KEY_TOO_LONG, f"{prefix_bytes + len(path.encode('utf-8'))} bytes"
    return None, ""


def plan(infos: Iterable[zipfile.ZipInfo], prefix: str = "", max_bytes: int = MAX_ENTRY_BYTES) -> list[Entry]:
    """Every entry of the zip, in central-directory order, with its path and problem. `prefix` is
    what the path is written under (`batch-<uuid>/`), for the key-length check."""
    out: list[Entry] = []
    prefix_bytes = len(prefix.encode("utf-8"))
    for i, info in enumerate(infos):
        name = entry_name(info)
        path = normalise(name)
        problem, detail = problem_of(info, name, path, prefix_bytes, max_bytes)
        out.append(Entry(i, info, name, path if problem is None else name, problem, detail))
    _dedupe(out)
    return out


def _dedupe(entries: list[Entry]) -> None:
    """Same path twice: identical bytes are written once; different bytes get `-2`, `-3`..."""
    taken = {e.path for e in entries if e.problem is None}
    first: dict[str, list[Entry]] = {}
    for e in entries:
        if e.problem is not None:
            continue
        seen = first.setdefault(e.path, [])
        twin = next((s for s in seen if (s.size, s.crc) == (e.size, e.crc)), None)
        if twin is not None:
            e.problem, e.detail = IDENTICAL, f"{e.path}, entry {twin.index + 1}"
            e.path = e.name
        elif seen:
            stem, ext = posixpath.splitext(e.path)
            n = len(seen) + 1
            while f"{stem}-{n}{ext}" in taken:
                n += 1
            e.note, e.detail = RENAMED, e.path
            e.path = f"{stem}-{n}{ext}"
            taken.add(e.path)
            seen.append(e)
        else:
            seen.append(e)


def total(entries: list[Entry]) -> int:
    """The batch's `total`: images written, and images that fail (they count, as in the Node job)."""
    return sum(1 for e in entries if e.written or e.failed)


def reports(entries: list[Entry], examples: int = 5) -> list[str]:
    """One line per kind of problem (and one for renamed duplicates): the `createBatchError` texts.
    Directories are not reported."""
    kinds: dict[str, list[Entry]] = {}
    for e in entries:
        if e.problem and e.problem != DIRECTORY:
            kinds.setdefault(e.problem, []).append(e)
        elif e.note:
            kinds.setdefault(e.note, []).append(e)
    lines = []
    for kind, group in kinds.items():
        verb = ("could not be read (the zip is kept)" if kind in FAILURES else
                "written under another name" if kind == RENAMED else "skipped")
        shown = ", ".join(_shown(e, kind) for e in group[:examples])
        more = f" and {len(group) - examples} more" if len(group) > examples else ""
        lines.append(f"{len(group)} zip entr{'y' if len(group) == 1 else 'ies'} {verb}: {kind}: "
                     f"{shown}{more}")
    return lines


def _shown(e: Entry, kind: str) -> str:
    name = " ".join(repr(e.name)[1:-1].split())  # one line, control characters escaped
    if kind == RENAMED:
        return f"{name} -> {e.path}"
    return f"{name} ({e.detail})" if e.detail else name
