"""What S3 enforces and moto does not, enforced inside moto itself (in-process and its server).

moto (pinned in pyproject) checks `If-None-Match: *` / `If-Match` on PutObject, `If-None-Match: *` on
CompleteMultipartUpload and `If-Match` on DeleteObject, but:
- not the CopyObject destination conditions (`If-None-Match: *`, `If-Match`), nor the copy source
  condition `x-amz-copy-source-if-match` on CopyObject and UploadPartCopy;
- not atomically: it looks, then writes, and two requests in its threaded server interleave, so two
  "create only if absent" writes to one key can both succeed;
- not S3's limits: an object key is at most 1024 bytes of UTF-8 (400 KeyTooLongError) and user
  metadata at most 2048 bytes, counted as S3 counts it (`s3_metadata_size`: 400 MetadataTooLarge).

`install()` wraps moto's object-level write handlers (PUT, POST, DELETE on a key, and DeleteObjects)
in one lock and checks all of the above inside it, so that check and write are one step, as in S3.
It patches the classes, so it holds for moto in-process (`mock_aws`) and for its server running in
this process (`ThreadedMotoServer`), whichever process the requests come from.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

from animl_ingest_cli.limits import MAX_KEY_BYTES, MAX_METADATA_BYTES, s3_metadata_size

_LOCK = threading.RLock()
refused: Counter[str] = Counter()  # what these rules answered, by error code (for the figures)


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:  # noqa: D401
    refused[code] += 1
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>s3rules</RequestId></Error>").encode()
    return status, {"Content-Type": "application/xml"}, body


def _headers(resp: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in resp.headers.items()}


def _etag(resp: Any, bucket: str, key: str) -> str | None:
    try:
        obj = resp.backend.get_object(bucket, key)
    except Exception:  # noqa: BLE001 - no such bucket: moto answers that itself
        return None
    return None if obj is None else obj.etag.strip('"')


def _metadata(headers: dict[str, str]) -> dict[str, str]:
    return {k[len("x-amz-meta-"):]: v for k, v in headers.items() if k.startswith("x-amz-meta-")}


Answer = tuple[int, dict[str, str], bytes]


def _limits(key: str, headers: dict[str, str], with_metadata: bool) -> Answer | None:
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return _error(400, "KeyTooLongError", "Your key is too long")
    if with_metadata and s3_metadata_size(_metadata(headers)) > MAX_METADATA_BYTES:
        return _error(400, "MetadataTooLarge", "Your metadata headers exceed the maximum allowed size")
    return None


def _copy_source(value: str) -> tuple[str, str]:
    path = unquote(value.split("?", 1)[0]).lstrip("/")
    bucket, _, key = path.partition("/")
    return bucket, key


def _match(want: str, have: str | None) -> bool:
    return have is not None and want.strip().strip('"') in ("*", have)


def _put(original: Callable[..., Any]) -> Callable[..., Any]:
    def put(self: Any, query: dict[str, Any], key_name: str) -> Any:
        with _LOCK:
            h = _headers(self)
            part = bool(query.get("uploadId") and query.get("partNumber"))
            source = h.get("x-amz-copy-source")
            copy_replaces = h.get("x-amz-metadata-directive", "COPY").upper() == "REPLACE"
            refused_ = _limits(key_name, h, with_metadata=not part and (source is None or copy_replaces))
            if refused_:
                return refused_
            if source is not None:
                sb, sk = _copy_source(source)
                want = h.get("x-amz-copy-source-if-match")
                if want is not None and not _match(want, _etag(self, sb, sk)):
                    return _error(412, "PreconditionFailed", "x-amz-copy-source-If-Match did not hold")
                if not part:  # CopyObject: the destination's conditions (S3 since 2025)
                    have = _etag(self, self.bucket_name, key_name)
                    if h.get("if-none-match", "").strip() == "*" and have is not None:
                        return _error(412, "PreconditionFailed", "If-None-Match did not hold")
                    if "if-match" in h and not _match(h["if-match"], have):
                        return _error(412 if have is not None else 404,
                                      "PreconditionFailed" if have is not None else "NoSuchKey",
                                      "If-Match did not hold")
            return original(self, query, key_name)
    return put


def _post(original: Callable[..., Any]) -> Callable[..., Any]:
    def post(self: Any, request: Any, body: bytes, bucket_name: str, query: dict[str, Any],
             key_name: str) -> Any:
        with _LOCK:
            h = _headers(self)
            refused_ = _limits(key_name, h, with_metadata="uploads" in query)
            if refused_:
                return refused_
            return original(self, request, body, bucket_name, query, key_name)
    return post


def _locked(original: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kw: Any) -> Any:
        with _LOCK:
            return original(*args, **kw)
    return call


@contextmanager
def installed() -> Iterator[None]:
    """The rules for the duration of the block (tests: an autouse fixture)."""
    from moto.s3.responses import S3Response

    saved = {name: getattr(S3Response, name) for name in
             ("_key_response_put", "_key_response_post", "_key_response_delete", "_bucket_response_post")}
    S3Response._key_response_put = _put(saved["_key_response_put"])  # type: ignore[method-assign]
    S3Response._key_response_post = _post(saved["_key_response_post"])  # type: ignore[method-assign]
    S3Response._key_response_delete = _locked(saved["_key_response_delete"])  # type: ignore[method-assign]
    S3Response._bucket_response_post = _locked(saved["_bucket_response_post"])  # type: ignore[method-assign]
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(S3Response, name, fn)
