"""Finding files: named files as they are, folders walked recursively, sorted, hidden skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from animl_ingest_cli.errors import InputError
from animl_ingest_cli.files import iter_image_files


def _tree(root: Path) -> None:
    for rel in ["b/2.JPG", "b/1.jpeg", "a.png", "c/d/e.Jpg", "notes.txt", "batch.zip", ".hidden.jpg",
                "._appledouble.jpg", ".git/x.jpg", "b/.cache/y.png"]:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_folder_walk_is_recursive_sorted_and_skips_hidden(tmp_path: Path) -> None:
    _tree(tmp_path)
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files([tmp_path])]
    assert found == ["a.png", "b/1.jpeg", "b/2.JPG", "c/d/e.Jpg"]


def test_named_files_are_taken_whatever_their_name_and_in_the_given_order(tmp_path: Path) -> None:
    _tree(tmp_path)
    found = list(iter_image_files([tmp_path / "notes.txt", tmp_path / "b"]))
    assert found == [tmp_path / "notes.txt", tmp_path / "b" / "1.jpeg", tmp_path / "b" / "2.JPG"]


def test_other_extensions_can_be_asked_for(tmp_path: Path) -> None:
    _tree(tmp_path)
    found = [p.name for p in iter_image_files([str(tmp_path)], extensions={".zip", ".png"})]
    assert found == ["a.png", "batch.zip"]


def test_a_missing_path_fails_before_anything_is_yielded(tmp_path: Path) -> None:
    _tree(tmp_path)
    with pytest.raises(InputError, match="no such file or directory: .*nope"):
        iter_image_files([tmp_path, tmp_path / "nope"])
