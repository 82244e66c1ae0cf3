"""The bulk-upload job: one `batch-<uuid>.zip` in, its images under `batch-<uuid>/` out.

What the Node `ingest-zip` job did, in the same order and with the same names (docs/bulk-upload.md),
with its holes closed:

1. maintenance on: the zip is parked (same key in the parking lot; a managed copy, so zips over
   5 GB too) and nothing else happens; unpark brings it back and the ingest function resubmits it;
2. the zip is read in place (ranged GETs, `zipread`), its entries planned (`entries`): `updateBatch
   {_id, total, uploadComplete}` (with `total == 0` also processingStart/End and no stack), then one
   `createBatchError` per kind of entry skipped, renamed or unreadable;
3. the per-batch stack is reused or created, and waited for with failure detection (`stack`), then
   `updateBatch {processingStart}`;
4. entries are written with bounded concurrency, each create-only-if-absent (`If-None-Match: *`),
   large ones in parts; each confirmed write goes into a progress journal (`<batch>/.animl-progress/`
   in the same bucket, ignored by the ingest function: not an image), so a rerun after a crash or a
   kill skips what was written even after the ingest function consumed it; an entry written but not
   yet journalled is found by its size and CRC (412 on the conditional write, then HEAD);
5. only when every entry to write is written (none failed) is the zip deleted (`If-Match` its ETag),
   then `updateBatch {ingestionComplete}` and the journal removed. A failed entry keeps the zip,
   is reported, and the job exits non-zero: a rerun retries only what is missing.

SIGTERM (AWS Batch stopping the job) and Ctrl-C stop the writing between entries: the journal is
flushed and the job exits 130; a rerun resumes. Maintenance turned on while the job writes does
the same, then parks the zip.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import json
import logging
import signal
import threading
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from animl_ingest_cli import keys
from animl_ingest_cli.api import Api, one_line
from animl_ingest_cli.aws import AWS_ERRORS, error_code, translated
from animl_ingest_cli.batchjob import entries as ent
from animl_ingest_cli.batchjob.stack import DEFAULT_POLL, DEFAULT_TIMEOUT, StackFailed, ensure_stack
from animl_ingest_cli.batchjob.zipread import TAIL_BYTES, Pinned, ReadStats, S3RangeReader
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import (
    EXIT_INTERRUPTED,
    AnimlError,
    ApiError,
    Conflict,
    InputError,
    NotFound,
    StoreError,
)
from animl_ingest_cli.stores import LocalStore, S3Store, Store

log = logging.getLogger("animl_ingest.batch")

PROGRESS = ".animl-progress"      # <batch>/.animl-progress/: hidden, so no zip entry can land there
SMALL_BYTES = 8 << 20             # entries up to this size are read whole and PUT once
PART_BYTES = 8 << 20              # larger ones go in parts of this size
DEFAULT_WORKERS = 16
FLUSH_SECONDS = 2.0               # the journal is written at least this often while entries complete
FLUSH_ENTRIES = 500
CRC_META = "zip-crc32"            # user metadata on each written entry: the zip's CRC of its bytes


class JobFailed(AnimlError):
    """The batch could not be completed; `createBatchError` has said why. Exit 1."""

    exit_code = 1


class JobInterrupted(AnimlError):
    """Stopped (SIGTERM, Ctrl-C) between entries; the journal is flushed: a rerun resumes."""

    exit_code = EXIT_INTERRUPTED


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Task:
    """What the ingest function hands the job in env `TASK`: the zip's record."""

    bucket: str
    key: str
    batch: str

    @classmethod
    def parse(cls, text: str | None) -> Task:
        if not text:
            raise InputError("no TASK: the job needs env TASK, the zip's record as JSON "
                             '({"Bucket": ..., "Key": "batch-<uuid>.zip", ...})')
        try:
            doc = json.loads(text)
        except ValueError:
            raise InputError("TASK is not JSON") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("Bucket"), str) \
                or not isinstance(doc.get("Key"), str):
            raise InputError("TASK needs string fields Bucket and Key")
        key = doc["Key"]
        batch = keys.batch_id(key)
        if batch is None or key != f"{batch}.zip":
            raise InputError(f"TASK Key must be batch-<uuid>.zip, not {key!r}")
        return cls(doc["Bucket"], key, batch)


@dataclass
class Result:
    """What the job did. `written` are the keys of every entry now in the bucket (this run's and
    earlier runs'); `entries` the whole plan."""

    batch: str
    total: int = 0
    entries: list[ent.Entry] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    resumed: int = 0                 # entries an earlier run had written
    present: int = 0                 # entries found in the bucket, not journalled (size + CRC)
    failed: list[tuple[ent.Entry, str]] = field(default_factory=list)
    parked: bool = False
    zip_deleted: bool = False
    stack: str | None = None
    stack_created: bool = False
    updates: list[dict[str, Any]] = field(default_factory=list)
    reads: ReadStats = field(default_factory=ReadStats)

    @property
    def skipped(self) -> list[ent.Entry]:
        return [e for e in self.entries if e.problem and not e.failed and e.problem != ent.DIRECTORY]


# --- where entries are written ---------------------------------------------------------------------
def _crc_hex(crc: int) -> str:
    return f"{crc:08x}"


class Target:
    """The ingestion bucket, as the job writes it: the store's create-only-if-absent writes
    (`If-None-Match: *` on S3; a lock file on the local stage)."""

    def __init__(self, store: Store) -> None:
        self.store, self.bucket = store, store.bucket

    def uri(self, key: str) -> str:
        return self.store.uri(key)

    def put_new(self, key: str, data: bytes, content_type: str, crc: int) -> bool:
        """Write unless the key holds an object already; False when it does."""
        try:
            self.store.put(key, data, content_type, {CRC_META: _crc_hex(crc)}, if_none_match=True)
        except Conflict:
            return False
        return True

    def head(self, key: str) -> tuple[int, str] | None:
        """(size, CRC metadata) of what is at the key, None when nothing is."""
        info = self.store.head(key)
        return None if info is None else (info.size, info.metadata.get(CRC_META, ""))

    def put_json(self, key: str, doc: dict[str, Any]) -> None:
        self.store.put(key, json.dumps(doc).encode(), "application/json")

    def get_json(self, key: str) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.store.read(key).data)
        except NotFound:
            return None
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def keys(self, prefix: str) -> builtins.list[str]:
        return [o.key for o in self.store.list(prefix)]

    def delete(self, keys_: builtins.list[str]) -> None:
        failed = self.store.delete_many(keys_)
        if failed:
            raise StoreError(f"delete {self.uri(failed[0][0])}: {failed[0][1]}")


class S3Target(Target):
    """S3: large entries in parts (elsewhere an entry is one write of at most MAX_ENTRY_BYTES),
    `If-None-Match: *` on CompleteMultipartUpload."""

    def __init__(self, store: S3Store) -> None:
        super().__init__(store)
        self.s3 = store.s3

    def put_new_parts(self, key: str, fh: Any, content_type: str, crc: int) -> bool:
        """A multipart upload, one part in memory at a time. (boto3's transfer manager cannot send
        If-None-Match on CompleteMultipartUpload, so the parts are sent here.)"""
        with translated(f"CreateMultipartUpload {self.uri(key)}"):
            up = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType=content_type,
                                                 Metadata={CRC_META: _crc_hex(crc)})
        upload_id = up["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            n = 1
            while True:
                chunk = fh.read(PART_BYTES)
                if not chunk and parts:
                    break
                with translated(f"UploadPart {self.uri(key)}"):
                    r = self.s3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                            PartNumber=n, Body=chunk)
                parts.append({"PartNumber": n, "ETag": r["ETag"]})
                n += 1
                if len(chunk) < PART_BYTES:
                    break
            with translated(f"CompleteMultipartUpload {self.uri(key)}"):
                self.s3.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts}, IfNoneMatch="*")
        except Conflict:
            self._abort(key, upload_id)
            return False
        except BaseException:
            self._abort(key, upload_id)
            raise
        return True

    def _abort(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(*AWS_ERRORS):
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)


# --- the progress journal ----------------------------------------------------------------------------
class Journal:
    """Which entries are written, kept in the bucket itself: `state.json` (the phases reached) and
    `done-<run>-<n>.json` chunks (entry indices), each naming the zip's ETag so a journal of another
    upload under the same batch id is never applied."""

    def __init__(self, target: Target, batch: str, zip_etag: str) -> None:
        self.target, self.zip_etag = target, zip_etag
        self.prefix = f"{batch}/{PROGRESS}/"
        self.run = uuid.uuid4().hex[:8]
        self.state: dict[str, Any] = {}
        self.done: set[int] = set()
        self._new: list[int] = []
        self._seq = 0
        self._last = time.monotonic()

    def load(self) -> None:
        for key in sorted(self.target.keys(self.prefix)):
            doc = self.target.get_json(key)
            if not doc or doc.get("zip_etag") != self.zip_etag:
                continue
            if key.endswith("/state.json"):
                self.state = doc
            elif isinstance(doc.get("entries"), list):
                self.done.update(i for i in doc["entries"] if isinstance(i, int))

    def mark(self, **phase: Any) -> None:
        self.state.update(phase)
        self.target.put_json(self.prefix + "state.json", {**self.state, "zip_etag": self.zip_etag})

    def add(self, index: int) -> None:
        self.done.add(index)
        self._new.append(index)
        if len(self._new) >= FLUSH_ENTRIES or time.monotonic() - self._last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        if not self._new:
            return
        self._seq += 1
        self.target.put_json(f"{self.prefix}done-{self.run}-{self._seq:06d}.json",
                             {"zip_etag": self.zip_etag, "entries": sorted(self._new)})
        self._new = []

    def remove(self) -> None:
        self.target.delete(self.target.keys(self.prefix))


# --- the job -------------------------------------------------------------------------------------------
class BatchJob:
    """One run of the job over one zip. `src` holds the zip (`key`), `target` is where the entries
    go (the stage's ingestion bucket). `delete_zip` is True for a zip in the ingestion bucket."""

    def __init__(self, ctx: StageContext, api: Api, src: Store, key: str, batch: str, *,
                 delete_zip: bool = True, workers: int = DEFAULT_WORKERS,
                 stack_timeout: float = DEFAULT_TIMEOUT, stack_poll: float = DEFAULT_POLL,
                 say: Callable[[str], None] | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> None:
        self.ctx, self.api, self.src, self.key, self.batch = ctx, api, src, key, batch
        self.on_progress = on_progress  # (images written so far, images to write): a progress bar
        self.delete_zip, self.workers = delete_zip, max(1, workers)
        self.stack_timeout, self.stack_poll = stack_timeout, stack_poll
        self.say = say or log.info
        ingestion = ctx.store("ingestion")
        self.target = S3Target(ingestion) if isinstance(ingestion, S3Store) else Target(ingestion)
        self.result = Result(batch)
        self._stop = threading.Event()
        self._stop_reason = ""
        self._local = threading.local()
        self._pinned = Pinned()
        self._opened: list[Any] = []
        self._opened_lock = threading.Lock()

    # --- helpers ------------------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        """Ask the job to stop between entries (a signal handler calls this)."""
        self._stop_reason = reason
        self._stop.set()

    def _update(self, **fields: Any) -> None:
        doc = {"_id": self.batch, **fields}
        self.api.update_batch(doc)
        self.result.updates.append(doc)
        self.say(f"updateBatch {json.dumps(doc)}")

    def _batch_error(self, text: str) -> None:
        text = one_line(text, 1000)
        self.say(f"createBatchError: {text}")
        try:
            self.api.create_batch_error(text, self.batch)
        except ApiError as exc:
            log.warning("createBatchError for %s failed: %s", self.batch, exc.message)

    def _fail(self, text: str) -> JobFailed:
        self._batch_error(text)
        return JobFailed(text)

    def _open_file(self, size: int, etag: str) -> Any:
        """A fresh file object over the zip (one per thread)."""
        if isinstance(self.src, S3Store):
            fh: Any = S3RangeReader(self.src.s3, self.src.bucket, self.key, size, etag,
                                    pinned=self._pinned, stats=self.result.reads)
        elif isinstance(self.src, LocalStore):
            fh = open(Path(self.src.uri(self.key)), "rb")  # noqa: SIM115 - closed by close_all
        else:
            raise InputError(f"cannot read a zip from {self.src.uri(self.key)}")
        with self._opened_lock:
            self._opened.append(fh)
        return fh

    def _close_all(self) -> None:
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for fh in opened:
            with contextlib.suppress(Exception):
                fh.close()

    @staticmethod
    def _zip(fh: Any, label: str) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, UnicodeDecodeError) as exc:
            raise InputError(f"not a readable zip file: {label} ({exc})") from None
        except StoreError:
            raise

    # --- the steps ----------------------------------------------------------------------------
    def run(self) -> Result:
        """The whole job; JobFailed (reported) or JobInterrupted when the zip is not done."""
        r = self.result
        if self.ctx.maintenance_on():
            self._park()
            return r
        info = self.src.head(self.key)
        if info is None:
            return self._zip_gone()
        size, etag = info.size, info.etag
        journal = Journal(self.target, self.batch, etag)
        try:
            journal.load()
        except AnimlError as exc:
            raise self._fail(f"reading the progress journal failed: {exc.message}") from None
        try:
            master = self._zip(self._open_file(size, etag), self.src.uri(self.key))
            infos = master.infolist()
            if len(infos) > ent.MAX_ENTRIES:
                raise InputError(f"zip has too many entries ({len(infos)}, limit {ent.MAX_ENTRIES})")
            if master.start_dir < size - TAIL_BYTES:  # every worker reads the central directory:
                self._pin_from(master.start_dir, size, etag)  # one GET, shared, when the tail misses it
        except AnimlError as exc:
            self._close_all()
            raise self._fail(exc.message) from None
        r.entries = ent.plan(infos, prefix=f"{self.batch}/")
        r.total = ent.total(r.entries)
        todo = [e for e in r.entries if e.written]
        ends = self._extents(infos, master.start_dir)
        try:
            self._announce(journal, len(todo))
            self._write_all(journal, todo, ends, size, etag)
        except JobFailed:
            with contextlib.suppress(AnimlError):
                journal.flush()
            raise
        except AnimlError as exc:  # an API or S3 failure of the job itself (not of one entry)
            with contextlib.suppress(AnimlError):
                journal.flush()
            raise self._fail(exc.message) from None
        finally:
            self._close_all()
        if self._stop.is_set():
            journal.flush()
            if self._stop_reason == "maintenance":
                self.say("maintenance mode turned on: stopping between entries, parking the zip")
                self._park()
                return r
            self._batch_error(f"the bulk-upload job was stopped ({self._stop_reason}) after "
                              f"{len(r.written)} of {len(todo)} images; run it again to resume")
            raise JobInterrupted(f"stopped ({self._stop_reason}) after {len(r.written)} of "
                                 f"{len(todo)} images; a rerun resumes")
        journal.flush()
        if r.failed:
            shown = "; ".join(f"{e.name}: {why}" for e, why in r.failed[:3])
            raise self._fail(f"{len(r.failed)} of {len(todo)} images could not be written, so the zip "
                             f"is kept and a rerun retries them: {shown}")
        failing = [e for e in r.entries if e.failed]
        if failing:
            raise self._fail(f"{len(failing)} images in the zip cannot be read ({failing[0].reason}), "
                             "so the zip is kept")
        self._finish(journal, etag)
        return r

    def _pin_from(self, start: int, size: int, etag: str) -> None:
        if isinstance(self.src, S3Store) and start < size:
            fh = S3RangeReader(self.src.s3, self.src.bucket, self.key, size, etag, stats=self.result.reads)
            fh.seek(start)
            data = fh.read(size - start)
            fh.close()
            with self._pinned.lock:
                self._pinned.start, self._pinned.data = start, data

    @staticmethod
    def _extents(infos: list[zipfile.ZipInfo], cd_start: int) -> dict[int, int]:
        """header offset -> where the next entry (or the central directory) begins."""
        offsets = sorted({i.header_offset for i in infos} | {cd_start})
        return {a: b for a, b in zip(offsets, offsets[1:], strict=False)}

    def _announce(self, journal: Journal, to_write: int) -> None:
        """updateBatch total/uploadComplete, the reports, the stack, processingStart: each once
        (a rerun finds them in the journal's state)."""
        r = self.result
        st = journal.state
        if "uploadComplete" not in st:
            at = now_iso()
            fields: dict[str, Any] = {"total": r.total, "uploadComplete": at}
            if r.total == 0:
                fields.update(processingStart=at, processingEnd=at)
            self._update(**fields)
            journal.mark(uploadComplete=at, total=r.total)
        if not st.get("reported"):
            for line in ent.reports(r.entries):
                self._batch_error(line)
            journal.mark(reported=True)
        if r.total == 0:
            self.say("no images in the zip: no stack")
            return
        if not self.ctx.is_local:
            try:
                ready = ensure_stack(self.ctx.client("cloudformation"), self.ctx.stage, self.batch,
                                     self.src.bucket, self.key, timeout=self.stack_timeout,
                                     poll=self.stack_poll, log=self.say)
            except StackFailed as exc:
                raise self._fail(exc.message) from None
            r.stack, r.stack_created = ready.name, ready.created
        if "processingStart" not in st:
            at = now_iso()
            self._update(processingStart=at)
            journal.mark(processingStart=at)
        self.say(f"{to_write} images to write to {self.target.uri(self.batch + '/')}")

    def _write_all(self, journal: Journal, todo: list[ent.Entry], ends: dict[int, int], size: int,
                   etag: str) -> None:
        r = self.result
        done_before = [e for e in todo if e.index in journal.done]
        r.resumed = len(done_before)
        r.written.extend(f"{self.batch}/{e.path}" for e in done_before)
        if done_before:
            self.say(f"resuming: {len(done_before)} images were written by an earlier run")
        queue = sorted((e for e in todo if e.index not in journal.done),
                       key=lambda e: e.info.header_offset)
        last_check = time.monotonic()
        if self.on_progress:
            self.on_progress(len(r.written), len(todo))
        with self._signals(), ThreadPoolExecutor(self.workers, thread_name_prefix="batch") as pool:
            pending: dict[Future[str], ent.Entry] = {}

            def collect(block: bool) -> None:
                if not pending:
                    return
                done, _ = wait(list(pending), timeout=None if block else 0, return_when=FIRST_COMPLETED)
                for f in done:
                    e = pending.pop(f)
                    try:
                        how = f.result()
                    except AnimlError as exc:
                        r.failed.append((e, one_line(exc.message)))
                        continue
                    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, ValueError,
                            zlib.error) as exc:
                        r.failed.append((e, one_line(f"corrupt zip entry {e.name}: {exc}")))
                        continue
                    if how == "present":
                        r.present += 1
                    r.written.append(f"{self.batch}/{e.path}")
                    journal.add(e.index)
                    if self.on_progress:
                        self.on_progress(len(r.written), len(todo))

            try:
                for e in queue:
                    if self._stop.is_set():
                        break
                    if time.monotonic() - last_check > 5.0:
                        last_check = time.monotonic()
                        if self.ctx.maintenance_on():
                            self.stop("maintenance")
                            break
                    f = pool.submit(self._write_one, e, ends.get(e.info.header_offset, size), size, etag)
                    pending[f] = e
                    while len(pending) >= self.workers * 2:
                        collect(block=True)
                    collect(block=False)
            except KeyboardInterrupt:
                self.stop("interrupted")
            while pending:
                try:
                    collect(block=True)
                except KeyboardInterrupt:
                    self.stop("interrupted")

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGTERM (AWS Batch stopping the job) stops between entries; only the main thread may
        set a handler."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda _s, _f: self.stop("SIGTERM"))
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _thread_zip(self, size: int, etag: str) -> zipfile.ZipFile:
        zf: zipfile.ZipFile | None = getattr(self._local, "zip", None)
        if zf is None:
            fh = self._open_file(size, etag)
            zf = self._zip(fh, self.src.uri(self.key))
            self._local.zip, self._local.fh = zf, fh
        return zf

    def _write_one(self, e: ent.Entry, end: int, size: int, etag: str) -> str:
        """Write one entry; `written`, or `present` when the key already held these very bytes."""
        zf = self._thread_zip(size, etag)
        info = zf.infolist()[e.index]
        fh = self._local.fh
        if hasattr(fh, "set_window"):
            fh.set_window(info.header_offset, end)
        key = f"{self.batch}/{e.path}"
        ctype = keys.content_type_for(key)
        with zf.open(info) as data:
            if e.size <= SMALL_BYTES or not isinstance(self.target, S3Target):
                # a bounded read: zipfile's read() of a lying entry would inflate all of it first
                body = data.read(e.size + 1)
                if len(body) != e.size:
                    raise StoreError(f"zip entry {e.name}: {len(body)} bytes where the zip says {e.size}")
                new = self.target.put_new(key, body, ctype, e.crc)
            else:
                new = self.target.put_new_parts(key, data, ctype, e.crc)
        if new:
            return "written"
        there = self.target.head(key)
        if there is not None and there == (e.size, _crc_hex(e.crc)):
            return "present"
        raise StoreError(f"{self.target.uri(key)} holds another object (size and CRC differ): "
                         "left as it is")

    def _finish(self, journal: Journal, etag: str) -> None:
        r = self.result
        journal.mark(extracted=True)
        if self.delete_zip:
            try:
                self._delete_zip(etag)
            except AnimlError as exc:
                raise self._fail(f"every image is written, but the zip was not deleted: {exc.message}") \
                    from None
            r.zip_deleted = True
        self._update(ingestionComplete=now_iso())
        with contextlib.suppress(StoreError):
            journal.remove()

    def processing_end(self) -> None:
        """The local stage has no teardown: its batch ends when its images are ingested."""
        self._update(processingEnd=now_iso())

    def _delete_zip(self, etag: str) -> None:
        """Only the zip that was read: a new upload under the same key stays (`If-Match`)."""
        self.src.delete(self.key, if_match=etag)

    def _zip_gone(self) -> Result:
        """No zip: done already if an earlier run extracted everything and deleted it (it then died
        before its last updateBatch); otherwise there is nothing to run on."""
        prefix = f"{self.batch}/{PROGRESS}/state.json"
        state = self.target.get_json(prefix)
        if state and state.get("extracted"):
            self.say("the zip is gone and an earlier run wrote every image: finishing")
            self._update(ingestionComplete=now_iso())
            with contextlib.suppress(StoreError):
                self.target.delete(self.target.keys(f"{self.batch}/{PROGRESS}/"))
            self.result.zip_deleted = True
            return self.result
        raise self._fail(f"no such zip: {self.src.uri(self.key)}")

    def _park(self) -> None:
        """Maintenance: the zip waits in the parking lot under the same key; nothing else is done."""
        lot = self.ctx.store("parkinglot")
        if isinstance(self.src, S3Store) and isinstance(lot, S3Store):
            info = self.src.head(self.key)
            if info is None:
                raise self._fail(f"no such zip: {self.src.uri(self.key)}")
            try:
                # a managed copy: parts for a zip over CopyObject's 5 GB
                self.src.s3.copy({"Bucket": self.src.bucket, "Key": self.key}, lot.bucket, self.key,
                                 ExtraArgs={"CopySourceIfMatch": f'"{info.etag}"',
                                            "ContentType": "application/zip",
                                            "MetadataDirective": "REPLACE"})
            except AWS_ERRORS as exc:
                raise self._fail(f"parking the zip failed: {error_code(exc) or exc}") from None
            parked = lot.head(self.key)
            if parked is None or parked.size != info.size:
                raise self._fail("parking the zip failed: the parked copy is not the zip")
            if self.delete_zip:
                self.src.delete(self.key, if_match=info.etag)
        else:
            info = self.src.head(self.key)
            lot.copy_from(self.src, self.key, self.key, content_type="application/zip",
                          source_etag=info.etag if info else None)
            if self.delete_zip and info is not None:
                self.src.delete(self.key, if_match=info.etag)
        self.result.parked = True
        self.say(f"maintenance mode: {self.key} parked in {lot.uri(self.key)}")


def run_task(ctx: StageContext, api: Api, task: Task, **kw: Any) -> Result:
    """The job as the container runs it on an AWS stage: the zip of `task`, its entries into the
    stage's ingestion bucket; the zip is deleted at the end when it is in that bucket."""
    src = ctx.store_for_bucket(task.bucket)
    delete = task.bucket == ctx.bucket("ingestion")
    return BatchJob(ctx, api, src, task.key, task.batch, delete_zip=delete, **kw).run()


def summary(r: Result) -> dict[str, Any]:
    """The job's result as JSON (the `batch run` command prints it)."""
    return {"batch": r.batch, "total": r.total, "written": len(r.written), "resumed": r.resumed,
            "present": r.present, "skipped": len(r.skipped),
            "failed": [{"entry": e.name, "error": why} for e, why in r.failed],
            "unreadable": [{"entry": e.name, "reason": e.reason} for e in r.entries if e.failed],
            "parked": r.parked, "zip_deleted": r.zip_deleted, "stack": r.stack,
            "stack_created": r.stack_created, "updates": r.updates,
            "zip_gets": r.reads.gets, "zip_bytes_read": r.reads.bytes}
