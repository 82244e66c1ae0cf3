"""Key layouts (docs/animl.md, Keys): event keys, file names, batches, serving and dead-letter keys."""

from __future__ import annotations

import hashlib
import posixpath
import re
import urllib.parse

from animl_ingest_cli.api_rules import TOO_LARGE, UNKNOWN_DATE, UNKNOWN_SERIAL, is_duplicate
from animl_ingest_cli.limits import MAX_KEY_BYTES, cut_utf8, decode_meta

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
BATCH_EXTENSIONS = (".zip",)
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
BATCH_ID_RE = re.compile(rf"^batch-{_UUID}$")
_BATCH_PREFIX_RE = re.compile(rf"^(batch-{_UUID})(?=/|\.zip$)")
SERVING_SIZES = ("original", "medium", "small")
UNKNOWN_ID = "UNKNOWN_ID"
MAX_FOLDER_BYTES = 200  # one segment of a dead-letter key (an image id) at most: well inside S3's 1024
MAX_ID_BYTES = MAX_FOLDER_BYTES  # an image id longer than this is named by its digest in a dead-letter key
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


# --- dead-letter folders: a closed vocabulary ---------------------------------------------------------
# The folder says what kind of failure it was; the failure's own text (which may name keys, buckets or
# whatever a server answered) goes into the dead letter's `error` metadata, never into its key.
# animl-api's validation errors, under the names Node-era dead-letter buckets already hold:
# (UNKNOWN_SERIAL, UNKNOWN_DATE, TOO_LARGE: from api_rules, the one home of animl-api's rules)
# API Gateway's fixed answers in front of animl-api (its 403 for a bad key, its 5xx texts):
FORBIDDEN = "Forbidden"
GATEWAY_ANSWERS = (FORBIDDEN, "Internal server error", "Endpoint request timed out",
                   "Service Unavailable", "Too Many Requests")
# the contract's codes (docs/animl.md, Keys):
DUPLICATE_IMAGE = "DUPLICATE_IMAGE"      # an E11000 duplicate key
MULTIPLE_ERRORS = "MULTIPLE_ERRORS"      # more than one error
CORRUPTED_IMAGE_FILE = "CORRUPTED_IMAGE_FILE"  # any error text mentioning "corrupt"
UNKNOWN_ERROR = "UNKNOWN_ERROR"          # an empty error, or one of no kind listed here
# This project's own:
API_TIMEOUT = "API_TIMEOUT"              # animl-api did not answer in time, after the retries
API_UNREACHABLE = "API_UNREACHABLE"      # no connection to animl-api, after the retries
API_ERROR = "API_ERROR"                  # any other error answer from animl-api (4xx/5xx body, GraphQL)
INVALID_API_ANSWER = "INVALID_API_ANSWER"  # createImage answered an _id that is not this image's
STORAGE_ERROR = "STORAGE_ERROR"          # the serving copies could not be written
IMAGE_ERROR = "IMAGE_ERROR"              # the image could not be resized (not a "corrupt" one)
DEAD_LETTER_FOLDERS = (UNKNOWN_SERIAL, UNKNOWN_DATE, TOO_LARGE, *GATEWAY_ANSWERS, DUPLICATE_IMAGE,
                       MULTIPLE_ERRORS, CORRUPTED_IMAGE_FILE, UNKNOWN_ERROR, API_TIMEOUT, API_UNREACHABLE,
                       API_ERROR, INVALID_API_ANSWER, STORAGE_ERROR, IMAGE_ERROR)
# What this project's API client says, as the texts begin (animl_ingest_cli.api makes them):
API_TIMEOUT_TEXT = "animl-api timed out"
API_UNREACHABLE_TEXT = "animl-api unreachable"
_OWN_TEXTS = ((API_TIMEOUT_TEXT, API_TIMEOUT), (API_UNREACHABLE_TEXT, API_UNREACHABLE))


def dead_letter_folder(errors: list[str], unknown: str = UNKNOWN_ERROR) -> str:
    """The dead-letter folder for a list of error texts, in the order of docs/animl.md (Keys), always
    one of DEAD_LETTER_FOLDERS. `unknown` is the folder for a single text of no listed kind (API_ERROR for
    an error answer from the API, UNKNOWN_ERROR for a validation error it gave that we do not know)."""
    if unknown not in DEAD_LETTER_FOLDERS:
        raise ValueError(f"not a dead-letter folder: {unknown!r}")
    if is_duplicate(errors):
        return DUPLICATE_IMAGE
    if len(errors) > 1:
        return MULTIPLE_ERRORS
    text = " ".join((errors[0] if errors else "").split())
    if not text:
        return UNKNOWN_ERROR
    if text in DEAD_LETTER_FOLDERS:
        return text
    if "corrupt" in text.lower():
        return CORRUPTED_IMAGE_FILE
    for start, folder in _OWN_TEXTS:
        if text.startswith(start):
            return folder
    return unknown


def dead_letter_key(folder: str, image_id: str | None, name: str, attempt: int = 1, origin: str = "") -> str:
    """`<ERROR>/<imageId or UNKNOWN_ID>/<FileName>`; attempt 2, 3... adds `-2`, `-3` before the extension.

    Within S3's 1024-byte key limit: when the whole would be longer, the name is shortened to a
    short stable one, the first bytes of its stem (whole characters) + `~` + 12 hex digits of the
    sha256 of `origin` (the original bucket/key, whose full text is in the object's metadata)."""
    ident = image_id or UNKNOWN_ID
    if len(ident.encode("utf-8")) > MAX_ID_BYTES:
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


# --- keys the tool writes for itself ------------------------------------------------------------------
# Prefixes under which this tool keeps its own objects in a bucket (the move engine's staging area).
# Nothing a user or a camera uploads may land there: in the parking lot (the one bucket whose keys are
# the user's own, copied from the ingestion bucket) a key that starts with a reserved prefix, or with
# the escape prefix itself, is stored under ESCAPE_PREFIX + key, and unpark takes exactly one
# ESCAPE_PREFIX off again. Dead-letter keys cannot collide: they start with a folder of the closed
# vocabulary above.
STAGING_PREFIX = ".animl-moving/"
ESCAPE_PREFIX = ".animl-key/"
RESERVED_PREFIXES = (STAGING_PREFIX, ESCAPE_PREFIX)


def is_reserved(key: str) -> bool:
    return key.startswith(RESERVED_PREFIXES)


def park_key(key: str) -> str:
    """The parking-lot key for an ingestion key: the same key, escaped when it is a reserved one."""
    return ESCAPE_PREFIX + key if is_reserved(key) else key


def unpark_key(parked: str) -> str:
    """The ingestion key a parking-lot key goes back to (the inverse of `park_key`)."""
    return parked[len(ESCAPE_PREFIX):] if parked.startswith(ESCAPE_PREFIX) else parked


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
