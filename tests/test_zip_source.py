"""A zip given to `ingest` is a read-only Store (mypy checks it implements the whole protocol): the
writing half refuses with a one-line StoreError instead of failing with an AttributeError."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from animl_ingest_cli.batches import ZipSource
from animl_ingest_cli.errors import StoreError
from animl_ingest_cli.stores import LocalStore


def test_a_zip_lists_its_safe_images_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("cam/a.jpg", b"jpeg")
        z.writestr("cam/.hidden.jpg", b"x")
        z.writestr("notes.txt", b"t")
    src = ZipSource.open(path)
    try:
        assert [o.key for o in src.list()] == ["cam/a.jpg"]
        assert [o.key for o in src.list("other/")] == []
        for write in (lambda: src.put("k.jpg", b"x", "image/jpeg"), lambda: src.delete("cam/a.jpg"),
                      lambda: src.copy_from(LocalStore(tmp_path), "b.zip", "k.jpg")):
            with pytest.raises(StoreError, match=r"^.*b\.zip.*: a zip file is read only$") as refused:
                write()
            assert refused.value.code == "ReadOnly"
        assert src.delete_many(["cam/a.jpg"]) == [("cam/a.jpg", "ReadOnly")]
        assert src.read("cam/a.jpg").data == b"jpeg"  # nothing was deleted
    finally:
        src.close()
