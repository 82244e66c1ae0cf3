"""The core ingest function: one object in, one outcome out.

Routing follows docs/animl.md (keys, the API, maintenance). The one rule everything else serves: the
source object is deleted only after its terminal copy (serving, dead-letter or parking lot) is complete; when
no copy could be made, the source stays and the outcome is `failed`.

Two actors are normal (docs/concurrency.md): every write the function makes is conditional, so that
what it creates is created only where nothing is (`If-None-Match: *`) and what it deletes is the very
object it read (`If-Match: <ETag>`); an image is worked on by one actor at a time, whatever process
it runs in (claims.py, keyed by its md5).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from animl_ingest_cli import keys
from animl_ingest_cli.api import Api, ImageAttempt
from animl_ingest_cli.api import one_line as api_one_line
from animl_ingest_cli.api_rules import TOO_LARGE, check_md, is_duplicate
from animl_ingest_cli.claims import Busy, Claim, Claims
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import (
    AnimlError,
    ApiError,
    ApiKeyRefused,
    Conflict,
    ImageError,
    NotFound,
    StoreError,
)
from animl_ingest_cli.images import Thumbnail, decode_cost_error, make_thumbnails
from animl_ingest_cli.limits import fit_metadata
from animl_ingest_cli.limits import quote_meta as quote_meta
from animl_ingest_cli.metadata import read_metadata
from animl_ingest_cli.redact import redact
from animl_ingest_cli.stores import (
    MAX_OBJECT_BYTES,
    NO_SPACE,
    LocalStore,
    ObjectInfo,
    S3Store,
    Store,
    TooLarge,
)

log = logging.getLogger("animl_ingest")

SERVED, DEAD_LETTERED, PARKED, BATCH_SUBMITTED, SKIPPED, FAILED = (
    "served", "dead-lettered", "parked", "batch-submitted", "skipped", "failed")
OUTCOMES = (SERVED, DEAD_LETTERED, PARKED, BATCH_SUBMITTED, SKIPPED, FAILED)
MAX_DEAD_LETTER_ATTEMPTS = 1000
CLAIM_WAIT = 30.0  # seconds an ingest waits for another actor working on the same image
PARK_ID = "park-id"  # metadata of a parked object: which park wrote it (see _park)
MAX_IMAGE_ID_BYTES = keys.MAX_FOLDER_BYTES  # an image id names serving and dead-letter keys


@dataclass
class Outcome:
    """What happened to one object. `complete` is False when something is left for a rerun
    (the source could not be deleted after its copy, or no copy could be made)."""

    source: str
    key: str
    outcome: str
    reason: str | None = None
    image_id: str | None = None
    destinations: list[str] = field(default_factory=list)
    error: str | None = None
    complete: bool = True
    healed: bool = False
    planned: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def dead_letter_metadata(bucket: str, key: str, error: str, image_id: str | None,
                         batch: str | None) -> dict[str, str]:
    """The metadata every dead-lettered object carries, within S3's 2 KB as S3 counts it
    (limits.fit_metadata): the error is cut to fit, the original key never is."""
    values = {keys.ORIGINAL_BUCKET: bucket, keys.ORIGINAL_KEY: key,
              keys.IMAGE_ID: image_id or keys.UNKNOWN_ID}
    if batch:
        values[keys.BATCH_ID] = batch
    values[keys.ERROR] = error
    return fit_metadata(values, cuttable=(keys.ERROR, keys.IMAGE_ID))


def copy_object(dst: Store, src: Store, key: str, target: str, data: bytes, content_type: str,
                metadata: dict[str, str], md5: str | None = None, *, source_etag: str | None = None,
                if_none_match: bool = True) -> None:
    """A server-side copy between buckets (no bytes through the function), only while the source is
    still the object read (`source_etag`); from anywhere else, the bytes already read are written (no
    second read of the source). Only to a free key unless `if_none_match` is False: Conflict when
    the key is taken."""
    if isinstance(dst, S3Store) and isinstance(src, S3Store):
        dst.copy_from(src, key, target, content_type=content_type, metadata=metadata,
                      if_none_match=if_none_match, source_etag=source_etag)
    else:
        dst.put(target, data, content_type, metadata, md5=md5, if_none_match=if_none_match)


class _Thumbnails:
    """An image's two thumbnails, made once. For an image the API's rules will most likely accept
    (`early`) they are made while createImage is asked (`_create_image`): at a distance it takes
    hundreds of milliseconds, and the decode no longer waits behind it. Otherwise at the first
    `get()` (such an image is most often dead-lettered: decoding it would be wasted).

    A decode failure, whatever it is, is kept and raised by `get()`, so that it is met after
    createImage exactly as when the thumbnails were made there: an ImageError is reported and
    dead-lettered; anything else (MemoryError, a bug) is raised from `_serve` as before, the source
    left for a rerun. Raised beside createImage instead, it could come first and hide createImage's
    own outcome (a refused key, an API error) for a decode that was only made ahead of need."""

    def __init__(self, data: bytes, cpu: threading.BoundedSemaphore, early: bool) -> None:
        self._data, self._cpu, self.early = data, cpu, early
        self._made: tuple[Thumbnail, Thumbnail] | Exception | None = None

    def make_in_slot(self) -> None:
        with self._cpu:
            if self._made is None:
                try:
                    self._made = make_thumbnails(self._data)
                except Exception as exc:  # noqa: BLE001 - kept for get(), where it is raised
                    self._made = exc

    def get(self) -> tuple[Thumbnail, Thumbnail]:
        if self._made is None:
            self.make_in_slot()
        made = self._made
        if isinstance(made, Exception):
            raise made
        assert made is not None
        return made


def _looks_valid(md: dict[str, Any]) -> bool:
    """animl-api's own checks find nothing wrong (a batch's overrideSerial may still rescue one)."""
    try:
        return not check_md(md).errors
    except ApiError:
        return False


class Ingestor:
    """Processes objects for one stage. Thread-safe: one instance serves a whole pool of workers.

    `delete_source` is True for objects of the stage's ingestion bucket (what the Lambda does) and
    False for every other source (local files, other buckets). `dry_run` reads metadata and plans
    destinations without writing anything or calling the API.
    """

    def __init__(self, ctx: StageContext, api: Api | None = None, *, dry_run: bool = False,
                 time_left: Callable[[], float] | None = None,
                 on_outcome: Callable[[Outcome], None] | None = None, cpu_slots: int | None = None,
                 stop_on_refused_key: bool = False) -> None:
        self.ctx = ctx
        # The CLI stops at the first HTTP 401/403 (ApiKeyRefused) instead of dead-lettering every
        # image as `Forbidden`; the Lambda dead-letters, as the Node function did.
        self.stop_on_refused_key = stop_on_refused_key
        self._api = api
        self.dry_run = dry_run
        self.time_left = time_left
        self.on_outcome = on_outcome
        self._same_bytes: dict[str, tuple[threading.Lock, list[int]]] = {}
        self._same_bytes_lock = threading.Lock()
        self._api_lock = threading.Lock()
        self._claims: Claims | None = None
        self.use_cpu_slots(cpu_slots or os.cpu_count() or 1)

    def use_cpu_slots(self, n: int) -> None:
        """At most `n` objects do pixel work (md5, metadata, decode, thumbnails) at the same moment,
        however many wait on the network (the pool sets it; see pool.py)."""
        self._cpu = threading.BoundedSemaphore(max(1, n))

    @property
    def claims(self) -> Claims:
        """Per-image claims in the serving bucket; a claim lasts what this run has left (a Lambda
        invocation's remaining time) or ANIML_CLAIM_SECONDS."""
        if self._claims is None:
            from animl_ingest_cli.claims import claim_seconds

            def seconds() -> float:
                return max(1.0, self.time_left() + 5.0) if self.time_left else claim_seconds()
            self._claims = Claims(self._claim_store(), seconds=seconds)
        return self._claims

    # --- collaborators ----------------------------------------------------------------------------
    @property
    def api(self) -> Api:
        """Made on first use, once: worker threads ask for it at the same moment, and two local
        catalogs opening one new SQLite file together would find it locked."""
        if self._api is None:
            with self._api_lock:
                if self._api is None:
                    self._api = self.ctx.api(time_left=self.time_left)
        return self._api

    def _claim_store(self) -> Store:
        """S3: the serving bucket (under `.animl-claims/`). The local stage: a folder of its own beside
        the buckets, so that the bucket folders hold images only."""
        if self.ctx.is_local and self.ctx.local_root is not None:
            root = self.ctx.local_root
            return LocalStore(root / ".claims", "claims", meta_root=root / ".meta" / ".claims")
        return self.ctx.store("serving")

    def ready(self) -> None:
        """Make the API client now, when the run will need it: a key that cannot be sent or a
        missing API URL is then one error before the first image, not one failure per image."""
        if not self.dry_run and not self.ctx.maintenance_on():
            _ = self.api

    # --- entry point ------------------------------------------------------------------------------
    def process(self, src: Store, key: str, *, delete_source: bool,
                batch: str | None = None, etag: str | None = None) -> list[Outcome]:
        """Process one object. Returns its outcome, followed by the outcomes of the images of a zip
        the local stage unpacked itself (AWS stages hand zips to AWS Batch).

        `delete_source`: the object is deleted once its copy is made. The caller decides, always
        explicitly: True for the stage's ingestion bucket (the Lambda; `sources` for s3:// keys of
        that bucket), False for every other source. `etag`: what the event or the listing said the
        object was (it tells a redelivered event for an object already ingested and deleted, which
        is done, from a lost one: docs/concurrency.md)."""
        outcomes = self.run(src, key, delete_source=delete_source, batch=batch, etag=etag)
        for o in outcomes:
            log.info("%s %s -> %s %s", o.source, o.key, o.outcome, o.reason or o.error or "")
            if self.on_outcome:
                self.on_outcome(o)
        return outcomes

    def run(self, src: Store, key: str, *, delete_source: bool,
            batch: str | None = None, etag: str | None = None) -> list[Outcome]:
        """`process` without the notifications (a zip's images are reported by their zip's call)."""
        try:
            return self._process(src, key, delete_source, batch, etag)
        except ApiKeyRefused:
            raise
        except AnimlError as exc:
            return [Outcome(src.uri(key), key, FAILED, error=exc.message, complete=False)]

    def _process(self, src: Store, key: str, delete_source: bool, batch: str | None,
                 etag: str | None = None) -> list[Outcome]:
        kind = keys.kind(key)
        if kind == "unsupported":
            return [Outcome(src.uri(key), key, SKIPPED, reason="unsupported file type")]
        if not self.dry_run and self.ctx.maintenance_on():
            # every arrival waits in the parking lot, whatever brought it (the Lambda or this CLI)
            return [self._park(src, key, delete_source, batch, etag)]
        if kind == "batch":
            return self._batch(src, key, delete_source, batch)
        return [self._image(src, key, delete_source, batch, etag)]

    # --- an object no longer there ----------------------------------------------------------------
    def _gone(self, src: Store, key: str, out: Outcome, etag: str | None, error: str) -> Outcome:
        """The object is not (or no longer) at its key. Done when another actor placed it: the image's
        claim has a receipt for this very source, or the parking lot holds it (a redelivered event,
        a second run beside the first); otherwise failed, with no copy made."""
        source = f"{src.bucket}/{key}"
        receipt = None
        if etag and not self.dry_run and "-" not in etag:
            try:  # through the claim: an actor still finishing this image releases it with the receipt
                claim = self.claims.take(etag, source, self._claim_wait())
                receipt = claim.done_for(source)
                self.claims.release(claim)
            except StoreError:
                receipt = None
        if receipt is not None:
            out.outcome = receipt.get("outcome") or SERVED
            out.image_id = receipt.get("image_id")
            out.reason = f"already {out.outcome} by another run (the object is gone)"
            return out
        if etag and not self.dry_run and src.is_bucket:
            try:
                parked = self.ctx.store("parkinglot").head(key)
            except StoreError:
                parked = None
            if parked is not None and parked.etag == etag:
                out.outcome, out.reason = PARKED, "already parked by another run (the object is gone)"
                out.destinations.append(self.ctx.store("parkinglot").uri(key))
                return out
        out.outcome, out.error, out.complete = FAILED, error, False
        return out

    # --- maintenance ------------------------------------------------------------------------------
    def _park(self, src: Store, key: str, delete_source: bool, batch: str | None,
              etag: str | None = None) -> Outcome:
        """Maintenance: images and zips go to the parking lot under the same key (FIX: zips too);
        a file or zip entry under the key unpark should give it in the ingestion bucket.

        The copy goes only to a free key (If-None-Match) and carries a fresh `park-id`. When the key
        is taken: by this very park (a retried copy) or by the same bytes parked earlier (a rerun), the
        object is parked; by the object this source was copied from (the same `park-id`: an unpark
        is moving it back and has not deleted it yet) or by another object, the source stays where it
        is and the outcome is failed, for a rerun (deleting it would leave it in no bucket once the
        unpark deletes its parking-lot copy)."""
        lot = self.ctx.store("parkinglot")
        out = Outcome(src.uri(key), key, PARKED, reason="maintenance mode")
        target = keys.park_key(key if src.is_bucket else self._origin(src, key, batch)[1])
        if target != key:
            out.reason = (f"maintenance mode; parked as {target}: its key starts with a prefix this "
                          f"tool reserves ({', '.join(keys.RESERVED_PREFIXES)}), unpark restores it")
        try:
            info = src.head(key)
        except StoreError as exc:
            out.outcome, out.error, out.complete = FAILED, f"parking failed: {exc.message}", False
            return out
        if info is None:
            return self._gone(src, key, out, etag, f"no such object: {src.uri(key)}")
        token = uuid.uuid4().hex
        try:
            lot.copy_from(src, key, target, content_type=keys.content_type_for(key),
                          metadata={PARK_ID: token}, if_none_match=True, source_etag=info.etag)
        except Conflict:
            problem = self._parked_already(lot, target, info, token)
            if problem:
                out.outcome, out.error, out.complete = FAILED, problem, False
                return out
        except NotFound:
            return self._gone(src, key, out, etag or info.etag, f"no such object: {src.uri(key)}")
        except StoreError as exc:
            out.outcome, out.error, out.complete = FAILED, f"parking failed: {exc.message}", False
            return out
        out.destinations.append(lot.uri(target))
        self._delete_source(src, key, out, delete_source, info.etag)
        return out

    @staticmethod
    def _parked_already(lot: Store, target: str, info: ObjectInfo, token: str) -> str | None:
        """After a refused park copy: None when the parking lot already holds this object as parked,
        else why the source must stay."""
        try:
            there = lot.head(target)
        except StoreError as exc:
            return f"parking failed: {exc.message}"
        if there is None:
            return f"parking failed: {lot.uri(target)} changed while parking; left for a rerun"
        theirs = there.metadata.get(PARK_ID)
        if theirs == token:
            return None  # our own copy, retried after its answer was lost
        if there.etag != info.etag or there.size != info.size:
            return f"the parking lot already holds another object at {lot.uri(target)}; left in place"
        if not theirs or theirs == info.metadata.get(PARK_ID):
            # this object is a copy of the parked one (or, parked by older code, may be): an unpark
            # is moving it back and will delete the parking-lot copy
            return (f"{lot.uri(target)} holds the same object, which may be being unparked; left in "
                    f"place for a rerun once the unpark is done")
        return None  # the same bytes, parked by an earlier run that stopped before deleting the source

    # --- bulk uploads -----------------------------------------------------------------------------
    def _batch(self, src: Store, key: str, delete_source: bool, batch: str | None = None) -> list[Outcome]:
        from animl_ingest_cli.batches import submit_batch_job

        batch = batch or keys.batch_id(key)
        if batch is None and self.ctx.is_local and not delete_source:
            # a zip of the user's on the local stage: a bulk upload needs a batch id (the frontend
            # makes one in Animl); this one is new, and the outcome names it
            batch = f"batch-{uuid.uuid4()}"
        out = Outcome(src.uri(key), key, BATCH_SUBMITTED)
        if batch is None:
            out.outcome, out.reason = SKIPPED, "zip not named batch-<uuid>.zip"
            return [out]
        if self.dry_run:
            out.planned, out.reason = True, "would be unpacked by the batch job"
            return [out]
        if self.ctx.is_local:
            return self._local_batch(src, key, batch, delete_source, out)
        if not delete_source:  # the batch job unpacks into the bucket it reads: only ingestion's zips
            out.outcome, out.reason = SKIPPED, ("a bulk-upload zip outside the ingestion bucket: "
                                                "download it and give the file to `ingest`")
            return [out]
        try:
            job = submit_batch_job(self.ctx, src.bucket, key, batch)
        except AnimlError as exc:
            out.outcome, out.error, out.complete = FAILED, exc.message, False
            return [out]
        out.reason = f"AWS Batch job {job}"
        return [out]

    def _local_batch(self, src: Store, key: str, batch: str, delete_source: bool,
                     out: Outcome) -> list[Outcome]:
        """The local stage has no AWS Batch and no S3 events: the bulk-upload job itself unpacks the
        zip into the ingestion bucket, then each image written is processed as its event would be."""
        from animl_ingest_cli.batchjob import entries
        from animl_ingest_cli.batchjob.job import BatchJob

        job = BatchJob(self.ctx, self.api, src, key, batch, delete_zip=delete_source)
        done = True
        try:
            r = job.run()
        except AnimlError as exc:
            out.error, out.complete, done = exc.message, False, False
            r = job.result
        results: list[Outcome] = []
        for e in r.entries:
            if e.problem and e.problem != entries.DIRECTORY:
                results.append(Outcome(src.uri(key) + "!" + e.name, e.name,
                                       FAILED if e.failed else SKIPPED, reason=e.reason,
                                       complete=not e.failed))
        for e, why in r.failed:
            results.append(Outcome(src.uri(key) + "!" + e.name, e.name, FAILED, error=why, complete=False))
        if r.parked:
            out.outcome, out.reason = PARKED, "maintenance mode"
            return [out, *results]
        ingestion = self.ctx.store("ingestion")
        out.reason = f"unpacked {len(r.written)} images locally as {batch}"
        out.destinations.extend(ingestion.uri(k) for k in r.written)
        for target in r.written:
            if ingestion.head(target) is not None:  # an earlier run may have processed it already
                results.extend(self.run(ingestion, target, delete_source=True))
        if done:
            try:
                job.processing_end()
            except ApiError as exc:
                log.warning("updateBatch processingEnd for %s failed: %s", batch, exc.message)
        return [out, *results]

    # --- images -----------------------------------------------------------------------------------
    def build_md(self, src: Store, key: str, data: bytes, batch: str | None = None) -> dict[str, Any]:
        """The `md` record for an object (docs/animl.md, The record the ingest sends)."""
        fm = read_metadata(data, keys.file_name(key))
        batch = batch or keys.batch_id(key)
        md: dict[str, Any] = {"Bucket": src.bucket, "Key": key, "FileName": keys.file_name(key),
                              "batchId": batch}
        md.update(fm.md)
        md["errors"] = list(fm.md.get("errors") or [])
        md["ProdBucket"] = self.ctx.bucket("serving")
        md["Path"] = keys.batch_path(key, batch) if batch else None
        if batch and md["Path"] is None:
            md["Path"] = key  # an entry of a local zip given with --batch: its path inside the zip
        return md

    @contextmanager
    def _one_at_a_time(self, digest: str) -> Iterator[None]:
        """Objects with the same bytes go through createImage and the serving copies one after the
        other: a duplicate whose twin is still being served would otherwise find no serving copies,
        "heal" them and be counted served instead of being dead-lettered as DUPLICATE_IMAGE."""
        with self._same_bytes_lock:
            lock, users = self._same_bytes.setdefault(digest, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._same_bytes_lock:
                users[0] -= 1
                if not users[0]:
                    del self._same_bytes[digest]

    def _image(self, src: Store, key: str, delete_source: bool, batch: str | None,
               etag: str | None = None) -> Outcome:
        out = Outcome(src.uri(key), key, SERVED)
        try:
            blob = src.read(key, limit=MAX_OBJECT_BYTES)
        except TooLarge as exc:
            return self._too_large(src, key, batch, exc, out, delete_source)
        except NotFound as exc:
            return self._gone(src, key, out, etag, exc.message)
        except StoreError as exc:
            out.outcome, out.error, out.complete = FAILED, exc.message, False
            return out
        with self._cpu:
            md = self.build_md(src, key, blob.data, batch)
            too_costly = decode_cost_error(blob.data)  # would outlast the function: no record is made
        if self.dry_run:
            return self._plan(md, out, [too_costly] if too_costly else None)
        if too_costly:
            return self._dead_letter(src, key, md, blob.data, [too_costly], None, out, delete_source,
                                     blob.etag)
        thumbs = _Thumbnails(blob.data, self._cpu, early=_looks_valid(md))
        digest = str(md.get("Hash"))
        with self._one_at_a_time(digest):
            try:
                claim = self.claims.take(digest, f"{src.bucket}/{key}", self._claim_wait())
            except Busy as exc:
                out.outcome, out.error, out.complete = FAILED, exc.message, False
                return out
            except StoreError as exc:
                # the serving bucket cannot hold a claim (missing, refused): its copies will fail
                # the same way, and the image is dead-lettered as without claims
                log.warning("no claim for image %s (%s): going on without", digest, exc.message)
                return self._record_and_serve(src, key, blob.data, blob.etag, md, out, delete_source, thumbs)
            try:
                out = self._claimed(src, key, blob.data, blob.etag, md, out, delete_source, claim, thumbs)
            except BaseException:
                self.claims.forget(claim)  # a crash: the claim is free for a rerun in this process
                raise
            self.claims.release(claim, self._receipt(src, key, out))
            return out

    def _claim_wait(self) -> float:
        return max(0.0, min(CLAIM_WAIT, self.time_left() - 5.0)) if self.time_left else CLAIM_WAIT

    @staticmethod
    def _receipt(src: Store, key: str, out: Outcome) -> dict[str, Any] | None:
        """What the claim keeps of a finished object, for a redelivered event (see _gone)."""
        if not out.complete or out.outcome not in (SERVED, DEAD_LETTERED):
            return None
        return {"source": f"{src.bucket}/{key}", "outcome": out.outcome, "image_id": out.image_id}

    def _claimed(self, src: Store, key: str, data: bytes, etag: str, md: dict[str, Any], out: Outcome,
                 delete_source: bool, claim: Claim, thumbs: _Thumbnails) -> Outcome:
        """With the image's claim: if another actor finished this very object between our read and
        our claim (it is gone now), that is its outcome; otherwise record and serve it."""
        done = claim.done_for(f"{src.bucket}/{key}")
        if done is not None:
            try:
                still = src.head(key)
            except StoreError:
                still = None
            if still is None or still.etag != etag:
                out.outcome, out.image_id = done.get("outcome") or SERVED, done.get("image_id")
                out.reason = f"already {out.outcome} by another run"
                return out
        return self._record_and_serve(src, key, data, etag, md, out, delete_source, thumbs)

    def _record_and_serve(self, src: Store, key: str, data: bytes, etag: str, md: dict[str, Any],
                          out: Outcome, delete_source: bool, thumbs: _Thumbnails) -> Outcome:
        try:
            attempt = self._create_image(md, thumbs)
        except ApiError as exc:
            if self.stop_on_refused_key and exc.status in (401, 403):
                raise ApiKeyRefused(f"animl-api refused the API key (HTTP {exc.status}: {exc.message}); "
                                    f"nothing was dead-lettered for it: check API_KEY, ANIML_API_KEY "
                                    f"or the secret {self.ctx.names.api_secret}") from None
            # Unreachable, failing or refusing API: dead-letter under the error's kind, UNKNOWN_ID.
            return self._dead_letter(src, key, md, data, [exc.message], None, out, delete_source, etag,
                                     folder=keys.dead_letter_folder([exc.message], unknown=keys.API_ERROR))
        wrong = invalid_answer(attempt, md)
        if wrong:
            return self._dead_letter(src, key, md, data, [wrong], None, out, delete_source, etag,
                                     folder=keys.INVALID_API_ANSWER)
        out.image_id = attempt.image_id
        if attempt.errors:
            if attempt.image_id and is_duplicate(attempt.errors):
                try:
                    healed = self._heal_duplicate(src, key, data, etag, md, attempt.image_id, out, thumbs)
                except StoreError as exc:  # PARTIAL_SET only: see _heal_duplicate
                    return self._left_for_rerun(exc, out)
                if healed:
                    self._delete_source(src, key, out, delete_source, etag)
                    return out
            return self._dead_letter(src, key, md, data, attempt.errors, attempt.image_id, out,
                                     delete_source, etag)
        assert attempt.image_id  # invalid_answer refuses a success without an id
        try:
            self._serve(src, key, data, etag, md, attempt.image_id, out, thumbs)
        except StoreError as exc:
            if exc.code == NO_SPACE:  # the disk, not the image: a rerun serves it (nothing dead-lettered)
                out.outcome, out.error, out.complete = FAILED, f"{exc.message}; left where it is", False
                return out
            if exc.code == PARTIAL_SET:
                return self._left_for_rerun(exc, out)
            self._report_image_error(exc.message, attempt.image_id, md.get("batchId"))
            return self._dead_letter(src, key, md, data, [exc.message], attempt.image_id, out, delete_source,
                                     etag, folder=keys.STORAGE_ERROR)
        except ImageError as exc:
            self._report_image_error(exc.message, attempt.image_id, md.get("batchId"))
            folder = keys.dead_letter_folder([exc.message], unknown=keys.IMAGE_ERROR)
            return self._dead_letter(src, key, md, data, [exc.message], attempt.image_id, out, delete_source,
                                     etag, folder=folder)
        self._delete_source(src, key, out, delete_source, etag)
        return out

    @staticmethod
    def _left_for_rerun(exc: StoreError, out: Outcome) -> Outcome:
        """The serving copies failed and their clean-up too: part of the set is public. Dead-lettering
        the image would delete its source and leave that part public with nothing to complete it;
        it stays where it is instead, failed, and the rerun (or the Lambda's retry) completes the
        set (DUPLICATE_IMAGE, then the copies that are missing: _heal_duplicate)."""
        out.outcome, out.error, out.complete = FAILED, exc.message, False
        return out

    def _create_image(self, md: dict[str, Any], thumbs: _Thumbnails) -> ImageAttempt:
        """createImage; for an image it will most likely accept, the thumbnails are made meanwhile
        (in a CPU slot, in a thread of their own), so that an image's decode and its wait on the API
        overlap instead of adding up."""
        if not thumbs.early:
            return self.api.create_image(md)
        answer: list[ImageAttempt] = []
        failures = side_by_side(lambda: answer.append(self.api.create_image(md)), thumbs.make_in_slot)
        if failures:
            raise failures[0]
        return answer[0]

    def _too_large(self, src: Store, key: str, batch: str | None, exc: TooLarge, out: Outcome,
                   delete_source: bool) -> Outcome:
        """An object too large to read into memory is never read. animl-api refuses images of 8 MB
        or more, so from S3 it is dead-lettered under that error by a server-side copy (no bytes
        through the function); from anywhere else it is left where it is and reported failed."""
        dlb = self.ctx.store("dead-letter")
        if not (isinstance(src, S3Store) and isinstance(dlb, S3Store)):
            out.outcome, out.error, out.complete = FAILED, f"{exc.message}; left where it is", False
            return out
        md = {"FileName": keys.file_name(key), "batchId": batch or keys.batch_id(key),
              "MIMEType": keys.content_type_for(key)}
        if self.dry_run:
            out.planned, out.outcome, out.reason = True, DEAD_LETTERED, TOO_LARGE
            return out
        info = src.head(key)
        if info is None:
            return self._gone(src, key, out, None, f"no such object: {src.uri(key)}")
        return self._dead_letter(src, key, md, b"", [TOO_LARGE], None, out, delete_source, info.etag,
                                 size=info.size)

    def _plan(self, md: dict[str, Any], out: Outcome, errors: list[str] | None = None) -> Outcome:
        out.planned = True
        try:
            errors = errors or check_md(md).errors
        except ApiError as exc:
            errors = [exc.message]
        ext = md.get("FileTypeExtension") or "jpg"
        if errors:
            out.outcome = DEAD_LETTERED
            out.reason = keys.dead_letter_folder(errors)
            out.destinations.append(keys.dead_letter_key(out.reason, None, md["FileName"],
                                                         origin=f"{md['Bucket']}/{md['Key']}"))
        else:
            placeholder = f"<project>:{md.get('Hash')}"
            out.destinations.extend(keys.serving_keys(placeholder, ext).values())
        return out

    def _serve(self, src: Store, key: str, data: bytes, etag: str, md: dict[str, Any], image_id: str,
               out: Outcome, thumbs: _Thumbnails) -> None:
        """The three serving copies: the thumbnails first (a decode failure writes nothing), then
        the original (a server-side copy, only while the source is the object read), medium and
        small, the three side by side (at a distance each is a round trip to the region).

        Each goes only to a free key (If-None-Match): a key already holding a copy of this image
        (an earlier run of it that stopped half-way, or our own write retried) is kept as it is.
        When any write fails, the others are waited for and the partial set is removed, every key
        tried (a write that failed may have landed): the image's claim makes this the only actor
        writing this image's keys, so what it removes is never another actor's copy of an image it
        is serving. A key the clean-up could not remove makes the error PARTIAL_SET: the image is
        then left for a rerun, not dead-lettered (`_left_for_rerun`)."""
        serving = self.ctx.store("serving")
        ext = md.get("FileTypeExtension") or keys.file_name(key).rsplit(".", 1)[-1]
        ctype = md.get("MIMEType") or keys.content_type_for(key)
        targets = keys.serving_keys(image_id, ext)
        medium, small = thumbs.get()
        origin = fit_metadata({keys.SOURCE_BUCKET: src.bucket, keys.SOURCE_KEY: key})

        def write(size: str, do: Callable[[], object]) -> None:
            k = targets[size]
            try:
                do()
            except Conflict:
                there = serving.head(k)
                if there is None:
                    raise StoreError(f"{serving.uri(k)} changed while being written; left for a rerun",
                                     code="Conflict") from None
                if size == "original" and there.etag != md.get("Hash") and not _multipart(there.etag):
                    raise StoreError(f"{serving.uri(k)} holds other bytes than this image "
                                     f"(ETag {there.etag})", code="Conflict") from None

        def original() -> None:
            copy_object(serving, src, key, targets["original"], data, ctype, origin, md.get("Hash"),
                        source_etag=etag)

        def thumbnail(size: str, thumb: Thumbnail) -> Callable[[], None]:
            return lambda: write(size, lambda: serving.put(targets[size], thumb.data, thumb.content_type,
                                                           if_none_match=True))

        failures = side_by_side(lambda: write("original", original), thumbnail("medium", medium),
                                thumbnail("small", small))
        if failures:
            first = next((e for e in failures if not isinstance(e, StoreError)), failures[0])
            if any(isinstance(e, StoreError) for e in failures):
                # every key was tried: each write may have landed
                left = [k for k in targets.values() if not _remove_partial(serving, k)]
                if left and isinstance(first, StoreError):
                    raise StoreError(f"{first.message}; {len(left)} serving cop"
                                     f"{'y' if len(left) == 1 else 'ies'} could not be removed: left "
                                     f"for a rerun", code=PARTIAL_SET) from first
            raise first
        out.destinations.extend(serving.uri(k) for k in targets.values())

    def _heal_duplicate(self, src: Store, key: str, data: bytes, etag: str, md: dict[str, Any],
                        image_id: str, out: Outcome, thumbs: _Thumbnails) -> bool:
        """DUPLICATE_IMAGE for an image whose serving copies are missing means "make them" (a crash or
        a timeout after the record was created). The same object coming back after its copies were
        made (its source could not be deleted) also counts as served. An original made from another
        source is that source's: this object is its duplicate."""
        serving = self.ctx.store("serving")
        ext = md.get("FileTypeExtension") or "jpg"
        targets = keys.serving_keys(image_id, ext)
        try:
            present = {size: serving.head(k) for size, k in targets.items()}
        except StoreError:
            return False
        original = present["original"]
        if original is not None:
            if not keys.is_from(original.metadata, src.bucket, key, keys.SOURCE_BUCKET, keys.SOURCE_KEY):
                return False
            if all(present.values()):
                out.reason, out.healed = "already served", True
                out.destinations.extend(serving.uri(k) for k in targets.values())
                return True
        try:
            self._serve(src, key, data, etag, md, image_id, out, thumbs)
        except (StoreError, ImageError) as exc:
            if isinstance(exc, StoreError) and exc.code == PARTIAL_SET:
                raise  # part of the set is public: the image waits for a rerun (_left_for_rerun)
            log.warning("healing %s failed: %s", image_id, exc.message)
            return False
        out.reason, out.healed = "serving copies were missing: made them", True
        return True

    def _report_image_error(self, error: str, image_id: str, batch: str | None) -> None:
        """createImageError; its own failure never blocks the dead-letter copy (FIX)."""
        try:
            self.api.create_image_error(error, image_id, batch)
        except ApiError as exc:
            log.warning("createImageError for %s failed: %s", image_id, exc.message)

    def _dead_letter(self, src: Store, key: str, md: dict[str, Any], data: bytes, errors: list[str],
                     image_id: str | None, out: Outcome, delete_source: bool, etag: str | None = None,
                     size: int | None = None, folder: str | None = None) -> Outcome:
        """The folder is from the closed vocabulary (keys.DEAD_LETTER_FOLDERS); the error texts
        themselves go into the `error` metadata and the outcome's `error`."""
        dlb = self.ctx.store("dead-letter")
        folder = folder or keys.dead_letter_folder(errors)
        error_text = redact("; ".join(errors))
        out.outcome, out.reason, out.image_id = DEAD_LETTERED, folder, image_id
        if error_text and error_text != folder:
            out.error = api_one_line(error_text)
        origin_bucket, origin_key = self._origin(src, key, md.get("batchId"))
        meta = dead_letter_metadata(origin_bucket, origin_key, error_text, image_id, md.get("batchId"))
        ctype = md.get("MIMEType") or keys.content_type_for(key)
        try:
            target = self._place_dead_letter(dlb, src, key, data, etag, size, folder, image_id,
                                             md["FileName"], origin_bucket, origin_key, ctype, meta)
        except StoreError as exc:
            out.outcome, out.complete = FAILED, False
            out.error = f"dead-letter copy failed ({folder}): {exc.message}"
            return out
        out.destinations.append(dlb.uri(target))
        self._delete_source(src, key, out, delete_source, etag)
        return out

    def _origin(self, src: Store, key: str, batch: str | None) -> tuple[str, str]:
        """Where a redrive sends a dead letter back: its bucket and key; for a file or a zip entry
        (no bucket), the stage's ingestion bucket, batch images under their `batch-<uuid>/` prefix."""
        if src.is_bucket:
            return src.bucket, key
        if batch and not key.startswith(batch + "/"):
            key = f"{batch}/{key}"
        return self.ctx.bucket("ingestion"), key

    @staticmethod
    def _place_dead_letter(dlb: Store, src: Store, key: str, data: bytes, etag: str | None,
                           size: int | None, folder: str, image_id: str | None, name: str, bucket: str,
                           origin_key: str, ctype: str, meta: dict[str, str]) -> str:
        """FIX: never overwrite another object's dead letter. Each candidate key (`-2`, `-3`... before
        the extension) is written only if free (If-None-Match, atomic at S3); a taken key is ours only
        when it holds this very object: the same original bucket and key AND the same bytes (a rerun,
        or our own write retried); any other object there (another image under the same name, even
        one from the same original key) moves us on to the next suffix."""
        md5 = hashlib.md5(data).hexdigest() if data else (etag if etag and "-" not in etag else None)
        want_size = len(data) if data else size
        for attempt in range(1, MAX_DEAD_LETTER_ATTEMPTS + 1):
            target = keys.dead_letter_key(folder, image_id, name, attempt, origin=f"{bucket}/{origin_key}")
            for _ in range(5):  # 409: another conditional write to this key was under way
                try:
                    copy_object(dlb, src, key, target, data, ctype, meta, md5, source_etag=etag)
                    return target
                except Conflict as exc:
                    if exc.code in ("ConditionalRequestConflict", "409"):
                        time.sleep(0.05)
                        continue
                    break
            info = dlb.head(target)
            if info is None:
                now = src.head(key) if etag and src.is_bucket else None
                if etag and src.is_bucket and (now is None or now.etag != etag):
                    raise Conflict(f"{src.uri(key)} changed or went away while being dead-lettered; "
                                   f"left for a rerun", code="PreconditionFailed")
                continue  # gone meanwhile (a redrive took it): the next key is as good
            same_origin = keys.is_from(info.metadata, bucket, origin_key)
            same_bytes = info.etag == md5 if md5 else info.size == want_size
            if same_origin and same_bytes:
                return target
        raise StoreError(f"no free dead-letter key for {name} after {MAX_DEAD_LETTER_ATTEMPTS} tries")

    def _delete_source(self, src: Store, key: str, out: Outcome, delete_source: bool,
                       etag: str | None = None) -> None:
        """Delete the source only while it is the object that was placed (If-Match): a new object
        uploaded under the same key meanwhile stays, for its own event."""
        if not delete_source:
            return
        try:
            src.delete(key, if_match=etag)
        except Conflict:
            log.info("%s was replaced by a new object meanwhile; the new one stays", src.uri(key))
        except StoreError as exc:
            out.complete = False
            out.error = f"copied, but the source was not deleted: {exc.message}"


CLEANUP_ATTEMPTS = 4  # a partial serving set is public (CloudFront): more than one request's retries
PARTIAL_SET = "PartialServingSet"  # StoreError code: a failed serving set's clean-up left some of it


def side_by_side(*calls: Callable[[], object]) -> list[BaseException]:
    """Run the calls at the same time (the first in this thread) and wait for every one; return what
    they raised. None is left running when this returns, so a clean-up after a failure never races
    a write still under way. The threads are daemons: they are joined here, never at the
    interpreter's exit (where a Ctrl-C would interrupt the join: cli/interrupt.py)."""
    failures: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(c,), daemon=True, name="serve") for c in calls[1:]]
    for t in threads:
        t.start()
    try:
        run(calls[0])
    finally:
        for t in threads:
            t.join()
    return failures


def _remove_partial(serving: Store, key: str) -> bool:
    """Remove one key of a partial serving set; False when it may still be there. Each attempt
    already carries botocore's retries; a key still there after the last is left for the rerun,
    which completes the set (the image waits for it in its source: `_left_for_rerun`)."""
    for attempt in range(CLEANUP_ATTEMPTS):
        try:
            serving.delete(key)
            return True
        except NotFound:  # no such bucket: it holds nothing, so nothing of the set is public
            return True
        except StoreError as exc:
            if attempt == CLEANUP_ATTEMPTS - 1:
                log.warning("partial serving copy %s left for a rerun: %s", serving.uri(key), exc.message)
                return False
            time.sleep(0.05 * 2 ** attempt)
    return False


def _multipart(etag: str) -> bool:
    return "-" in etag


def invalid_answer(attempt: ImageAttempt, md: dict[str, Any]) -> str | None:
    """Why a createImage answer cannot be this image's, or None. animl-api's image id is
    `<projectId>:<md5 of the bytes>`: an id of another hash (the same id for different images), a
    success without an id, or an id that cannot name a key would file the image under another's
    serving copies, or lose it."""
    image_id = attempt.image_id
    if image_id is None:
        return None if attempt.errors else "createImage answered neither an image id nor errors"
    digest = str(md.get("Hash") or "")
    project, sep, tail = image_id.rpartition(":")
    if not sep or not project or tail != digest:
        return (f"createImage answered the image id {api_one_line(image_id, 120)!r}, which is not "
                f"<project>:{digest} (this image's md5)")
    if "/" in image_id or not image_id.isprintable() or len(image_id.encode()) > MAX_IMAGE_ID_BYTES:
        return f"createImage answered the image id {api_one_line(image_id, 120)!r}, which cannot name a key"
    return None


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    counts = dict.fromkeys(OUTCOMES, 0)
    reasons: dict[str, int] = {}
    incomplete = 0
    for o in outcomes:
        counts[o.outcome] = counts.get(o.outcome, 0) + 1
        if o.outcome == DEAD_LETTERED and o.reason:
            reasons[o.reason] = reasons.get(o.reason, 0) + 1
        if not o.complete:
            incomplete += 1
    return {"total": len(outcomes), "outcomes": counts, "dead_letter_reasons": reasons,
            "incomplete": incomplete}


def all_good(outcomes: list[Outcome]) -> bool:
    """Every object served, parked, handed to AWS Batch or skipped, and nothing left for a rerun
    (what exit code 0 means)."""
    good = {SERVED, PARKED, BATCH_SUBMITTED, SKIPPED}
    return all(o.outcome in good and o.complete for o in outcomes)
