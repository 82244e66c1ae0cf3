"""The verified move shared by unpark and dead-letter redrive: copy, check, and only then delete.

Each object is copied server-side as it is, the copy's own ETag is compared with the source's ETag
from the listing (reading the destination back would race with the ingest function consuming it),
and only verified sources are deleted, in batches of 1000. An object is therefore always in the
source, the destination, or both; never in neither, whenever the process stops.

Two things make a rerun finish the job without copying anything twice (a second copy into the
ingestion bucket would be ingested twice):
- a journal in the state directory lists sources whose copy was verified but not yet deleted; a
  rerun deletes those without copying again, even when the ingest function has already consumed
  the copy;
- a destination that already holds the same object (same ETag) is not copied to again; one that
  holds another object is never overwritten (the copy only goes to a free key).

When the destination's consumer may write the source key again while we work (redrive: the ingest
function dead-letters the image again under the same key; unpark forced during maintenance: it parks
it again), deleting the source after the copy could delete that new object. Such moves go through a
staging area first (`stage_first`): the object is copied to `.animl-moving/<key>` in the source
bucket, the original is deleted, then the staged copy is moved to the destination. Nothing but this
engine writes under the staging prefix, so its deletes can never hit someone else's object.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

from animl_ingest_cli import audit, keys
from animl_ingest_cli.config import MOVE_CONCURRENCY, state_dir
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import (
    EXIT_SOME_FAILED,
    AnimlError,
    CredentialsError,
    InputError,
    RefusedError,
    StoreError,
)
from animl_ingest_cli.files import LockFile, atomic_write
from animl_ingest_cli.ops.exactcopy import copy_exact
from animl_ingest_cli.stores import DELETE_BATCH, ObjectInfo, Store

T = TypeVar("T")
STAGING_PREFIX = keys.STAGING_PREFIX  # one of the prefixes keys.py reserves for the tool itself
CHUNK = DELETE_BATCH  # objects in flight at once: one DeleteObjects call of sources per chunk
DEFAULT_CONCURRENCY = MOVE_CONCURRENCY
SPARE_CONNECTIONS = 8  # the listing, the DeleteObjects calls and SSM beside the copies
PLANS = {"copy": "copy, verify, delete from the source",
         "present": "delete from the source only (the destination already holds it)",
         "journaled": "delete from the source only (copied by an earlier run)"}


def connections_for(concurrency: int) -> int:
    """HTTP connections the S3 client should keep for a move `concurrency` copies wide: one a copy
    (each worker has one request under way), plus the main thread's (open_stage(connections=))."""
    return concurrency + SPARE_CONNECTIONS


class SomeFailed(AnimlError):
    """Some objects could not be moved (each was left where it was)."""

    exit_code = EXIT_SOME_FAILED


class MoveInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run, after the copies under way finished and their sources were deleted."""

    def __init__(self, summary: MoveSummary) -> None:
        super().__init__("interrupted")
        self.summary = summary


@dataclass
class Move:
    """One object to move: where it is in the source, where it goes."""

    key: str  # the object's key in the source bucket, outside the staging area
    etag: str
    size: int
    dst: Store | None
    dst_key: str
    staged: bool = False  # already under STAGING_PREFIX (an interrupted staged move)
    problem: str | None = None  # why it cannot be moved: reported as failed, left in place
    # What a listing of the destination showed at this key (None: nothing), when the caller listed it:
    # saves one HEAD per object. The copy itself still refuses a taken key (If-None-Match).
    dst_listed: ObjectInfo | None | Literal[False] = False

    @property
    def src_key(self) -> str:
        return STAGING_PREFIX + self.key if self.staged else self.key


@dataclass
class MoveOutcome:
    key: str
    to: str
    status: str  # moved | already | failed | planned
    detail: str = ""
    size: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "to": self.to, "status": self.status, "detail": self.detail or None,
                "size": self.size}


@dataclass
class MoveSummary:
    selected: int = 0  # objects taken from the listing
    moved: int = 0  # copied, verified, deleted from the source
    already: int = 0  # found already copied; deleted from the source without a new copy
    failed: int = 0  # left in the source (see each outcome)
    planned: int = 0  # dry run
    bytes_moved: int = 0
    limited: bool = False  # stopped at the --max-delete limit with objects left
    interrupted: bool = False
    requests: Counter[str] = field(default_factory=Counter)  # S3 API calls by operation

    def to_dict(self) -> dict[str, Any]:
        total = sum(self.requests.values())
        return {"selected": self.selected, "moved": self.moved, "already": self.already,
                "failed": self.failed, "planned": self.planned, "bytes_moved": self.bytes_moved,
                "limited": self.limited, "interrupted": self.interrupted,
                "requests": dict(sorted(self.requests.items())), "requests_total": total,
                # per object taken out of the source (moved, or found already copied), not per listed
                "requests_per_object": round(total / (self.moved + self.already), 3)
                if self.moved + self.already and total else None}


@contextlib.contextmanager
def count_requests(client: Any | None, into: Counter[str]) -> Iterator[Counter[str]]:
    """Count every S3 API call `client` makes meanwhile (botocore's before-call event), by operation."""
    if client is None:  # the local stage: folders, no requests
        yield into
        return
    lock = threading.Lock()

    def handler(model: Any, **_: Any) -> None:
        with lock:
            into[model.name] += 1

    uid = f"animl-count-{id(into)}"
    client.meta.events.register("before-call.s3", handler, unique_id=uid)
    try:
        yield into
    finally:
        client.meta.events.unregister("before-call.s3", unique_id=uid)


class Journal:
    """Sources whose copy was verified but which may not be deleted yet (one JSON line each).

    Appended before each delete batch, so a run killed at any moment leaves behind exactly what a
    rerun needs to delete without copying again; rewritten to what is still pending when a run ends
    (removed when nothing is). Entries only count for a source still holding the same ETag. One run
    per source bucket at a time (a lock file).
    """

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._pending: dict[str, str] = {}
        self._lock = threading.Lock()
        self._fh: IO[str] | None = None
        self._lockfile: LockFile | None = None

    @classmethod
    def for_source(cls, stage: str, src: Store, read_only: bool = False) -> Journal:
        uri = src.uri()
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", src.bucket)
        digest = hashlib.sha256(uri.encode()).hexdigest()[:10]
        return cls(state_dir() / "moves" / f"{stage}-{safe}-{digest}.jsonl", read_only)

    def __enter__(self) -> Journal:
        if not self.read_only:
            lock = self.path.with_suffix(".lock")
            self._lockfile = LockFile(lock, f"another move from the same bucket is running (lock {lock})")
            try:
                self._lockfile.acquire()
            except RefusedError:
                self._lockfile = None
                raise
        try:
            with self.path.open(encoding="utf-8") as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                        self._pending[entry["key"]] = entry["etag"]
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a kill: its copy is re-checked instead
        except FileNotFoundError:
            pass
        if not self.read_only:
            self._fh = self.path.open("a", encoding="utf-8")
        return self

    def done(self, key: str, etag: str) -> bool:
        with self._lock:
            return self._pending.get(key) == etag

    def add(self, key: str, etag: str) -> None:
        with self._lock:
            self._pending[key] = etag
            if self._fh is not None:
                self._fh.write(json.dumps({"key": key, "etag": etag}, ensure_ascii=False) + "\n")
                self._fh.flush()

    def settle(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._pending.pop(key, None)

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            with self._lock:
                pending = dict(self._pending)
            if pending:
                atomic_write(self.path, "".join(
                    json.dumps({"key": key, "etag": etag}, ensure_ascii=False) + "\n"
                    for key, etag in pending.items()), prefix=".journal-")
            else:
                self.path.unlink(missing_ok=True)
        if self._lockfile is not None:
            self._lockfile.release()
            self._lockfile = None


class Mover:
    """Runs moves out of one source store, `concurrency` copies at a time, one chunk after another."""

    def __init__(self, src: Store, journal: Journal, *, concurrency: int = DEFAULT_CONCURRENCY,
                 stage_first: bool = False, dry_run: bool = False,
                 prepare: Callable[[Move], Move | None] | None = None,
                 on_outcome: Callable[[MoveOutcome], None] | None = None) -> None:
        if concurrency < 1:
            raise InputError("--concurrency must be at least 1")
        self.src = src
        self.journal = journal
        self.concurrency = concurrency
        self.stage_first = stage_first
        self.dry_run = dry_run
        self.prepare = prepare
        self.on_outcome = on_outcome
        self.summary = MoveSummary()

    def run(self, moves: Iterable[Move], limit: int | None = None) -> MoveSummary:
        """Move everything `moves` yields (at most `limit` objects). Ctrl-C lets the copies under way
        finish, deletes what they verified, then raises MoveInterrupted (a KeyboardInterrupt)."""
        if limit is not None and limit < 0:
            raise InputError("--max-delete must be at least 0")
        it = iter(moves)
        try:
            with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="move") as pool:
                while not self.summary.interrupted:
                    want = CHUNK if limit is None else min(CHUNK, limit - self.summary.selected)
                    if want <= 0:
                        self.summary.limited = next(it, None) is not None
                        break
                    chunk = list(islice(it, want))
                    if not chunk:
                        break
                    self.summary.selected += len(chunk)
                    self._chunk(pool, chunk)
        except KeyboardInterrupt:
            self.summary.interrupted = True
        if self.summary.interrupted:
            raise MoveInterrupted(self.summary)
        return self.summary

    # --- one chunk ---------------------------------------------------------------------------------
    def _chunk(self, pool: ThreadPoolExecutor, chunk: list[Move]) -> None:
        if self.prepare is not None:
            chunk = self._prepare_all(pool, chunk)
        todo = []
        for m in chunk:
            if m.problem or m.dst is None:
                self._report(m, "failed", m.problem or "no destination")
            else:
                todo.append(m)
        if self.stage_first and not self.dry_run:
            todo = [m for m in todo if m.staged] + self._stage_all(pool, [m for m in todo if not m.staged])
            if self.summary.interrupted:
                return  # what was staged is finished by a rerun
        verified: list[tuple[Move, str]] = []
        fatal: CredentialsError | None = None
        for m, result in self._each(pool, todo, self._copy):
            if isinstance(result, AnimlError):
                self._report(m, "failed", result.message)
                fatal = fatal or (result if isinstance(result, CredentialsError) else None)
            elif self.dry_run:
                self._report(m, "planned", result)
            else:
                verified.append((m, result))
        if verified:
            failed = dict(self.src.delete_many([m.src_key for m, _ in verified]))
            self.journal.settle(m.src_key for m, _ in verified if m.src_key not in failed)
            for m, status in verified:
                if m.src_key in failed:
                    self._report(m, "failed", f"copied and verified, but not deleted from the source "
                                              f"({failed[m.src_key]}): a rerun deletes it")
                else:
                    self._report(m, status)
        if fatal:
            raise fatal

    def _prepare_all(self, pool: ThreadPoolExecutor, chunk: list[Move]) -> list[Move]:
        """Per-object reads a move needs first (a redrive reads each object's metadata), in the pool.
        `None` means the object is gone since the listing: nothing to do."""
        assert self.prepare is not None
        ready = []
        for m, result in self._each(pool, chunk, self.prepare):
            if isinstance(result, AnimlError):
                self._report(m, "failed", result.message)
            elif result is not None:
                ready.append(result)
        return ready

    def _stage_all(self, pool: ThreadPoolExecutor, fresh: list[Move]) -> list[Move]:
        """Copy each to the staging area, then delete the originals; returns the staged moves."""
        ok = []
        for m, result in self._each(pool, fresh, self._stage):
            if isinstance(result, AnimlError):
                self._report(m, "failed", f"not staged: {result.message}")
            else:
                ok.append(m)
        failed = dict(self.src.delete_many([m.key for m in ok]))
        staged, drop = [], []
        for m in ok:
            where = "gone" if m.key not in failed else self._original_state(m)
            if where == "gone":  # the staged copy is now the only one: move it on
                staged.append(replace(m, staged=True))
                continue
            if where == "there":  # drop the staged copy so that nothing is moved twice
                drop.append(STAGING_PREFIX + m.key)
            self._report(m, "failed", f"not deleted from the source ({failed[m.key]}); left in place")
        self.src.delete_many(drop)
        return staged

    def _original_state(self, m: Move) -> str:
        """After a failed delete: `there`, `gone`, or `unknown`. A batch whose answer was lost may have
        been deleted all the same, and then the staged copy is the only one left; when we cannot tell,
        both copies stay (a rerun finishes either way)."""
        try:
            return "there" if self.src.head(m.key) is not None else "gone"
        except AnimlError:
            return "unknown"

    def _each(self, pool: ThreadPoolExecutor, moves: list[Move],
              fn: Callable[[Move], T]) -> list[tuple[Move, T | AnimlError]]:
        """`fn` on every move in the pool. Ctrl-C: nothing new starts, what runs finishes."""
        futures = [pool.submit(fn, m) for m in moves]
        try:
            for _ in as_completed(futures):
                pass
        except KeyboardInterrupt:
            self.summary.interrupted = True
            for f in futures:
                f.cancel()
        # in the listing's order, so that a dry run reads like the listing; cancelled ones stay put
        out: list[tuple[Move, T | AnimlError]] = []
        for m, f in zip(moves, futures, strict=True):
            if not f.cancelled():
                result = _result(f)  # inferred from `f` alone (a union context would mislead mypy)
                out.append((m, result))
        return out

    # --- per object (worker threads) ---------------------------------------------------------------
    def _stage(self, m: Move) -> str:
        staging = STAGING_PREFIX + m.key
        got = copy_exact(self.src, m.key, self.src, staging, m.etag, m.size)
        if got != m.etag:
            self.src.delete(staging)
            raise StoreError(f"staged copy has ETag {got}, the source {m.etag}; left in place")
        return "staged"

    def _plan(self, m: Move) -> str:
        """`journaled` (copied by an earlier run), `present` (the destination already holds the
        same object) or `copy`; raises when the destination holds a different object."""
        assert m.dst is not None
        if self.journal.done(m.src_key, m.etag):
            return "journaled"
        existing = m.dst.head(m.dst_key) if m.dst_listed is False else m.dst_listed
        if existing is None:
            return "copy"
        if existing.etag == m.etag and existing.size == m.size:
            return "present"
        raise StoreError(f"{m.dst.uri(m.dst_key)} already holds a different object "
                         f"(ETag {existing.etag}); left in place")

    def _copy(self, m: Move) -> str:
        action = self._plan(m)
        if self.dry_run:
            return PLANS[action] + (" (staged first)" if self.stage_first and not m.staged else "")
        if action == "present":
            self.journal.add(m.src_key, m.etag)
        if action != "copy":
            return "already"
        assert m.dst is not None
        # never over an object that appeared since the look above (S3: If-None-Match)
        try:
            got = copy_exact(self.src, m.src_key, m.dst, m.dst_key, m.etag, m.size, overwrite=False)
        except StoreError as exc:
            if exc.code != "PreconditionFailed" or not self._landed(m):
                raise
            got = m.etag  # botocore retried a copy whose answer was lost: it had landed
        if got != m.etag:
            raise StoreError(f"the copy's ETag {got} is not the source's {m.etag}; left in the source")
        self.journal.add(m.src_key, m.etag)
        return "moved"

    def _landed(self, m: Move) -> bool:
        """After a refused conditional copy: the destination holds this very object and the source
        still does too (a retry met its own first attempt, not someone else's upload)."""
        assert m.dst is not None
        try:
            there, here = m.dst.head(m.dst_key), self.src.head(m.src_key)
        except AnimlError:
            return False
        return all(i is not None and i.etag == m.etag and i.size == m.size for i in (there, here))

    def _report(self, m: Move, status: str, detail: str = "") -> None:
        s = self.summary
        if status == "moved":
            s.moved += 1
            s.bytes_moved += m.size
        elif status == "already":
            s.already += 1
        elif status == "failed":
            s.failed += 1
        else:
            s.planned += 1
        if self.on_outcome:
            to = m.dst.uri(m.dst_key) if m.dst is not None else ""
            self.on_outcome(MoveOutcome(m.key, to, status, detail, m.size))


def _result(f: Future[T]) -> T | AnimlError:
    try:
        return f.result()
    except AnimlError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - one object's unexpected error must not stop the rest
        return StoreError(f"{type(exc).__name__}: {exc}")


def run_moves(ctx: StageContext, command: str, src: Store, moves: Iterable[Move], *,
              stage_first: bool = False, concurrency: int = DEFAULT_CONCURRENCY, dry_run: bool = False,
              limit: int | None = None, prepare: Callable[[Move], Move | None] | None = None,
              on_outcome: Callable[[MoveOutcome], None] | None = None,
              details: dict[str, Any] | None = None) -> MoveSummary:
    """A whole move run: journal and lock, S3 request counts, and the audit log (an entry when it
    starts, so that a killed run is visible too, and one with the counts when it ends)."""
    details = details or {}
    journal = Journal.for_source(ctx.stage, src, read_only=dry_run)
    mover = Mover(src, journal, concurrency=concurrency, stage_first=stage_first, dry_run=dry_run,
                  prepare=prepare, on_outcome=on_outcome)
    s3 = None if ctx.is_local else ctx.client("s3")
    with journal, count_requests(s3, mover.summary.requests):
        if dry_run:
            return mover.run(moves, limit)
        audit.record(ctx.stage, command, phase="start", **details)
        try:
            return mover.run(moves, limit)
        finally:
            audit.record(ctx.stage, command, phase="end", **details, **{
                k: v for k, v in mover.summary.to_dict().items() if k != "requests"})
