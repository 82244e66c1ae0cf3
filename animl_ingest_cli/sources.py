"""What `ingest` was given, turned into a stream of objects to process.

A SOURCE is a file, a folder (recursive), a `.zip`, or `s3://bucket/prefix`. Only objects of the
stage's ingestion bucket are deleted after their terminal copy (what the Lambda does); every other
source is read and left as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from animl_ingest_cli import keys
from animl_ingest_cli.batches import ZipSource
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import InputError, NotFound
from animl_ingest_cli.files import iter_image_files
from animl_ingest_cli.pool import WorkItem
from animl_ingest_cli.stores import LocalStore


@dataclass
class SourceSpec:
    text: str
    kind: str  # s3 | file | folder | zip
    path: Path | None = None
    bucket: str | None = None
    prefix: str = ""


def parse_sources(sources: list[str], batch: str | None = None) -> list[SourceSpec]:
    """Check every source up front, so a typo fails before anything is processed."""
    if not sources:
        raise InputError("give at least one SOURCE: a file, a folder, a .zip or s3://bucket/prefix")
    if batch is not None and not keys.BATCH_ID_RE.match(batch):
        raise InputError(f"--batch must look like batch-<uuid v4, lower-case hex>, not {batch!r}")
    specs = []
    for text in sources:
        if text.startswith("s3://"):
            bucket, _, prefix = text[5:].partition("/")
            if not bucket:
                raise InputError(f"no bucket in {text!r}: use s3://BUCKET/PREFIX")
            specs.append(SourceSpec(text, "s3", bucket=bucket, prefix=prefix))
            continue
        path = Path(text)
        if not path.exists():
            raise InputError(f"no such file or directory: {text}")
        if path.is_dir():
            specs.append(SourceSpec(text, "folder", path=path))
        elif path.suffix.lower() == ".zip":
            specs.append(SourceSpec(text, "zip", path=path))
        elif path.is_file():
            specs.append(SourceSpec(text, "file", path=path))
        else:
            raise InputError(f"not a regular file or folder: {text}")
    if batch is not None and any(s.kind != "zip" for s in specs):
        raise InputError("--batch applies to .zip sources only")
    return specs


def check_sources_exist(ctx: StageContext, specs: list[SourceSpec]) -> None:
    """An s3:// source must name a bucket the stage can see: on the local stage a folder under
    ANIML_LOCAL_DIR/buckets, on AWS a bucket that exists. Otherwise the run would find nothing and
    report `total 0` as if all were well."""
    for spec in specs:
        if spec.kind != "s3":
            continue
        assert spec.bucket is not None
        store = ctx.store_for_bucket(spec.bucket)
        if ctx.is_local:
            if not isinstance(store, LocalStore) or not store.root.is_dir():
                raise InputError(f"no bucket {spec.bucket} on the local stage (no folder "
                                 f"{getattr(store, 'root', spec.bucket)}): to read it from AWS, pass "
                                 f"--stage dev or --stage prod")
            continue
        try:
            next(iter(store.list(spec.prefix)), None)
        except NotFound:
            raise InputError(f"no bucket {spec.bucket} on {ctx.stage} (NoSuchBucket): check the name, "
                             f"the AWS account and --stage") from None


# The stage's own output buckets are not sources: ingesting one copies each of its objects into the
# stage's buckets again (a dead-letter bucket grows by its own size at every run). Each has its command.
_NOT_SOURCES = {
    "dead-letter": ("ingesting it would dead-letter its objects a second time",
                    "to send them back, use 'animl-ingest deadletter redrive --error FOLDER --stage {stage}' "
                    "(the folders: 'animl-ingest deadletter list --stage {stage}')"),
    "parkinglot": ("ingesting it would leave every object parked as well as ingested",
                   "to ingest what was parked, use 'animl-ingest unpark --stage {stage}'"),
    "serving": ("its images are served already", "there is nothing to ingest there"),
}


def refuse_stage_outputs(ctx: StageContext, specs: list[SourceSpec]) -> None:
    """InputError when a source is the stage's own dead-letter, serving or parking-lot bucket (or, on
    the local stage, a folder inside or around one), with a pointer to the right command."""
    if not ctx.is_local and all(spec.kind != "s3" for spec in specs):
        return  # files and folders of an AWS stage: no bucket names needed (nor AWS asked)
    buckets = {kind: ctx.bucket(kind) for kind in _NOT_SOURCES}
    folders = {}
    if ctx.is_local and ctx.local_root is not None:
        folders = {kind: (ctx.local_root / "buckets" / name).resolve() for kind, name in buckets.items()}
    for spec in specs:
        for kind, name in buckets.items():
            what = f"is {ctx.stage}'s {kind} bucket"
            if spec.kind == "s3":
                hit = spec.bucket == name
            elif spec.path is not None and kind in folders:
                path, folder = spec.path.resolve(), folders[kind]
                hit = path == folder or folder in path.parents
                if path in folder.parents:
                    hit, what = True, f"holds {ctx.stage}'s {kind} bucket"
            else:
                hit = False
            if hit:
                why, pointer = _NOT_SOURCES[kind]
                raise InputError(f"{spec.text} {what}: {why}; {pointer.format(stage=ctx.stage)}")


def _zip_items(path: Path, batch: str | None) -> Iterator[WorkItem]:
    # Not closed here: its entries are still being read by the workers after the listing moves on;
    # the file closes when the last work item referring to it is gone.
    zsrc = ZipSource.open(path)
    for entry in zsrc.entries():
        yield WorkItem(zsrc, entry.name, False, batch, entry.problem, entry.size)


def _local_bulk_upload(path: Path, batch: str | None) -> WorkItem:
    """The local stage: a zip is a bulk upload, unpacked by the bulk-upload job itself (batchjob)
    into the local ingestion bucket, then ingested. Checked readable here, before any work."""
    ZipSource.open(path).close()
    return WorkItem(LocalStore(path.resolve().parent), path.name, False, batch, size=_size(path))


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None  # reported by the read that fails


def iter_work(ctx: StageContext, specs: list[SourceSpec], batch: str | None = None) -> Iterator[WorkItem]:
    """Stream the objects to process; nothing is listed ahead of the work."""
    ingestion = ctx.bucket("ingestion")
    for spec in specs:
        if spec.kind == "s3":
            assert spec.bucket is not None
            store = ctx.store_for_bucket(spec.bucket)
            delete = spec.bucket == ingestion
            for info in store.list(spec.prefix):
                if not info.key.endswith("/"):
                    yield WorkItem(store, info.key, delete, size=info.size, etag=info.etag)
        elif spec.kind == "zip":
            assert spec.path is not None
            if ctx.is_local:
                yield _local_bulk_upload(spec.path, batch)
            else:
                yield from _zip_items(spec.path, batch)
        elif spec.kind == "file":
            assert spec.path is not None
            folder = spec.path.resolve().parent
            yield WorkItem(LocalStore(folder), spec.path.name, False, size=_size(spec.path))
        else:
            assert spec.path is not None
            folder_store = LocalStore(spec.path.resolve())
            # every file, so that what is not an image is reported as skipped rather than ignored
            for found in iter_image_files([spec.path], extensions=None):
                key = found.relative_to(spec.path).as_posix()
                if keys.kind(key) == "batch" and ctx.is_local:
                    yield _local_bulk_upload(spec.path / key, batch)
                elif keys.kind(key) == "batch":
                    yield from _zip_items(spec.path / key, batch)
                else:
                    yield WorkItem(folder_store, key, False, size=_size(found))
