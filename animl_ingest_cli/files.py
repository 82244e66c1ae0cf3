"""Files on this machine: finding the files a command works on (named files as they are, folders
searched recursively), writing a file atomically, and lock files."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from animl_ingest_cli import keys
from animl_ingest_cli.errors import InputError, RefusedError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one process is assumed
    fcntl = None  # type: ignore[assignment]

IMAGE_EXTENSIONS = frozenset(keys.IMAGE_EXTENSIONS)  # the ingest's own list (keys.kind)


def is_hidden(name: str) -> bool:
    """Dot files and folders (.DS_Store, AppleDouble `._IMG_0001.JPG`, .git) are never images."""
    return name.startswith(".")


def iter_image_files(paths: Iterable[str | os.PathLike[str]],
                     extensions: Iterable[str] | None = IMAGE_EXTENSIONS) -> Iterator[Path]:
    """Files named directly are yielded whatever their name; folders are walked recursively
    (sorted, symlinked folders not followed) for files whose extension, in any case, is one of
    `extensions` (None: every file), skipping hidden files and folders. Every path is checked
    before the first one is yielded, so a typo fails the command before it does anything.

    Raises InputError("no such file or directory: X") for a path that does not exist.
    """
    roots = [Path(p) for p in paths]
    for root in roots:
        if not root.exists():
            raise InputError(f"no such file or directory: {root}")
    wanted = None if extensions is None else frozenset(e.lower() for e in extensions)
    return _walk(roots, wanted)


def _walk(roots: list[Path], wanted: frozenset[str] | None) -> Iterator[Path]:
    for root in roots:
        if not root.is_dir():
            yield root
            continue
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not is_hidden(d))
            for name in sorted(files):
                if is_hidden(name):
                    continue
                if wanted is None or os.path.splitext(name)[1].lower() in wanted:
                    yield Path(folder) / name


def atomic_write(path: Path, data: bytes | str, *, prefix: str = ".tmp-", fsync: bool = False,
                 tmp_dir: Path | None = None) -> None:
    """Write `path` so that it holds either its old content or all of `data`, never a part: a temporary
    file beside it (named `prefix...`; in `tmp_dir` instead when given, on the same file system),
    then a rename over it. The temporary file is removed when anything fails, Ctrl-C included.
    `fsync`: the bytes are on disk before the rename (a power cut cannot leave an empty file). Text
    is written as UTF-8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if tmp_dir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or path.parent, prefix=prefix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LockFile:
    """An exclusive lock (flock) on the file `path`, so one process at a time on this machine does
    what it guards; the kernel releases it when the process dies, so a kill never leaves it held.

    `busy`: when another process holds it, RefusedError(busy) at once; None: wait for it. Without
    fcntl (Windows) the file is still made but nothing is locked."""

    def __init__(self, path: Path, busy: str | None = None) -> None:
        self.path = path
        self.busy = busy
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a")
        if fcntl is not None:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (fcntl.LOCK_NB if self.busy is not None else 0))
            except OSError:
                fh.close()
                raise RefusedError(self.busy or f"cannot lock {self.path}") from None
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the file releases the lock
            self._fh = None

    def __enter__(self) -> LockFile:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
