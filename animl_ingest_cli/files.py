"""Finding the files a command works on: named files as they are, folders searched recursively."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from animl_ingest_cli.errors import InputError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})


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
