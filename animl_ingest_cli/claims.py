"""Per-image claims: one actor at a time works on an image (its md5), whatever process it runs in.

A claim is a small JSON object `.animl-claims/<md5>` in the stage's serving bucket, written with S3's
conditional writes, so taking it is atomic at S3 (docs/concurrency.md):
- take: PutObject `If-None-Match: *`; when the key exists and the claim in it is free (released,
  expired, or its holder is known dead) it is taken over with `If-Match: <its ETag>`, so of two
  actors taking one claim exactly one wins and the other waits;
- release: PutObject `If-Match: <our ETag>`, the holder cleared and a receipt of what was done
  (`done`: the last few sources placed, with their outcome) kept, so that a redelivered event for an
  object already ingested and deleted can be answered "done" rather than "failed";
- a holder that died does not block for ever: a claim expires at `until` (its holder's time budget,
  ANIML_CLAIM_SECONDS, 120 s by default, or what a Lambda invocation has left); a holder on the same
  machine whose process is gone (or, in this process, whose work has ended) is dead at once.
Nothing else is kept: a claim is 300 bytes, one per image ever ingested (a lifecycle rule on the prefix
may expire them after a week: receipts only need to outlive S3's event redeliveries). The serving
bucket is behind CloudFront, and an image's md5 is in its public URL: so a claim names its source, its
holder's machine and what was done only by digests, never by name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from animl_ingest_cli.errors import Conflict, NotFound, StoreError
from animl_ingest_cli.stores import Store

log = logging.getLogger("animl_ingest")

PREFIX = ".animl-claims/"
DEFAULT_SECONDS = 120.0
RECEIPTS = 8  # sources remembered per image
def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


_HOST = _digest(socket.gethostname())
_live: set[str] = set()  # tokens of the claims this process holds right now
_live_lock = threading.Lock()


def claim_seconds() -> float:
    try:
        return max(0.5, float(os.environ.get("ANIML_CLAIM_SECONDS", DEFAULT_SECONDS)))
    except ValueError:
        return DEFAULT_SECONDS


@dataclass
class Claim:
    md5: str
    token: str
    etag: str
    record: dict[str, Any] = field(default_factory=dict)

    def done_for(self, source: str) -> dict[str, Any] | None:
        """The receipt for `source` (bucket/key), if this claim keeps one."""
        wanted = _digest(source)
        return next((d for d in self.record.get("done") or [] if d.get("source") == wanted), None)


class Busy(StoreError):
    """Another actor holds the image's claim and did not release it within the wait."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_free(record: dict[str, Any], now: float) -> bool:
    holder = record.get("holder")
    if not holder:
        return True
    if float(record.get("until") or 0) < now:
        return True
    if record.get("host") == _HOST and isinstance(record.get("pid"), int):
        if record["pid"] == os.getpid():
            with _live_lock:
                return holder not in _live  # its work ended without releasing (a crash)
        return not _pid_alive(record["pid"])
    return False


class Claims:
    """Claims kept in `store` (the serving bucket). `seconds()` is how long a claim taken now lasts."""

    def __init__(self, store: Store, *, seconds: Callable[[], float] | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self.store = store
        self.seconds = seconds or claim_seconds
        self.clock = clock
        self.sleep = sleep

    def key(self, md5: str) -> str:
        return PREFIX + md5

    def _body(self, token: str, source: str, done: list[dict[str, Any]]) -> bytes:
        return json.dumps({"holder": token, "host": _HOST, "pid": os.getpid(), "source": _digest(source),
                           "until": self.clock() + self.seconds(), "done": done[-RECEIPTS:]},
                          ensure_ascii=False).encode()

    def receipt(self, md5: str, source: str) -> dict[str, Any] | None:
        """What was done with `source` (bucket/key) when it was the image `md5`, if it is recorded."""
        try:
            record = json.loads(self.store.read(self.key(md5)).data)
        except NotFound:
            return None
        except ValueError:
            return None
        return Claim(md5, "", "", record).done_for(source)

    def take(self, md5: str, source: str, wait: float) -> Claim:
        """Take the claim for image `md5`, waiting up to `wait` seconds for its holder; Busy after."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait
        pause = 0.02
        key = self.key(md5)
        while True:
            try:
                etag = self.store.put(key, self._body(token, source, []), "application/json",
                                      if_none_match=True)
                return self._held(Claim(md5, token, etag, {"done": []}))
            except Conflict:
                pass
            try:
                blob = self.store.read(key)
                record = json.loads(blob.data)
            except NotFound:
                continue  # released and gone meanwhile: try to create it again
            except ValueError:
                record, blob = {}, self.store.read(key)
            if record.get("holder") == token:  # our own write, whose answer was lost and retried
                return self._held(Claim(md5, token, blob.etag, record))
            if _is_free(record, self.clock()):
                try:
                    etag = self.store.put(key, self._body(token, source, list(record.get("done") or [])),
                                          "application/json", if_match=blob.etag)
                    return self._held(Claim(md5, token, etag, record))
                except (Conflict, NotFound):
                    continue  # someone else took it first: look again
            if time.monotonic() >= deadline:
                raise Busy(f"image {md5} is being ingested by another run; left for a rerun", code="Busy")
            self.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, 0.5)

    @staticmethod
    def _held(claim: Claim) -> Claim:
        with _live_lock:
            _live.add(claim.token)
        return claim

    def release(self, claim: Claim, done: dict[str, Any] | None = None) -> None:
        """Free the claim, recording `done` (source, outcome, ...) in its receipts. Never raises: a
        claim that cannot be released expires. The claim stays live (`_live`) until its release is
        written: a taker in this same process meanwhile (a redelivered record of this image, a twin)
        would otherwise find its holder's work ended, take it over, and the receipt be lost."""
        try:
            self._release(claim, done)
        finally:
            with _live_lock:
                _live.discard(claim.token)

    def _release(self, claim: Claim, done: dict[str, Any] | None) -> None:
        receipts = list(claim.record.get("done") or [])
        if done is not None:
            done = {**done, "source": _digest(str(done.get("source"))), "at": round(self.clock(), 3)}
            receipts = [d for d in receipts if d.get("source") != done["source"]]
            receipts.append(done)
        body = json.dumps({"holder": None, "done": receipts[-RECEIPTS:]}, ensure_ascii=False).encode()
        try:
            self.store.put(self.key(claim.md5), body, "application/json", if_match=claim.etag)
        except Conflict:
            try:  # our own release retried after its answer was lost, or a takeover after expiry
                record = json.loads(self.store.read(self.key(claim.md5)).data)
            except (StoreError, ValueError):
                return
            if record.get("holder") not in (None, claim.token):
                log.warning("claim on %s was taken over before its release (it had expired)", claim.md5)
        except StoreError as exc:
            log.warning("claim on %s not released (%s): it expires", claim.md5, exc.message)

    def forget(self, claim: Claim) -> None:
        """The holder's work ended without a release (the release could not be sent)."""
        with _live_lock:
            _live.discard(claim.token)
