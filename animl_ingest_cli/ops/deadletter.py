"""Dead-letter triage: counts per error folder, and redrive (each object back to where it came from).

Dead-letter keys are `<ERROR>/<imageId or UNKNOWN_ID>/<FileName>`; the ingest function writes the
object's origin into its S3 metadata (`original-bucket`, `original-key`, percent-encoded). Objects
dead-lettered by the Node function carry no such metadata: they go back to the ingestion bucket's
root under their file name.

A redriven image whose error persists is dead-lettered again under the same key while the redrive
is still running, so redrive always stages its moves (see moves.py): the object it deletes after the
copy is its own staged copy, never the ingest function's new one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from animl_ingest_cli import keys
from animl_ingest_cli.config import is_bucket_name
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import InputError, RefusedError
from animl_ingest_cli.ops.moves import (
    DEFAULT_CONCURRENCY,
    STAGING_PREFIX,
    Move,
    MoveOutcome,
    MoveSummary,
    run_moves,
)
from animl_ingest_cli.ops.targets import Targets
from animl_ingest_cli.stores import Store

DUPLICATE = "DUPLICATE_IMAGE"


@dataclass
class ErrorFolder:
    error: str  # the folder name: the error text the ingest function dead-lettered under
    objects: int = 0
    bytes: int = 0
    newest: dt.datetime | None = None
    in_transit: int = 0  # staged by an interrupted redrive: rerun the redrive to finish them

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.error, "objects": self.objects, "bytes": self.bytes,
                "newest": self.newest.isoformat() if self.newest else None,
                "in_transit": self.in_transit}


def list_errors(ctx: StageContext) -> list[ErrorFolder]:
    """One entry per error folder, sorted by name (streams the listing; keeps only the counts)."""
    folders: dict[str, ErrorFolder] = {}
    for info in ctx.store("dead-letter").list():
        staged = info.key.startswith(STAGING_PREFIX)
        key = info.key[len(STAGING_PREFIX):] if staged else info.key
        error = key.split("/", 1)[0] if "/" in key else ""
        f = folders.setdefault(error, ErrorFolder(error))
        if staged:
            f.in_transit += 1
            continue
        f.objects += 1
        f.bytes += info.size
        if info.last_modified and (f.newest is None or info.last_modified > f.newest):
            f.newest = info.last_modified
    return [folders[k] for k in sorted(folders)]


def check_folder(ctx: StageContext, error: str) -> None:
    """A folder that is not there (a typo, another stage) is an input error naming the folders that
    are, never `moved 0`."""
    src = ctx.store("dead-letter")
    error = error.rstrip("/")
    for prefix in (f"{error}/", f"{STAGING_PREFIX}{error}/"):
        if next(iter(src.list(prefix)), None) is not None:
            return
    folders = [f for f in list_errors(ctx) if f.error]
    if not folders:
        raise InputError(f"no dead-letter folder {error!r} on {ctx.stage}: the dead-letter bucket "
                         f"{src.uri()} is empty")
    shown = ", ".join(f"{f.error!r} ({f.objects + f.in_transit})" for f in folders[:20])
    more = f" and {len(folders) - 20} more" if len(folders) > 20 else ""
    raise InputError(f"no dead-letter folder {error!r} on {ctx.stage}; the folders are: {shown}{more}")


def count_folder(ctx: StageContext, error: str, prefix: str = "") -> int:
    """How many objects a redrive of `error` (under `prefix`) would look at: the progress bar's total."""
    src = ctx.store("dead-letter")
    folder = f"{error.rstrip('/')}/{prefix}"
    return sum(1 for _ in src.list(folder)) + sum(1 for _ in src.list(STAGING_PREFIX + folder))


def warnings_for(error: str) -> list[str]:
    if error == DUPLICATE:
        return ["DUPLICATE_IMAGE: animl-api already holds these images; each comes back as a "
                "duplicate and is dead-lettered again, unless its serving copies are missing "
                "(then they are made and the image counts as served)"]
    return []


def original_location(dl_key: str, metadata: dict[str, str], ingestion_bucket: str) -> tuple[str, str]:
    """Where a dead-lettered object came from: its metadata, else (Node era) the ingestion bucket's
    root under its file name."""
    bucket, key = keys.origin(metadata)
    return bucket or ingestion_bucket, key or dl_key.rsplit("/", 1)[-1]


def redrive(ctx: StageContext, error: str, *, prefix: str = "", concurrency: int = DEFAULT_CONCURRENCY,
            dry_run: bool = False, on_outcome: Callable[[MoveOutcome], None] | None = None,
            confirm: Callable[[str], None] | None = None,
            allow_buckets: Iterable[str] = (),
            confirm_prod: Callable[[str], None] | None = None) -> MoveSummary:
    """Send every object of one error folder (optionally only keys under `prefix` inside it) back to
    its original bucket and key, verified, then delete it from the dead-letter bucket.
    `confirm(description)` is called before anything changes.

    Only the stage's own buckets and those in `allow_buckets` are written to (ops/targets.py): a
    dead letter from any other bucket is left in place and reported. When a bucket in
    `allow_buckets` is a prod bucket (and the stage is not prod), `confirm_prod(description)` is
    called too; without it, the redrive is refused."""
    error = error.rstrip("/")
    if not error:
        raise InputError(f"--error needs the error folder's name (see 'animl-ingest deadletter list "
                         f"--stage {ctx.stage}')")
    src = ctx.store("dead-letter")
    ingestion = ctx.bucket("ingestion")
    targets = Targets.for_stage(ctx, allow_buckets)
    stores: dict[str, Store] = {}
    check_folder(ctx, error)
    if confirm and not dry_run:
        confirm(f"Redrive every object in {src.uri(error + '/' + prefix)} to where it came from")
    prod = targets.prod_buckets()
    if prod and not dry_run:
        action = f"Redrive dead letters of {ctx.stage} into {', '.join(prod)}"
        if confirm_prod is None:
            raise RefusedError(f"{action}: needs the prod confirmation")
        confirm_prod(action)

    def listed() -> Iterator[Move]:
        folder = f"{error}/{prefix}"
        for info in src.list(folder):
            yield Move(info.key, info.etag, info.size, None, "")
        for info in src.list(STAGING_PREFIX + folder):
            yield Move(info.key[len(STAGING_PREFIX):], info.etag, info.size, None, "", staged=True)

    def prepare(m: Move) -> Move | None:
        info = src.head(m.src_key)
        if info is None:
            return None  # gone since the listing
        bucket, key = original_location(m.key, info.metadata, ingestion)
        if not is_bucket_name(bucket):
            return Move(m.key, info.etag, info.size, None, key, m.staged,
                        problem=f"its original bucket {bucket!r} is not a bucket name; left in place")
        refused = targets.refusal(bucket)
        if refused:
            return Move(m.key, info.etag, info.size, None, key, m.staged,
                        problem=f"its original bucket {refused}")
        if bucket not in stores:
            stores[bucket] = ctx.store_for_bucket(bucket)
        return Move(m.key, info.etag, info.size, stores[bucket], key, m.staged)

    return run_moves(ctx, "deadletter redrive", src, listed(), stage_first=True,
                     concurrency=concurrency, dry_run=dry_run, prepare=prepare, on_outcome=on_outcome,
                     details={"from": src.uri(), "error": error, "prefix": prefix})
