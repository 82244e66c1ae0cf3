"""Key layouts (docs/animl.md, Keys): event keys, file names, batches, serving and dead-letter keys."""

from __future__ import annotations

import hashlib
import posixpath
import re
import urllib.parse

from animl_ingest_cli.api_rules import is_duplicate
from animl_ingest_cli.limits import MAX_KEY_BYTES, cut_utf8, decode_meta

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
BATCH_EXTENSIONS = (".zip",)
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
BATCH_ID_RE = re.compile(rf"^batch-{_UUID}$")
_BATCH_PREFIX_RE = re.compile(rf"^(batch-{_UUID})(?=/|\.zip$)")
SERVING_SIZES = ("original", "medium", "small")
UNKNOWN_ID = "UNKNOWN_ID"
MAX_FOLDER_BYTES = 200  # an error text as a folder name stays well inside S3's 1024-byte key limit
MAX_SHORT_STEM_BYTES = 200  # what is kept of a file name too long for a dead-letter key

# The S3 user metadata the ingest writes (docs/animl.md), values percent-encoded (limits.quote_meta).
# A dead letter names where it came from (what a redrive sends it back to) and why it is there:
ORIGINAL_BUCKET, ORIGINAL_KEY = "original-bucket", "original-key"
IMAGE_ID, BATCH_ID, ERROR = "image-id", "batch-id", "error"
# A serving original names the object it was made from (a rerun of that object counts as served):
SOURCE_BUCKET, SOURCE_KEY = "source-bucket", "source-key"


def decode_event_key(raw: str) -> str:
    """S3 event keys arrive URL-encoded: `+` is a space, then percent-decoding."""
    return urllib.parse.unquote_plus(raw)


def file_name(key: str) -> str:
    """The key's basename with its extension lower-cased (`IMG_0001.JPG` -> `IMG_0001.jpg`)."""
    base = posixpath.basename(key)
    stem, ext = posixpath.splitext(base)
    return stem + ext.lower()


def kind(key: str) -> str:
    """`image`, `batch` (a bulk-upload zip) or `unsupported`, by extension."""
    ext = posixpath.splitext(key)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in BATCH_EXTENSIONS:
        return "batch"
    return "unsupported"


def batch_id(key: str) -> str | None:
    """`batch-<uuid>` when the key is a bulk upload's zip or one of its images, else None."""
    m = _BATCH_PREFIX_RE.match(key)
    return m.group(1) if m else None


def batch_path(key: str, batch: str | None) -> str | None:
    """The image's path inside its zip (the key without `batch-<uuid>/`), None when not a batch image."""
    if batch and key.startswith(batch + "/"):
        return key[len(batch) + 1:]
    return None


def serving_key(size: str, image_id: str, extension: str) -> str:
    return f"{size}/{image_id}-{size}.{extension}"


def serving_keys(image_id: str, extension: str) -> dict[str, str]:
    return {size: serving_key(size, image_id, extension) for size in SERVING_SIZES}


def dead_letter_folder(errors: list[str]) -> str:
    """The dead-letter folder for a list of error texts, in the contract's order (docs/animl.md, Keys)."""
    if is_duplicate(errors):
        folder = "DUPLICATE_IMAGE"
    elif len(errors) > 1:
        folder = "MULTIPLE_ERRORS"
    else:
        text = errors[0] if errors else ""
        if "corrupt" in text.lower():
            folder = "CORRUPTED_IMAGE_FILE"
        elif not text.strip():
            folder = "UNKNOWN_ERROR"
        else:
            folder = text
    # FIX: no nested folders; one line; bounded length.
    folder = " ".join(folder.replace("/", "_").split())
    raw = folder.encode("utf-8")
    if len(raw) > MAX_FOLDER_BYTES:
        folder = raw[:MAX_FOLDER_BYTES].decode("utf-8", errors="ignore").rstrip()
    return folder or "UNKNOWN_ERROR"


def dead_letter_key(folder: str, image_id: str | None, name: str, attempt: int = 1, origin: str = "") -> str:
    """`<ERROR>/<imageId or UNKNOWN_ID>/<FileName>`; attempt 2, 3... adds `-2`, `-3` before the extension.

    Within S3's 1024-byte key limit: when the whole would be longer, the name is shortened to a
    short stable one, the first bytes of its stem (whole characters) + `~` + 12 hex digits of the
    sha256 of `origin` (the original bucket/key, whose full text is in the object's metadata)."""
    ident = image_id or UNKNOWN_ID
    if len(ident.encode("utf-8")) > MAX_FOLDER_BYTES:
        ident = "id-" + hashlib.sha256(ident.encode("utf-8")).hexdigest()[:16]
    stem, ext = posixpath.splitext(name)
    if len(ext.encode("utf-8")) > 16:
        stem, ext = name, ""
    suffix = f"-{attempt}" if attempt > 1 else ""
    key = f"{folder}/{ident}/{stem}{suffix}{ext}"
    if len(key.encode("utf-8")) <= MAX_KEY_BYTES:
        return key
    tag = "~" + hashlib.sha256((origin or name).encode("utf-8")).hexdigest()[:12]
    room = MAX_KEY_BYTES - len(f"{folder}/{ident}/{tag}{suffix}{ext}".encode())
    return f"{folder}/{ident}/{cut_utf8(stem, min(room, MAX_SHORT_STEM_BYTES))}{tag}{suffix}{ext}"


def content_type_for(key: str) -> str:
    ext = posixpath.splitext(key)[1].lower()
    return {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
            ".zip": "application/zip"}.get(ext, "application/octet-stream")


def origin(metadata: dict[str, str], bucket_field: str = ORIGINAL_BUCKET,
           key_field: str = ORIGINAL_KEY) -> tuple[str | None, str | None]:
    """The (bucket, key) an object's metadata names, decoded; None for a field it does not carry.
    A dead letter's by default; a serving original's with SOURCE_BUCKET, SOURCE_KEY."""
    md = {k.lower(): v for k, v in metadata.items()}  # S3 gives metadata names lower-case
    bucket, key = md.get(bucket_field), md.get(key_field)
    return (decode_meta(bucket) if bucket else None), (decode_meta(key) if key else None)


def is_from(metadata: dict[str, str], bucket: str, key: str, bucket_field: str = ORIGINAL_BUCKET,
            key_field: str = ORIGINAL_KEY) -> bool:
    """True when the metadata names exactly `bucket`/`key` as the object's origin."""
    return origin(metadata, bucket_field, key_field) == (bucket, key)
