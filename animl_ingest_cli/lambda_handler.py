"""The AWS Lambda entry point: S3 `ObjectCreated` events -> the ingest function.

Reads STAGE and API_KEY from the environment like the Node function. The records of one invocation
are processed side by side (the core's worker pool, pool.py): their waits on S3 and animl-api
overlap, their pixel work is bounded by the function's CPUs and the bytes they hold by a share of its
memory. Returns a summary of outcomes; raises only when an object could not be accounted for, so
Lambda marks the invocation failed and its on-failure destination keeps the event (a retry is safe:
every step is idempotent).

Cold start: this module imports only what the first record needs (the ingest core, Pillow, requests,
botocore's exceptions); boto3 is imported when the first client is made, zip handling only for a zip.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from animl_ingest_cli import keys
from animl_ingest_cli.context import StageContext, open_stage
from animl_ingest_cli.ingest import Ingestor, Outcome, summarize
from animl_ingest_cli.pool import MB, Limits, WorkItem, cpu_count, process_all
from animl_ingest_cli.redact import redact, register

log = logging.getLogger("animl_ingest")
logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))

MAX_RECORDS_AT_ONCE = 16    # records of one invocation in flight together
MEMORY_SHARE = 4            # a quarter of the function's memory for the source bytes in flight
DEFAULT_MEMORY_MB = 1024    # the template's MemorySize, when Lambda does not say

_ctx: StageContext | None = None  # kept across warm invocations: bucket names and maintenance cache


class UnaccountedObjects(RuntimeError):
    """Some objects could not be copied anywhere; they are still in the ingestion bucket."""


def limits(records: int) -> Limits:
    """How many of an invocation's records are processed at once: all of them up to 16; pixel work
    on the function's CPUs (Lambda gives a vCPU per 1769 MB); source bytes held within a quarter of
    its memory (the rest is Python, decoded pixels and thumbnails)."""
    try:
        memory_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", DEFAULT_MEMORY_MB))
    except ValueError:
        memory_mb = DEFAULT_MEMORY_MB
    return Limits(images=max(1, min(records, MAX_RECORDS_AT_ONCE)), cpu=cpu_count(),
                  bytes=max(1, memory_mb // MEMORY_SHARE) * MB)


def _context() -> StageContext:
    global _ctx
    stage = os.environ.get("STAGE", "dev")
    if _ctx is None or _ctx.stage != stage:
        _ctx = open_stage(stage, connections=limits(MAX_RECORDS_AT_ONCE).connections)
    return _ctx


def reset() -> None:
    """Forget the warm-start state (tests switch AWS backends between invocations)."""
    global _ctx
    _ctx = None


def _work(ctx: StageContext, records: list[dict[str, Any]]) -> tuple[list[WorkItem], int]:
    """The event's S3 ObjectCreated records as work items (their sources deleted after the copy),
    and how many records were something else."""
    items: list[WorkItem] = []
    ignored = 0
    for record in records:
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
        size = record["s3"]["object"].get("size")
        etag = str(record["s3"]["object"].get("eTag") or "").strip('"') or None
        log.info("new file detected in %s: %s", bucket, key)
        items.append(WorkItem(ctx.store_for_bucket(bucket), key, True,
                              size=size if isinstance(size, int) else None, etag=etag))
    return items, ignored


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    register(os.environ.get("API_KEY"))
    ctx = _context()
    time_left = None
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        def time_left() -> float:
            return context.get_remaining_time_in_millis() / 1000.0 - 1.0  # leave a second for the copy

    items, ignored = _work(ctx, list(event.get("Records") or []))
    outcomes: list[Outcome] = []
    run = process_all(Ingestor(ctx, time_left=time_left), items, limits(len(items)))
    try:
        for o in run:
            log.info(redact(json.dumps(o.to_json(), default=str)))
            outcomes.append(o)
    finally:
        outcomes.extend(run.close())
    summary = summarize(outcomes)
    summary["ignored"] = ignored
    summary["results"] = [o.to_json() for o in outcomes]
    unaccounted = [o for o in outcomes if not o.complete]
    if unaccounted:
        raise UnaccountedObjects(redact(
            f"{len(unaccounted)} object(s) not accounted for: "
            + "; ".join(f"{o.key}: {o.error}" for o in unaccounted[:10])))
    return summary
