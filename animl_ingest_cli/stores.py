"""The places images live: S3 buckets and the local stage's folders, behind one small interface.

botocore errors are translated here (by `aws.translated`, the project's one table of AWS error codes)
into `StoreError` / `NotFound` / `AccessDenied` / `CredentialsError`, so nothing above parses them.
ETags are returned without their quotes. A `copy_from` with a `content_type` replaces the object's
metadata (`MetadataDirective=REPLACE`, what the ingest function does); without one it keeps the
object as it is (`COPY`, what operator moves do).

Conditional writes (docs/concurrency.md): `put(..., if_none_match=True)` and
`copy_from(..., if_none_match=True)` create the key only if it is absent (S3 `If-None-Match: *`),
`put(..., if_match=etag)` replaces it only while it still holds that ETag, `copy_from(...,
source_etag=...)` copies only while the source still holds it (`x-amz-copy-source-if-match`), and
`delete(key, if_match=etag)` deletes only an unchanged object (`If-Match`). A condition that does not
hold raises `Conflict` (S3's 412 PreconditionFailed, or 409 ConditionalRequestConflict when another
conditional write to the key was under way: ask again). The local stage's folders give the same
answers, atomically, under a lock file shared by every process on the machine.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import mimetypes
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from animl_ingest_cli.aws import AWS_ERRORS, pages, translate, translated
from animl_ingest_cli.errors import Conflict, CredentialsError, NotFound, StoreError
from animl_ingest_cli.files import LockFile, atomic_write

__all__ = ["Blob", "Conflict", "LocalStore", "ObjectInfo", "S3Store", "Store", "TooLarge"]

DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
MAX_OBJECT_BYTES = 64 * 1024 * 1024  # the most the ingest reads into memory for one object
NO_SPACE = "NoSpace"  # StoreError.code: the local stage's file system is full (ENOSPC, EDQUOT)
_NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


@dataclass
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: dt.datetime | None = None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Blob:
    """An object's bytes with what the read saw of it (its ETag: the condition for acting on it)."""

    data: bytes
    etag: str
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class Store(Protocol):
    bucket: str
    is_bucket: bool  # False for a plain folder or a zip: objects there have no bucket to return to

    def uri(self, key: str = "") -> str: ...

    def read(self, key: str, limit: int | None = None) -> Blob:
        """The object's bytes with the ETag, content type and metadata of the very object read (a
        store without ETags gives the md5 of the bytes); TooLarge, before any byte is read, when it
        has more than `limit`."""
        ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def put(self, key: str, data: bytes, content_type: str,
            metadata: dict[str, str] | None = None, md5: str | None = None, *,
            if_none_match: bool = False, if_match: str | None = None) -> str: ...

    def copy_from(self, src: Store, src_key: str, key: str, content_type: str | None = None,
                  metadata: dict[str, str] | None = None, *, if_none_match: bool = False,
                  source_etag: str | None = None) -> str: ...

    def delete(self, key: str, *, if_match: str | None = None) -> None: ...

    def delete_many(self, keys: Iterable[str]) -> list[tuple[str, str]]: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...


class TooLarge(StoreError):
    """The object is larger than the caller reads into memory (`read`'s limit); nothing was read."""

    def __init__(self, uri: str, size: int, limit: int) -> None:
        super().__init__(f"{uri}: too large to read ({size} bytes, limit {limit})", code="TooLarge")
        self.size = size


def _strip(etag: str | None) -> str:
    return (etag or "").strip('"')


def guess_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def _conditions(if_none_match: bool, if_match: str | None) -> dict[str, str]:
    args: dict[str, str] = {}
    if if_none_match:
        args["IfNoneMatch"] = "*"
    if if_match is not None:
        args["IfMatch"] = f'"{if_match}"'
    return args


class S3Store:
    """One S3 bucket."""

    is_bucket = True

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"

    def _op(self, op: str, key: str = "") -> str:
        return f"{op} {self.uri(key)}"

    def read(self, key: str, limit: int | None = None) -> Blob:
        """One GetObject: the bytes with the ETag, content type and metadata it answered with."""
        with translated(self._op("GetObject", key)):
            r = self.s3.get_object(Bucket=self.bucket, Key=key)
            if limit is not None and r["ContentLength"] > limit:
                r["Body"].close()
                raise TooLarge(self.uri(key), r["ContentLength"], limit)
            return Blob(r["Body"].read(), _strip(r.get("ETag")), r.get("ContentType"),
                        dict(r.get("Metadata") or {}))

    def head(self, key: str) -> ObjectInfo | None:
        try:
            with translated(self._op("HeadObject", key)):
                r = self.s3.head_object(Bucket=self.bucket, Key=key)
        except NotFound:
            return None
        return ObjectInfo(key, r["ContentLength"], _strip(r.get("ETag")), r.get("LastModified"),
                          r.get("ContentType"), dict(r.get("Metadata") or {}))

    def put(self, key: str, data: bytes, content_type: str,
            metadata: dict[str, str] | None = None, md5: str | None = None, *,
            if_none_match: bool = False, if_match: str | None = None) -> str:
        with translated(self._op("PutObject", key)):
            r = self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
                                   Metadata=metadata or {}, **_conditions(if_none_match, if_match))
        return _strip(r.get("ETag"))

    def copy_from(self, src: Store, src_key: str, key: str, content_type: str | None = None,
                  metadata: dict[str, str] | None = None, *, if_none_match: bool = False,
                  source_etag: str | None = None) -> str:
        if not isinstance(src, S3Store):
            blob = src.read(src_key)
            if source_etag is not None and blob.etag != source_etag:
                raise Conflict(f"{src.uri(src_key)} is no longer the object read", code="PreconditionFailed")
            return self.put(key, blob.data, content_type or blob.content_type or guess_type(key),
                            metadata if content_type else blob.metadata, if_none_match=if_none_match)
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key,
                                "CopySource": {"Bucket": src.bucket, "Key": src_key},
                                **_conditions(if_none_match, None)}
        if source_etag is not None:
            args["CopySourceIfMatch"] = f'"{source_etag}"'
        if content_type:
            args.update(MetadataDirective="REPLACE", ContentType=content_type, Metadata=metadata or {})
        else:
            args["MetadataDirective"] = "COPY"
        with translated(self._op("CopyObject", key)):
            r = self.s3.copy_object(**args)
        return _strip(r.get("CopyObjectResult", {}).get("ETag"))

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Without `if_match`, S3's plain delete (a missing key is no error). With it: only while the
        key holds that ETag; `Conflict` when it holds another object, nothing when it holds none."""
        try:
            with translated(self._op("DeleteObject", key)):
                self.s3.delete_object(Bucket=self.bucket, Key=key, **_conditions(False, if_match))
        except NotFound as exc:
            if exc.code == "NoSuchBucket":
                raise

    def delete_many(self, keys: Iterable[str]) -> list[tuple[str, str]]:
        """Delete in batches of 1000; returns (key, error code) for each key not deleted."""
        failed: list[tuple[str, str]] = []
        batch: list[str] = []

        def flush() -> None:
            if not batch:
                return
            try:
                r = self.s3.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": k} for k in batch], "Quiet": True})
            except AWS_ERRORS as exc:
                err = translate(exc, self._op("DeleteObjects"))
                if isinstance(err, CredentialsError):
                    raise err from None
                failed.extend((k, getattr(err, "code", None) or "error") for k in batch)
            else:
                failed.extend((e["Key"], e.get("Code", "error")) for e in r.get("Errors", []))
            batch.clear()

        for key in keys:
            batch.append(key)
            if len(batch) == DELETE_BATCH:
                flush()
        flush()
        return failed

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in pages(self._op("ListObjectsV2", prefix), paginator, Bucket=self.bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                yield ObjectInfo(o["Key"], o["Size"], _strip(o.get("ETag")), o.get("LastModified"))


class LocalStore:
    """A folder standing in for a bucket. With `meta_root`, content type and user metadata are kept in
    sidecar JSON files outside the folder (the local stage's buckets); without, they are guessed
    (a plain folder of images given to `ingest`)."""

    _thread_lock = threading.RLock()  # conditional writes: one at a time in this process...

    def __init__(self, root: Path, bucket: str | None = None, meta_root: Path | None = None) -> None:
        self.root = Path(root)
        self.bucket = bucket or self.root.name
        self.meta_root = meta_root
        self.is_bucket = meta_root is not None  # a local-stage bucket, not a plain folder of files

    @contextmanager
    def _locked(self, wanted: bool) -> Iterator[None]:
        """...and across processes, a lock file beside the bucket's metadata (a lock file inside the
        folder would be listed as an object)."""
        if not wanted:
            yield
            return
        with self._thread_lock:
            if self.meta_root is None:
                yield
                return
            with LockFile(self.meta_root / ".conditional.lock"):  # waits for the other process
                yield

    def _check(self, key: str, if_none_match: bool, if_match: str | None) -> bool:
        """Raise Conflict unless the conditions hold; False when `if_match` names a missing object."""
        if not if_none_match and if_match is None:
            return True
        info = self.head(key)
        if if_none_match and info is not None:
            raise Conflict(f"{self.uri(key)} already exists", code="PreconditionFailed")
        if if_match is not None:
            if info is None:
                return False
            if info.etag != if_match:
                raise Conflict(f"{self.uri(key)} is no longer the object {if_match}",
                               code="PreconditionFailed")
        return True

    def uri(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise StoreError(f"key not allowed in a local bucket: {key!r}", code="InvalidKey")
        return self.root.joinpath(*parts)

    def _meta_path(self, key: str) -> Path | None:
        if self.meta_root is None:
            return None
        return self.meta_root.joinpath(*key.split("/")).with_name(key.split("/")[-1] + ".json")

    def _read_meta(self, key: str) -> dict[str, Any] | None:
        mp = self._meta_path(key)
        if mp is None:
            return None
        try:
            return json.loads(mp.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    @property
    def _tmp_dir(self) -> Path | None:
        """Where a local-stage bucket's writes are made before they are renamed into place: outside
        the bucket's folder (`.meta/.tmp`, no bucket name starts with a dot), so that no name a user
        may give an object is the tool's own. A plain folder writes next to the file."""
        return self.meta_root.parent / ".tmp" if self.meta_root is not None else None

    def _atomic_write(self, path: Path, data: bytes) -> None:
        atomic_write(path, data, prefix=".tmp-", tmp_dir=self._tmp_dir)

    def read(self, key: str, limit: int | None = None) -> Blob:
        """The file's bytes; its content type, metadata and ETag from the sidecar (the ETag while the
        sidecar's size is the file's, else the md5 of the bytes; the type guessed from the name)."""
        try:
            path = self._path(key)
            if limit is not None and (size := path.stat().st_size) > limit:
                raise TooLarge(self.uri(key), size, limit)
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no such object: {self.uri(key)}", code="NoSuchKey") from None
        except (IsADirectoryError, NotADirectoryError):
            raise NotFound(f"no such object: {self.uri(key)}", code="NoSuchKey") from None
        except OSError as exc:
            raise StoreError(f"read {self.uri(key)}: {exc.strerror}") from None
        meta = self._read_meta(key) or {}
        etag = meta.get("etag") if meta.get("size") == len(data) else None
        return Blob(data, etag or hashlib.md5(data).hexdigest(),
                    meta.get("content_type") or guess_type(key), dict(meta.get("metadata") or {}))

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        meta = self._read_meta(key) or {}
        etag = meta.get("etag") if meta.get("size") == st.st_size else None
        if etag is None:
            etag = hashlib.md5(path.read_bytes()).hexdigest()
        return ObjectInfo(key, st.st_size, etag,
                          dt.datetime.fromtimestamp(st.st_mtime, dt.UTC),
                          meta.get("content_type") or guess_type(key), dict(meta.get("metadata") or {}))

    def put(self, key: str, data: bytes, content_type: str,
            metadata: dict[str, str] | None = None, md5: str | None = None, *,
            if_none_match: bool = False, if_match: str | None = None) -> str:
        """`md5`: the caller's hex digest of `data` when it has one (saves hashing it again)."""
        with self._locked(if_none_match or if_match is not None):
            if not self._check(key, if_none_match, if_match):
                raise NotFound(f"no such object: {self.uri(key)}", code="NoSuchKey")
            return self._put(key, data, content_type, metadata, md5)

    def _put(self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None,
             md5: str | None) -> str:
        path = self._path(key)
        etag = md5 or hashlib.md5(data).hexdigest()
        try:
            mp = self._meta_path(key)
            if mp is not None:
                self._atomic_write(mp, json.dumps({"content_type": content_type, "etag": etag,
                                                   "size": len(data),
                                                   "metadata": metadata or {}}).encode())
            self._atomic_write(path, data)
        except OSError as exc:
            raise StoreError(f"write {self.uri(key)}: {exc.strerror}",
                             code=NO_SPACE if exc.errno in _NO_SPACE_ERRNOS else None) from None
        return etag

    def copy_from(self, src: Store, src_key: str, key: str, content_type: str | None = None,
                  metadata: dict[str, str] | None = None, *, if_none_match: bool = False,
                  source_etag: str | None = None) -> str:
        blob = src.read(src_key)
        if source_etag is not None and blob.etag != source_etag:
            raise Conflict(f"{src.uri(src_key)} is no longer the object read", code="PreconditionFailed")
        if content_type is None:
            content_type = blob.content_type or guess_type(key)
            metadata = blob.metadata
        return self.put(key, blob.data, content_type, metadata, if_none_match=if_none_match)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        with self._locked(if_match is not None):
            if self._check(key, False, if_match):
                self._delete(key)

    def _delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"delete {self.uri(key)}: {exc.strerror}") from None
        mp = self._meta_path(key)
        if mp is not None:
            try:
                mp.unlink()
            except OSError:
                pass
        self._prune(path.parent, self.root)
        if mp is not None and self.meta_root is not None:
            self._prune(mp.parent, self.meta_root)

    @staticmethod
    def _prune(folder: Path, stop: Path) -> None:
        """Remove empty folders left by a delete, as S3 has no folders."""
        while folder != stop and stop in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def delete_many(self, keys: Iterable[str]) -> list[tuple[str, str]]:
        failed = []
        for key in keys:
            try:
                self.delete(key)
            except StoreError as exc:
                failed.append((key, exc.code or "error"))
        return failed

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(self.root):
            plain = self.meta_root is None  # only a plain folder has the tool's temporary files in it
            dirnames[:] = sorted(d for d in dirnames if not (plain and d.startswith(".tmp-")))
            rel_dir = os.path.relpath(dirpath, self.root)
            for name in sorted(filenames):
                if plain and name.startswith(".tmp-"):
                    continue
                key = name if rel_dir == "." else f"{rel_dir.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    info = self.head(key)
                    if info is not None:
                        yield info
