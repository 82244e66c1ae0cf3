"""The conditional-write primitives of stores.py, against moto with S3's rules (s3rules.py) and
against the local stage's folders: create only if absent, replace/delete only if unchanged, copy
only while the source is unchanged; and S3's key and metadata limits."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

from animl_ingest_cli.errors import StoreError
from animl_ingest_cli.stores import Conflict, LocalStore, S3Store, Store


@pytest.fixture(params=["s3", "local"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Store, Store]:
    if request.param == "local":
        return (LocalStore(tmp_path / "a", "a", tmp_path / ".meta" / "a"),
                LocalStore(tmp_path / "b", "b", tmp_path / ".meta" / "b"))
    request.getfixturevalue("aws_mock")
    s3 = boto3.client("s3", region_name="us-east-1")
    for b in ("bucket-a", "bucket-b"):
        s3.create_bucket(Bucket=b)
    return S3Store(s3, "bucket-a"), S3Store(s3, "bucket-b")


def test_put_if_none_match_creates_once(pair: tuple[Store, Store]) -> None:
    a, _ = pair
    etag = a.put("k.jpg", b"one", "image/jpeg", if_none_match=True)
    with pytest.raises(Conflict):
        a.put("k.jpg", b"two", "image/jpeg", if_none_match=True)
    assert a.read("k.jpg").data == b"one" and a.read("k.jpg").etag == etag


def test_put_if_match_replaces_only_the_object_named(pair: tuple[Store, Store]) -> None:
    a, _ = pair
    etag = a.put("k", b"one", "text/plain")
    with pytest.raises(Conflict):
        a.put("k", b"two", "text/plain", if_match="0" * 32)
    a.put("k", b"two", "text/plain", if_match=etag)
    assert a.read("k").data == b"two"


def test_delete_if_match(pair: tuple[Store, Store]) -> None:
    a, _ = pair
    first = a.put("k", b"one", "text/plain")
    a.put("k", b"two", "text/plain")  # someone replaced it
    with pytest.raises(Conflict):
        a.delete("k", if_match=first)
    assert a.read("k").data == b"two"
    a.delete("k", if_match=a.read("k").etag)
    assert a.head("k") is None
    a.delete("k", if_match=first)  # nothing there: nothing to do


def test_copy_if_none_match_and_source_condition(pair: tuple[Store, Store]) -> None:
    a, b = pair
    etag = a.put("src.jpg", b"bytes", "image/jpeg")
    b.copy_from(a, "src.jpg", "dst.jpg", content_type="image/jpeg", if_none_match=True, source_etag=etag)
    with pytest.raises(Conflict):  # the destination is taken (S3: CopyObject If-None-Match, 2025)
        b.copy_from(a, "src.jpg", "dst.jpg", content_type="image/jpeg", if_none_match=True)
    a.put("src.jpg", b"new bytes", "image/jpeg")
    with pytest.raises(Conflict):  # the source is no longer the object read
        b.copy_from(a, "src.jpg", "other.jpg", content_type="image/jpeg", source_etag=etag)
    assert b.head("other.jpg") is None


def test_create_only_if_absent_is_atomic_between_threads(pair: tuple[Store, Store]) -> None:
    """Eight writers of one key at the same moment: exactly one wins, the rest get Conflict."""
    a, b = pair
    a.put("src", b"x", "text/plain")
    wins: list[int] = []
    lost: list[int] = []
    go = threading.Barrier(8)

    def writer(n: int) -> None:
        go.wait()
        try:
            if n % 2:
                b.put("key", f"{n}".encode(), "text/plain", if_none_match=True)
            else:
                b.copy_from(a, "src", "key", content_type="text/plain", if_none_match=True)
            wins.append(n)
        except Conflict:
            lost.append(n)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(lost) == 7


def test_s3_refuses_what_s3_would(aws_mock: Any) -> None:
    """The fault layer answers as S3: a key over 1024 bytes, metadata over 2 KB (names without
    `x-amz-meta-`, plus values)."""
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="bucket-a")
    store = S3Store(s3, "bucket-a")
    store.put("é" * 512, b"x", "text/plain")  # 1024 bytes: fits
    with pytest.raises(StoreError) as info:
        store.put("é" * 512 + "x", b"x", "text/plain")
    assert info.value.code == "KeyTooLongError"
    store.put("m", b"x", "text/plain", {"k": "v" * 2047})
    with pytest.raises(StoreError) as info:
        store.put("m2", b"x", "text/plain", {"k": "v" * 2048})
    assert info.value.code == "MetadataTooLarge"
    with pytest.raises(StoreError) as info:
        store.copy_from(store, "m", "m3", content_type="text/plain", metadata={"kk": "v" * 2047})
    assert info.value.code == "MetadataTooLarge"
