"""The operator moves' copy: the object exactly as it is, only while the source still has the ETag
that was listed and, when asked, only to a free key.

It lives with the operator commands, not in stores.py, because only operators make it: the ingest
function's code (and so its role's permissions) never needs multipart copies.
"""

from __future__ import annotations

import hashlib
from typing import Any

from animl_ingest_cli.aws import AWS_ERRORS, translate, translated
from animl_ingest_cli.errors import StoreError
from animl_ingest_cli.stores import S3Store, Store, guess_type

# Headers CopyObject keeps with MetadataDirective=COPY that a multipart copy must carry over itself.
KEPT_HEADERS = ("ContentType", "CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage")


def is_multipart_etag(etag: str) -> bool:
    """A multipart upload's ETag is `<md5 of the part md5s>-<part count>`, not the md5 of the bytes."""
    head, sep, tail = etag.rpartition("-")
    return bool(sep and head and tail.isdigit())


def copy_exact(src: Store, src_key: str, dst: Store, key: str, etag: str, size: int,
               overwrite: bool = True) -> str:
    """Copy `src_key` to `key` as it is and return the copy's ETag, for the caller to compare.

    On S3: a server-side CopyObject with `MetadataDirective=COPY` and `CopySourceIfMatch`; without
    `overwrite`, `If-None-Match: *` as well (412 when the key is taken). A multipart source is
    copied part by part with its own part boundaries, so that the copy's ETag equals the source's
    (a plain CopyObject would give it a new one). Elsewhere (the local stage's folders): the bytes,
    checked against the md5 `etag`, with their content type and metadata.
    """
    if isinstance(src, S3Store) and isinstance(dst, S3Store):
        free = {} if overwrite else {"IfNoneMatch": "*"}
        if is_multipart_etag(etag):
            return _copy_parts(src, src_key, dst, key, etag, size, free)
        with translated(f"CopyObject {src.uri(src_key)} to {dst.uri(key)}"):
            r = dst.s3.copy_object(Bucket=dst.bucket, Key=key, MetadataDirective="COPY",
                                   CopySource={"Bucket": src.bucket, "Key": src_key},
                                   CopySourceIfMatch=f'"{etag}"', **free)
        return r["CopyObjectResult"]["ETag"].strip('"')
    if not overwrite and dst.head(key) is not None:
        raise StoreError(f"{dst.uri(key)} already exists", code="PreconditionFailed")
    data = src.read(src_key).data
    if hashlib.md5(data).hexdigest() != etag:
        raise StoreError(f"{src.uri(src_key)} changed since it was listed", code="PreconditionFailed")
    info = src.head(src_key)
    return dst.put(key, data, (info.content_type if info else None) or guess_type(key),
                   info.metadata if info else None)


def _copy_parts(src: S3Store, src_key: str, dst: S3Store, key: str, etag: str, size: int,
                free: dict[str, str]) -> str:
    s3: Any = dst.s3
    quoted = f'"{etag}"'
    # the object's headers, then each part's size (a HEAD with PartNumber)
    with translated(f"HeadObject {src.uri(src_key)}"):
        whole = s3.head_object(Bucket=src.bucket, Key=src_key, IfMatch=quoted)
        sizes = [s3.head_object(Bucket=src.bucket, Key=src_key, PartNumber=n)["ContentLength"]
                 for n in range(1, int(etag.rpartition("-")[2]) + 1)]
    if not whole["ContentLength"] == sum(sizes) == size:
        raise StoreError(f"{src.uri(src_key)}: {whole['ContentLength']} bytes in {sum(sizes)} bytes of "
                         f"parts, {size} listed", code="SizeMismatch")
    kept = {h: whole[h] for h in KEPT_HEADERS if whole.get(h)}
    with translated(f"CreateMultipartUpload {dst.uri(key)}"):
        upload_id = s3.create_multipart_upload(Bucket=dst.bucket, Key=key,
                                               Metadata=whole.get("Metadata") or {}, **kept)["UploadId"]
    try:
        parts, offset = [], 0
        for number, part_size in enumerate(sizes, start=1):
            r = s3.upload_part_copy(Bucket=dst.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                    CopySource={"Bucket": src.bucket, "Key": src_key},
                                    CopySourceIfMatch=quoted,
                                    CopySourceRange=f"bytes={offset}-{offset + part_size - 1}")
            parts.append({"PartNumber": number, "ETag": r["CopyPartResult"]["ETag"]})
            offset += part_size
        r = s3.complete_multipart_upload(Bucket=dst.bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts}, **free)
    except AWS_ERRORS as exc:
        try:
            s3.abort_multipart_upload(Bucket=dst.bucket, Key=key, UploadId=upload_id)
        except AWS_ERRORS:
            pass  # an abandoned upload is invisible and expires with a lifecycle rule
        raise translate(exc, f"multipart copy {src.uri(src_key)} to {dst.uri(key)}") from None
    return r["ETag"].strip('"')
