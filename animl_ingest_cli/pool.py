"""The ingest worker pool: many objects in flight for the network, pixel work bounded by the cores,
memory bounded by the bytes held.

An object spends most of its time waiting: GetObject, createImage (hundreds of milliseconds at a
distance), three serving writes, a delete. The CPU part (md5, metadata, decode and thumbnails) is a
few tens of milliseconds. So the pool keeps `Limits.images` objects in flight (threads that mostly
wait on sockets), lets at most `Limits.cpu` of them do pixel work at the same moment (the
Ingestor's CPU slots), and admits a new object only while the source bytes held by those in flight
stay under `Limits.bytes` (one object larger than the cap is admitted alone). Memory is therefore
flat in the number of objects: it is bounded by the cap, not by the listing.

`IngestRun` is what the CLI, the Lambda and the batch job iterate: outcomes as they complete, with
counts for a progress display (`listed`, `done`, `total` once the listing is complete). The caller
renders; the pool decides nothing about exit codes. See docs/performance.md.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# the defaults live with the other settings (the CLI's help shows them without importing the core)
from animl_ingest_cli.config import DEFAULT_BYTES, MAX_IMAGES, MB, cpu_count, default_images
from animl_ingest_cli.ingest import SKIPPED, Ingestor, Outcome
from animl_ingest_cli.stores import MAX_OBJECT_BYTES, Store

UNKNOWN_SIZE = 8 * MB      # held for an object whose size the listing did not give (the API's limit)
REQUESTS_PER_IMAGE = 3     # an object has at most three S3 requests under way at once (serving writes)
SPARE_CONNECTIONS = 8      # the listing, SSM, and a dead-letter HEAD beside the images' requests


@dataclass
class WorkItem:
    """One object for the pool: where it is, whether its source goes after the copy, its batch.
    Made by sources.iter_work (the CLI's sources), the Lambda (event records), the batch job."""

    store: Store
    key: str
    delete_source: bool
    batch: str | None = None
    skip_reason: str | None = None  # set for zip entries that must not be processed
    size: int | None = None  # bytes, as listed (the pool's memory budget); None when not known
    etag: str | None = None  # as the event or the listing gave it (a redelivered event: docs/concurrency.md)


@dataclass(frozen=True)
class Limits:
    """How much one pool does at once.

    images: objects in flight (each mostly waits on S3 and the API); the CLI's `--concurrency`.
    cpu: objects doing pixel work (md5, metadata, decode, thumbnails) at the same moment.
    bytes: source bytes held in memory by the objects in flight.
    """

    images: int
    cpu: int
    bytes: int

    @classmethod
    def default(cls, images: int | None = None, cpu: int | None = None,
                bytes_in_flight: int | None = None) -> Limits:
        cpus = cpu or cpu_count()
        n = images or default_images(cpus)
        return cls(images=max(1, min(MAX_IMAGES, n)), cpu=max(1, min(cpus, n)),
                   bytes=max(1, bytes_in_flight or DEFAULT_BYTES))

    @property
    def connections(self) -> int:
        """HTTP connections the AWS clients should keep for this pool, so that no thread opens and
        throws away a connection of its own (botocore's default pool holds 10)."""
        return self.images * REQUESTS_PER_IMAGE + SPARE_CONNECTIONS


def held_bytes(item: WorkItem) -> int:
    """What an object costs the byte budget: its size as listed (never more than the ingest reads)."""
    if item.size is None:
        return UNKNOWN_SIZE
    return max(1, min(item.size, MAX_OBJECT_BYTES))


class IngestRun:
    """One pass of an Ingestor over a stream of work items. Iterate it for the outcomes, in the order
    they complete (a zip the local stage unpacks gives its own outcome, then its images').

    The listing is read only as slots free up (one item ahead), so nothing is listed ahead of the
    work. Counts for a progress display: `listed` (items taken from the listing), `done` (items
    finished, skipped ones included), `total` (None until the listing is exhausted, then `listed`),
    `bytes_in_flight`; `on_progress(run)` is called in the iterating thread whenever they change.

    Stopping: when the iteration ends early (Ctrl-C, an exception in the caller's loop, `close()`),
    nothing new starts and the objects under way finish. `close()` waits for them and returns the
    outcomes they produced after the stop, for the caller to count (a second Ctrl-C interrupts the
    wait). An unexpected exception in a worker (a bug, not an AnimlError) stops the run and is
    raised from the iteration.
    """

    def __init__(self, ingestor: Ingestor, work: Iterable[WorkItem], limits: Limits | None = None,
                 on_progress: Callable[[IngestRun], None] | None = None) -> None:
        self.ingestor = ingestor
        self.limits = limits or Limits.default()
        self.on_progress = on_progress
        self.listed = 0
        self.done = 0
        self.total: int | None = None
        self.bytes_in_flight = 0
        self.stopped = False
        self._work = work
        self._results: queue.SimpleQueue[tuple[int, list[Outcome] | BaseException]] = queue.SimpleQueue()
        self._pool: ThreadPoolExecutor | None = None
        self._sizes: dict[int, int] = {}
        self._late: list[Outcome] = []
        self._unyielded: list[Outcome] = []  # a finished item's outcomes not handed out yet
        self._gen: Generator[Outcome, None, None] | None = None
        self._lock = threading.Lock()
        ingestor.use_cpu_slots(self.limits.cpu)

    def __iter__(self) -> Iterator[Outcome]:
        if self._gen is None:
            self._gen = self._run()
        return self._gen

    def __enter__(self) -> IngestRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the loop (in the iterating thread) --------------------------------------------------------
    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self)

    def _run(self) -> Generator[Outcome, None, None]:
        pool = self._pool = ThreadPoolExecutor(max_workers=self.limits.images, thread_name_prefix="ingest")
        ahead: WorkItem | None = None
        exhausted = False
        n = 0
        try:
            self._warm_up()
            it = iter(self._work)
            while True:
                while not exhausted and len(self._sizes) < self.limits.images:
                    if ahead is None:
                        ahead = next(it, None)
                        if ahead is None:
                            exhausted, self.total = True, self.listed
                            self._progress()
                            break
                        self.listed += 1
                        if ahead.skip_reason:
                            skipped, ahead = ahead, None
                            self.done += 1
                            self._progress()
                            yield Outcome(skipped.store.uri(skipped.key), skipped.key, SKIPPED,
                                          reason=skipped.skip_reason)
                            continue
                    cost = held_bytes(ahead)
                    if self._sizes and self.bytes_in_flight + cost > self.limits.bytes:
                        break  # wait until enough bytes are released
                    self._sizes[n] = cost
                    self.bytes_in_flight += cost
                    pool.submit(self._one, n, ahead)
                    n, ahead = n + 1, None
                    self._progress()
                if not self._sizes:
                    if exhausted:
                        return
                    continue
                idx, result = self._results.get()
                self._finish(idx)
                if isinstance(result, BaseException):
                    raise result
                self._progress()
                self._unyielded = list(result)
                while self._unyielded:
                    yield self._unyielded.pop(0)
        finally:
            self._stop()

    def _warm_up(self) -> None:
        """What every object needs first, fetched side by side (each is a request at a distance)
        instead of one after the other by the first object: bucket names, the maintenance flag, the
        API client (its URL parameter, read by making it). Errors are left to the objects
        (StageContext.read_ahead). Cached already when the CLI's pre-flight ran; the Lambda's first
        invocation has no pre-flight."""
        ing = self.ingestor
        ing.ctx.read_ahead(api=False, also=() if ing.dry_run else (lambda: ing.api,))

    def _one(self, idx: int, item: WorkItem) -> None:
        try:
            result: list[Outcome] | BaseException = self.ingestor.process(
                item.store, item.key, delete_source=item.delete_source, batch=item.batch, etag=item.etag)
        except BaseException as exc:  # noqa: BLE001 - handed to the iterating thread
            result = exc
        self._results.put((idx, result))

    def _finish(self, idx: int) -> None:
        self.bytes_in_flight -= self._sizes.pop(idx)
        self.done += 1

    def _stop(self) -> None:
        """Nothing new starts; what runs finishes; its outcomes are kept for `close()`."""
        with self._lock:
            if self.stopped:
                return
            self.stopped = True
        self._late.extend(self._unyielded)
        self._unyielded = []
        pool = self._pool
        if pool is None:
            return
        try:
            pool.shutdown(wait=True, cancel_futures=True)
        finally:
            while True:
                try:
                    idx, result = self._results.get_nowait()
                except queue.Empty:
                    break
                self._finish(idx)
                if isinstance(result, list):
                    self._late.extend(result)
            self._sizes.clear()
            self.bytes_in_flight = 0

    def close(self) -> list[Outcome]:
        """Stop (if not done yet), wait for the objects under way, and return the outcomes they
        produced after the iteration stopped."""
        if self._gen is not None:
            self._gen.close()
        self._stop()
        late, self._late = self._late, []
        return late


def process_all(ingestor: Ingestor, work: Iterable[WorkItem], limits: Limits | None = None,
                on_progress: Callable[[IngestRun], None] | None = None) -> IngestRun:
    """`ingestor.process` over every work item, `limits` at a time. Iterate the result."""
    return IngestRun(ingestor, work, limits, on_progress)
