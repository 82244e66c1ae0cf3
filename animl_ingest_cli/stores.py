"""The places images live: S3 buckets and the local stage's folders, behind one small interface.

botocore errors are translated here into `StoreError` / `NotFound`, so nothing above parses them.
ETags are returned without their quotes. A `copy_from` with a `content_type` replaces the object's
metadata (`MetadataDirective=REPLACE`, what the ingest function does); without one it keeps the
object as it is (`COPY`). `copy_exact` is the operator moves' copy: the object as it is, only while
the source still has the ETag the caller listed (and, with `overwrite=False`, only to a free key),
multipart objects part by part so that the ETag is kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import mimetypes
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import botocore.exceptions

from animl_ingest_cli.aws import error_code, is_credentials_error
from animl_ingest_cli.errors import CredentialsError, NotFound, StoreError

RETRYABLE_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout",
                   "RequestTimeTooSkewed", "Throttling", "ThrottlingException", "503", "500"}
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


@dataclass
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: dt.datetime | None = None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class Store(Protocol):
    bucket: str

    def uri(self, key: str = "") -> str: ...

    def get(self, key: str) -> bytes: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def put(self, key: str, data: bytes, content_type: str,
            metadata: dict[str, str] | None = None) -> str: ...

    def copy_from(self, src: Store, src_key: str, key: str, content_type: str | None = None,
                  metadata: dict[str, str] | None = None) -> str: ...

    def copy_exact(self, src: Store, src_key: str, key: str, etag: str, size: int,
                   overwrite: bool = True) -> str: ...

    def delete(self, key: str) -> None: ...

    def delete_many(self, keys: Iterable[str]) -> list[tuple[str, str]]: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...


def _strip(etag: str | None) -> str:
    return (etag or "").strip('"')


def is_multipart_etag(etag: str) -> bool:
    """A multipart upload's ETag is `<md5 of the part md5s>-<part count>`, not the md5 of the bytes."""
    head, sep, tail = etag.rpartition("-")
    return bool(sep and head and tail.isdigit())


# Headers CopyObject keeps with MetadataDirective=COPY that a multipart copy must carry over itself.
_KEPT_HEADERS = ("ContentType", "CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage")


def guess_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


class S3Store:
    """One S3 bucket."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"

    def _fail(self, exc: Exception, op: str, key: str = "") -> Exception:
        if is_credentials_error(exc):
            return CredentialsError(f"AWS credentials missing or refused ({op} {self.uri(key)})")
        code = error_code(exc)
        if code in {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}:
            what = "bucket" if code == "NoSuchBucket" else "object"
            return NotFound(f"{op}: no such {what}: {self.uri(key)}", code=code)
        if isinstance(exc, botocore.exceptions.ClientError):
            msg = exc.response.get("Error", {}).get("Message") or code
            return StoreError(f"{op} {self.uri(key)}: {code}: {msg}", code=code,
                              retryable=code in RETRYABLE_CODES)
        return StoreError(f"{op} {self.uri(key)}: {type(exc).__name__}: {exc}", retryable=True)

    def get(self, key: str) -> bytes:
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._fail(exc, "GetObject", key) from None

    def head(self, key: str) -> ObjectInfo | None:
        try:
            r = self.s3.head_object(Bucket=self.bucket, Key=key)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            err = self._fail(exc, "HeadObject", key)
            if isinstance(err, NotFound):
                return None
            raise err from None
        return ObjectInfo(key, r["ContentLength"], _strip(r.get("ETag")), r.get("LastModified"),
                          r.get("ContentType"), dict(r.get("Metadata") or {}))

    def put(self, key: str, data: bytes, content_type: str,
            metadata: dict[str, str] | None = None) -> str:
        try:
            r = self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
                                   Metadata=metadata or {})
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._fail(exc, "PutObject", key) from None
        return _strip(r.get("ETag"))

    def copy_from(self, src: Store, src_key: str, key: str, content_type: str | None = None,
                  metadata: dict[str, str] | None = None) -> str:
        if not isinstance(src, S3Store):
            data = src.get(src_key)
            info = None if content_type else src.head(src_key)
            return self.put(key, data, content_type or (info.content_type if info else None)
                            or guess_type(key), metadata if content_type else
                            (info.metadata if info else None))
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key,
                                "CopySource": {"Bucket": src.bucket, "Key": src_key}}
        if content_type:
            args.update(MetadataDirective="REPLACE", ContentType=content_type, Metadata=metadata or {})
        else:
            args["MetadataDirective"] = "COPY"
        try:
            r = self.s3.copy_object(**args)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._fail(exc, "CopyObject", key) from None
        return _strip(r.get("CopyObjectResult", {}).get("ETag"))

    def copy_exact(self, src: Store, src_key: str, key: str, etag: str, size: int,
                   overwrite: bool = True) -> str:
        """The object as it is (`MetadataDirective=COPY`), only if the source still has `etag`;
        without `overwrite`, only if `key` is free (`If-None-Match: *`, 412 otherwise).

        A multipart source is copied part by part with its own part boundaries, so the copy's ETag
        equals the source's (a plain CopyObject would give it a new one) and can be compared.
        """
        if not isinstance(src, S3Store):
            return self.copy_from(src, src_key, key)
        free = {} if overwrite else {"IfNoneMatch": "*"}
        if is_multipart_etag(etag):
            return self._copy_parts(src, src_key, key, etag, size, free)
        try:
            r = self.s3.copy_object(Bucket=self.bucket, Key=key, MetadataDirective="COPY",
                                    CopySource={"Bucket": src.bucket, "Key": src_key},
                                    CopySourceIfMatch=f'"{etag}"', **free)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._fail(exc, "CopyObject", key) from None
        return _strip(r.get("CopyObjectResult", {}).get("ETag"))

    def _copy_parts(self, src: S3Store, src_key: str, key: str, etag: str, size: int,
                    free: dict[str, str]) -> str:
        quoted = f'"{etag}"'
        try:  # the object's headers, then each part's size (a HEAD with PartNumber)
            whole = self.s3.head_object(Bucket=src.bucket, Key=src_key, IfMatch=quoted)
            count = int(etag.rpartition("-")[2])
            sizes = [self.s3.head_object(Bucket=src.bucket, Key=src_key, PartNumber=n)["ContentLength"]
                     for n in range(1, count + 1)]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise src._fail(exc, "HeadObject", src_key) from None
        if not whole["ContentLength"] == sum(sizes) == size:
            raise StoreError(f"{src.uri(src_key)}: {whole['ContentLength']} bytes in {sum(sizes)} bytes of "
                             f"parts, {size} listed", code="SizeMismatch")
        kept = {h: whole[h] for h in _KEPT_HEADERS if whole.get(h)}
        try:
            upload = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key,
                                                     Metadata=whole.get("Metadata") or {}, **kept)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._fail(exc, "CreateMultipartUpload", key) from None
        upload_id = upload["UploadId"]
        op = "UploadPartCopy"
        try:
            parts, offset = [], 0
            for number, part_size in enumerate(sizes, start=1):
                r = self.s3.upload_part_copy(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                    CopySource={"Bucket": src.bucket, "Key": src_key}, CopySourceIfMatch=quoted,
                    CopySourceRange=f"bytes={offset}-{offset + part_size - 1}")
                parts.append({"PartNumber": number, "ETag": r["CopyPartResult"]["ETag"]})
                offset += part_size
            op = "CompleteMultipartUpload"
            r = self.s3.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts}, **free)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            try:
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                pass  # an abandoned upload is invisible and expires with a lifecycle rule
            raise self._fail(exc, op, key) from None
        return _strip(r.get("ETag"))

    def delete(self, key: str) -> None:
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=key)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._fail(exc, "DeleteObject", key) from None

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
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                err = self._fail(exc, "DeleteObjects")
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
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for o in page.get("Contents", []):
                    yield ObjectInfo(o["Key"], o["Size"], _strip(o.get("ETag")), o.get("LastModified"))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise self._fail(exc, "ListObjectsV2", prefix) from None


class LocalStore:
    """A folder standing in for a bucket. With `meta_root`, content type and user metadata are kept in
    sidecar JSON files outside the folder (the local stage's buckets); without, they are guessed
    (a plain folder of images given to `ingest`)."""

    def __init__(self, root: Path, bucket: str | None = None, meta_root: Path | None = None) -> None:
        self.root = Path(root)
        self.bucket = bucket or self.root.name
        self.meta_root = meta_root

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

    @staticmethod
    def _atomic_write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no such object: {self.uri(key)}", code="NoSuchKey") from None
        except (IsADirectoryError, NotADirectoryError):
            raise NotFound(f"no such object: {self.uri(key)}", code="NoSuchKey") from None
        except OSError as exc:
            raise StoreError(f"read {self.uri(key)}: {exc.strerror}") from None

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
            metadata: dict[str, str] | None = None) -> str:
        path = self._path(key)
        etag = hashlib.md5(data).hexdigest()
        try:
            mp = self._meta_path(key)
            if mp is not None:
                self._atomic_write(mp, json.dumps({"content_type": content_type, "etag": etag,
                                                   "size": len(data),
                                                   "metadata": metadata or {}}).encode())
            self._atomic_write(path, data)
        except OSError as exc:
            raise StoreError(f"write {self.uri(key)}: {exc.strerror}") from None
        return etag

    def copy_from(self, src: Store, src_key: str, key: str, content_type: str | None = None,
                  metadata: dict[str, str] | None = None) -> str:
        data = src.get(src_key)
        if content_type is None:
            info = src.head(src_key)
            content_type = (info.content_type if info else None) or guess_type(key)
            metadata = info.metadata if info else None
        return self.put(key, data, content_type, metadata)

    def copy_exact(self, src: Store, src_key: str, key: str, etag: str, size: int,
                   overwrite: bool = True) -> str:
        """The object as it is, only if its bytes still have the md5 `etag` (local ETags are md5s)
        and, without `overwrite`, only if `key` is free."""
        if not overwrite and self.head(key) is not None:
            raise StoreError(f"{self.uri(key)} already exists", code="PreconditionFailed")
        data = src.get(src_key)
        if hashlib.md5(data).hexdigest() != etag:
            raise StoreError(f"{src.uri(src_key)} changed since it was listed", code="PreconditionFailed")
        info = src.head(src_key)
        return self.put(key, data, (info.content_type if info else None) or guess_type(key),
                        info.metadata if info else None)

    def delete(self, key: str) -> None:
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
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".tmp-"))
            rel_dir = os.path.relpath(dirpath, self.root)
            for name in sorted(filenames):
                if name.startswith(".tmp-"):
                    continue
                key = name if rel_dir == "." else f"{rel_dir.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    info = self.head(key)
                    if info is not None:
                        yield info
