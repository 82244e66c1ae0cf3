"""The AWS Lambda entry point: S3 `ObjectCreated` events -> the ingest function.

Reads STAGE and API_KEY from the environment like the Node function. Returns a summary of outcomes;
raises only when an object could not be accounted for, so Lambda marks the invocation failed and its
on-failure destination keeps the event (a retry is safe: every step is idempotent).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from animl_ingest_cli import keys
from animl_ingest_cli.context import StageContext, open_stage
from animl_ingest_cli.ingest import Ingestor, Outcome, summarize
from animl_ingest_cli.redact import redact, register

log = logging.getLogger("animl_ingest")
logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))

_ctx: StageContext | None = None  # kept across warm invocations: bucket names and maintenance cache


class UnaccountedObjects(RuntimeError):
    """Some objects could not be copied anywhere; they are still in the ingestion bucket."""


def _context() -> StageContext:
    global _ctx
    stage = os.environ.get("STAGE", "dev")
    if _ctx is None or _ctx.stage != stage:
        _ctx = open_stage(stage)
    return _ctx


def reset() -> None:
    """Forget the warm-start state (tests switch AWS backends between invocations)."""
    global _ctx
    _ctx = None


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    register(os.environ.get("API_KEY"))
    ctx = _context()
    time_left = None
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        def time_left() -> float:
            return context.get_remaining_time_in_millis() / 1000.0 - 1.0  # leave a second for the copy

    ingestor = Ingestor(ctx, time_left=time_left)
    outcomes: list[Outcome] = []
    ignored = 0
    for record in event.get("Records") or []:
        name = str(record.get("eventName", ""))
        if record.get("eventSource") != "aws:s3" or not name.startswith("ObjectCreated"):
            log.info("ignoring event %s from %s", name, record.get("eventSource"))
            ignored += 1
            continue
        bucket = record["s3"]["bucket"]["name"]
        key = keys.decode_event_key(record["s3"]["object"]["key"])
        if bucket != ctx.bucket("ingestion"):
            # FIX: only the stage's ingestion bucket is ever a source the function deletes from
            log.warning("ignoring an event for %s/%s: not this stage's ingestion bucket (%s)",
                        bucket, key, ctx.bucket("ingestion"))
            ignored += 1
            continue
        log.info("new file detected in %s: %s", bucket, key)
        src = ctx.store_for_bucket(bucket)
        etag = str(record["s3"]["object"].get("eTag") or "").strip('"') or None
        for o in ingestor.process(src, key, delete_source=True, etag=etag):
            log.info(redact(json.dumps(o.to_json(), default=str)))
            outcomes.append(o)
    summary = summarize(outcomes)
    summary["ignored"] = ignored
    summary["results"] = [o.to_json() for o in outcomes]
    unaccounted = [o for o in outcomes if not o.complete]
    if unaccounted:
        raise UnaccountedObjects(redact(
            f"{len(unaccounted)} object(s) not accounted for: "
            + "; ".join(f"{o.key}: {o.error}" for o in unaccounted[:10])))
    return summary
