"""Bulk uploads: zips read safely, the AWS Batch submission, and the local stage's own unpacking.

A zip is hostile until proven otherwise: entries that escape their folder, absolute paths, symlinks,
hidden files, `__MACOSX`, unsupported types and entries over the size limit are skipped and reported,
never written anywhere. Entry reads are bounded by the declared size (zipfile stops there and a lying
header fails its CRC), so a zip bomb costs at most MAX_ENTRY_BYTES of memory.
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
import stat
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from animl_ingest_cli import keys
from animl_ingest_cli.aws import AWS_ERRORS, translate
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import ApiError, ConfigError, InputError, NotFound, StoreError
from animl_ingest_cli.stores import MAX_OBJECT_BYTES, ObjectInfo, Store

if TYPE_CHECKING:
    from animl_ingest_cli.ingest import Ingestor, Outcome

MAX_ENTRY_BYTES = MAX_OBJECT_BYTES  # a camera-trap image is a few MB; the API refuses >= 8 MB anyway
MAX_ENTRIES = 200_000


@dataclass
class ZipEntry:
    name: str  # the entry's path inside the zip, as stored
    size: int
    problem: str | None  # why it is skipped; None when it is a safe image entry


def entry_problem(info: zipfile.ZipInfo) -> str | None:
    """Why an entry must not be processed, or None when it is a safe, supported image."""
    name = info.filename
    if info.is_dir():
        return "directory"
    if "\\" in name:
        name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    parts = name.split("/")
    if any(p == ".." for p in parts) or posixpath.normpath(name).startswith(".."):
        return "path escapes the zip's folder"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if "__MACOSX" in parts:
        return "__MACOSX resource fork"
    if any(p.startswith(".") for p in parts if p):
        return "hidden file"
    if keys.kind(name) != "image":
        return "unsupported file type"
    if info.file_size > MAX_ENTRY_BYTES:
        return f"entry too large ({info.file_size} bytes, limit {MAX_ENTRY_BYTES})"
    if info.flag_bits & 0x1:
        return "encrypted entry"
    return None


class ZipSource:
    """A zip file read as a read-only store: its safe image entries are the objects."""

    is_bucket = False

    def __init__(self, fileobj: IO[bytes], label: str) -> None:
        self.label = label
        self.bucket = posixpath.basename(label)
        try:
            self.zip = zipfile.ZipFile(fileobj)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise InputError(f"not a readable zip file: {label} ({exc})") from None
        infos = self.zip.infolist()
        if len(infos) > MAX_ENTRIES:
            raise InputError(f"zip has too many entries ({len(infos)}, limit {MAX_ENTRIES}): {label}")
        self._infos = {i.filename: i for i in infos}

    @classmethod
    def open(cls, path: Path) -> ZipSource:
        try:
            fh = path.open("rb")
        except OSError as exc:
            raise InputError(f"cannot open {path}: {exc.strerror}") from None
        return cls(fh, str(path))

    def entries(self) -> Iterator[ZipEntry]:
        for info in self._infos.values():
            if info.is_dir():
                continue
            yield ZipEntry(info.filename, info.file_size, entry_problem(info))

    def uri(self, key: str = "") -> str:
        return f"{self.label}!{key}" if key else self.label

    def get(self, key: str, limit: int | None = None) -> bytes:
        """An entry's bytes; never more than MAX_ENTRY_BYTES (larger entries are not safe ones)."""
        info = self._infos.get(key)
        if info is None or entry_problem(info):
            raise NotFound(f"no such entry: {self.uri(key)}", code="NoSuchKey")
        try:
            with self.zip.open(info) as fh:
                return fh.read(MAX_ENTRY_BYTES + 1)[:MAX_ENTRY_BYTES]
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            raise StoreError(f"corrupt zip entry {self.uri(key)}: {exc}") from None

    def head(self, key: str) -> ObjectInfo | None:
        info = self._infos.get(key)
        if info is None:
            return None
        return ObjectInfo(key, info.file_size, "", None, keys.content_type_for(key), {})

    # A zip is read only: the writing half of the Store interface refuses, so that a caller that
    # mistook one for a bucket gets a one-line error for that object, not a crash.
    def _read_only(self, op: str, key: str = "") -> StoreError:
        return StoreError(f"{op} {self.uri(key)}: a zip file is read only", code="ReadOnly")

    def put(self, key: str, data: bytes, content_type: str,
            metadata: dict[str, str] | None = None, md5: str | None = None, *,
            if_none_match: bool = False, if_match: str | None = None) -> str:
        raise self._read_only("put", key)

    def copy_from(self, src: Store, src_key: str, key: str, content_type: str | None = None,
                  metadata: dict[str, str] | None = None, *, if_none_match: bool = False,
                  source_etag: str | None = None) -> str:
        raise self._read_only("copy", key)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        raise self._read_only("delete", key)

    def delete_many(self, keys: Iterable[str]) -> list[tuple[str, str]]:
        return [(k, "ReadOnly") for k in keys]

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The safe image entries under `prefix` (what `get` gives)."""
        for entry in self.entries():
            if entry.problem is None and entry.name.startswith(prefix):
                yield ObjectInfo(entry.name, entry.size, "", None, keys.content_type_for(entry.name), {})

    def close(self) -> None:
        self.zip.close()


def submit_batch_job(ctx: StageContext, bucket: str, key: str, batch: str) -> str:
    """Hand a bulk-upload zip to AWS Batch exactly as the Node function did (job `process-batch`,
    env TASK = the zip's md). Returns the job id."""
    names = ctx.names
    found = ctx.params.get_many([names.batch_queue_param, names.batch_job_param])
    queue, job = found.get(names.batch_queue_param), found.get(names.batch_job_param)
    if queue is None or job is None:
        raise ConfigError(f"cannot submit {key}: SSM parameters {names.batch_queue_param} and "
                          f"{names.batch_job_param} are required")
    task = {"Bucket": bucket, "Key": key, "errors": [], "FileName": keys.file_name(key), "batchId": batch}
    try:
        r = ctx.client("batch").submit_job(
            jobName="process-batch", jobQueue=queue.value, jobDefinition=job.value,
            containerOverrides={"environment": [{"name": "TASK", "value": json.dumps(task)}]})
    except AWS_ERRORS as exc:
        raise translate(exc, f"Batch SubmitJob for {key}") from None
    return str(r.get("jobId"))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_local_batch(ingestor: Ingestor, src: Store, key: str, batch: str, delete_source: bool,
                    out: Outcome) -> list[Outcome]:
    """The local stage has no AWS Batch: unpack the zip into the ingestion bucket under
    `batch-<uuid>/` as the batch job does, then process each image as its S3 event would."""
    from animl_ingest_cli.ingest import FAILED, SKIPPED, Outcome

    api = ingestor.api
    ingestion = ingestor.ctx.store("ingestion")
    results: list[Outcome] = []
    with tempfile.TemporaryFile() as tmp:
        try:
            tmp.write(src.get(key))
            tmp.seek(0)
            zsrc = ZipSource(tmp, src.uri(key))
        except (StoreError, InputError) as exc:
            out.outcome, out.error, out.complete = FAILED, exc.message, False
            _batch_error(api, exc.message, batch)
            return [out]
        entries = list(zsrc.entries())
        safe = [e for e in entries if e.problem is None]
        start = _now()
        try:
            fields = {"_id": batch, "total": len(safe), "uploadComplete": start}
            if not safe:
                fields.update(processingStart=start, processingEnd=start)
            api.update_batch(fields)
            api.update_batch({"_id": batch, "processingStart": _now()})
        except ApiError as exc:
            out.outcome, out.error, out.complete = FAILED, exc.message, False
            _batch_error(api, exc.message, batch)
            return [out]
        written: list[str] = []
        for e in entries:
            if e.problem:
                results.append(Outcome(zsrc.uri(e.name), e.name, SKIPPED, reason=e.problem))
                continue
            target = f"{batch}/{e.name}"
            try:
                ingestion.put(target, zsrc.get(e.name), keys.content_type_for(e.name))
            except StoreError as exc:
                results.append(Outcome(zsrc.uri(e.name), e.name, FAILED, error=exc.message,
                                       complete=False))
                continue
            written.append(target)
        zsrc.close()
    if len(written) == len(safe) and delete_source:
        try:
            src.delete(key)
        except StoreError as exc:
            out.complete, out.error = False, f"unpacked, but the zip was not deleted: {exc.message}"
    elif len(written) != len(safe):
        out.complete, out.error = False, "some entries could not be unpacked; the zip is kept"
    out.reason = f"unpacked {len(written)} images locally"
    out.destinations.extend(ingestion.uri(k) for k in written)
    for target in written:
        results.extend(ingestor.run(ingestion, target, delete_source=True))
    try:
        api.update_batch({"_id": batch, "ingestionComplete": _now(), "processingEnd": _now()})
    except ApiError as exc:
        _batch_error(api, exc.message, batch)
    return [out, *results]


def _batch_error(api: object, message: str, batch: str) -> None:
    try:
        api.create_batch_error(message, batch)  # type: ignore[attr-defined]
    except ApiError:
        pass
