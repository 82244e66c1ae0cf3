"""Bulk uploads: a zip given to `ingest` read as a store, and the AWS Batch submission.

A zip is hostile until proven otherwise: the entry rules are batchjob.entries' (the bulk-upload job's
own); skipped entries are reported, never written anywhere. Entry reads are bounded by the declared
size (zipfile stops there and a lying header fails its CRC), so a zip bomb costs at most
MAX_ENTRY_BYTES of memory. The local stage unpacks a bulk-upload zip with the job itself
(`Ingestor._local_batch` -> batchjob.job).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from animl_ingest_cli import keys
from animl_ingest_cli.aws import AWS_ERRORS, translate
from animl_ingest_cli.batchjob.entries import DIRECTORY, MAX_ENTRIES, MAX_ENTRY_BYTES, plan
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import ConfigError, InputError, NotFound, StoreError
from animl_ingest_cli.stores import Blob, ObjectInfo, Store


@dataclass
class ZipEntry:
    name: str  # the entry's path inside the zip (UTF-8, normalised; see batchjob.entries)
    size: int
    problem: str | None  # why it is skipped; None when it is a safe image entry


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
        self._entries = [e for e in plan(infos) if e.problem != DIRECTORY]
        self._safe = {e.path: e.info for e in self._entries if e.written}

    @classmethod
    def open(cls, path: Path) -> ZipSource:
        try:
            fh = path.open("rb")
        except OSError as exc:
            raise InputError(f"cannot open {path}: {exc.strerror}") from None
        return cls(fh, str(path))

    def entries(self) -> Iterator[ZipEntry]:
        for e in self._entries:
            yield ZipEntry(e.path, e.size, None if e.written else e.reason)

    def uri(self, key: str = "") -> str:
        return f"{self.label}!{key}" if key else self.label

    def read(self, key: str, limit: int | None = None) -> Blob:
        """An entry's bytes, never more than MAX_ENTRY_BYTES whatever `limit` (larger entries are not
        safe ones), with their md5 for an ETag (a zip has none) and their image type (as `head`)."""
        info = self._safe.get(key)
        if info is None:
            raise NotFound(f"no such entry: {self.uri(key)}", code="NoSuchKey")
        try:
            with self.zip.open(info) as fh:  # zipfile stops at the declared size, then checks the CRC
                data = fh.read(MAX_ENTRY_BYTES + 1)[:MAX_ENTRY_BYTES]
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            raise StoreError(f"corrupt zip entry {self.uri(key)}: {exc}") from None
        return Blob(data, hashlib.md5(data).hexdigest(), keys.content_type_for(key))

    def head(self, key: str) -> ObjectInfo | None:
        info = self._safe.get(key)
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
        """The safe image entries under `prefix` (what `read` gives)."""
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
