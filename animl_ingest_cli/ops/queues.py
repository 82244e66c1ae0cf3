"""Animl's SQS queues, AWS Batch jobs and batch stacks of a stage: counts, and waiting until all are idle.

What counts as a bulk upload still running (jobs, stacks) is ops.batches' rule; this module adds the
stage's shared queues and the waiting.

SQS counts are approximate, so a queue counts as drained only after `stable` consecutive polls at
zero. Dead-letter queues never drain by themselves: they are reported, never waited on. A zip still
being unzipped shows up as a Batch job or a batch stack before its queue has messages, so those are
waited on too, when the caller may see them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from animl_ingest_cli.aws import pages, translated
from animl_ingest_cli.batchjob.inflight import COUNT_ATTRIBUTES, MISSING_QUEUE_CODES, QueueInfo, counts_of
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import InputError, RefusedError, StoreError
from animl_ingest_cli.ops.batches import (
    Visibility,
    active_jobs,
    busy_descriptions,
    job_queue,
    live_batch_stacks,
)

__all__ = ["QueueInfo", "Snapshot", "Visibility", "drain", "list_queues", "snapshot"]


def list_queues(ctx: StageContext) -> list[QueueInfo]:
    """Every Animl queue of the stage with its counts, sorted by name. None on the local stage."""
    if ctx.is_local:
        return []
    sqs = ctx.client("sqs")
    urls: set[str] = set()
    for prefix in ctx.names.queue_prefixes:
        for page in pages("SQS ListQueues", sqs.get_paginator("list_queues"), QueueNamePrefix=prefix,
                          PaginationConfig={"PageSize": 1000}):
            urls.update(page.get("QueueUrls", []))
    found: list[tuple[str, str, dict[str, str]]] = []
    for url in urls:
        try:
            with translated("SQS GetQueueAttributes"):
                attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
                    *COUNT_ATTRIBUTES, "QueueArn", "RedrivePolicy"])["Attributes"]
        except StoreError as exc:
            if exc.code in MISSING_QUEUE_CODES:
                continue  # a batch queue deleted with its stack since the listing
            raise
        found.append((url.rstrip("/").rsplit("/", 1)[-1], url, attrs))
    targets = {_dead_letter_target(attrs) for _, _, attrs in found}
    out = []
    for name, url, attrs in sorted(found):
        dlq = attrs.get("QueueArn") in targets or "dlq" in name.lower()
        out.append(QueueInfo(name, url, dlq=dlq, arn=attrs.get("QueueArn"), **counts_of(attrs)))
    return out


def _dead_letter_target(attrs: dict[str, str]) -> str | None:
    try:
        return json.loads(attrs.get("RedrivePolicy") or "{}").get("deadLetterTargetArn")
    except (ValueError, AttributeError):
        return None


@dataclass
class Snapshot:
    """One poll: queues, jobs and stacks, and whether the work is idle."""

    queues: list[QueueInfo]
    jobs: Visibility
    stacks: Visibility
    at: float = field(default_factory=time.time)

    @property
    def busy_queues(self) -> list[QueueInfo]:
        return [q for q in self.queues if not q.dlq and q.messages]

    @property
    def dead_letters(self) -> list[QueueInfo]:
        return [q for q in self.queues if q.dlq and q.messages]

    @property
    def idle(self) -> bool:
        return not self.busy_queues and not busy_descriptions(self.jobs, self.stacks)

    def describe(self) -> str:
        """One line: the busy queues with visible/in-flight/delayed counts, jobs and stacks."""
        busy = ", ".join(f"{q.name} {q.visible}/{q.in_flight}/{q.delayed}" for q in self.busy_queues)
        jobs = sum(self.jobs.items.values()) if self.jobs.items is not None else "not visible"
        stacks = len(self.stacks.items) if self.stacks.items is not None else "not visible"
        return (f"{len(self.busy_queues)} busy queue(s){' (' + busy + ')' if busy else ''}, "
                f"batch jobs {jobs}, batch stacks {stacks}")

    def to_dict(self) -> dict[str, Any]:
        return {"idle": self.idle, "queues": [q.to_dict() for q in self.queues],
                "jobs": self.jobs.items, "jobs_note": self.jobs.note,
                "stacks": self.stacks.items,
                "stacks_note": self.stacks.note}


def snapshot(ctx: StageContext, queue: str | None) -> Snapshot:
    """One poll; `queue` is the stage's AWS Batch job queue (ops.batches.job_queue)."""
    return Snapshot(list_queues(ctx), active_jobs(ctx, queue), live_batch_stacks(ctx))


def no_queues_message(ctx: StageContext) -> str:
    prefixes = ", ".join(p + ("*" if p.endswith("-") else "") for p in ctx.names.queue_prefixes)
    return (f"no Animl queue found on {ctx.stage} (looked for {prefixes}): check the AWS profile, "
            f"region and account; --allow-empty counts no queues as drained")


@dataclass
class DrainResult:
    drained: bool
    polls: int
    elapsed: float
    last: Snapshot

    def to_dict(self) -> dict[str, Any]:
        return {"drained": self.drained, "polls": self.polls, "elapsed": round(self.elapsed, 3),
                "dead_letter": [q.to_dict() for q in self.last.dead_letters]}


def drain(ctx: StageContext, *, timeout: float = 3600, interval: float = 60, stable: int = 3,
          on_poll: Callable[[Snapshot, int], None] | None = None,
          sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.monotonic, allow_empty: bool = False) -> DrainResult:
    """Poll until the work has been idle for `stable` consecutive polls, or `timeout` runs out.

    `on_poll(snapshot, streak)` sees every poll. The local stage has no queues: drained at once.
    An AWS stage where not one Animl queue is found is refused (RefusedError) unless `allow_empty`:
    that is nearly always the wrong profile, region or account, and "drained" would be a lie.
    """
    if timeout < 0 or interval < 0 or stable < 1:
        raise InputError("drain needs --timeout >= 0, --interval >= 0 and --stable >= 1")
    start = clock()
    queue = job_queue(ctx)
    polls = streak = 0
    while True:
        snap = snapshot(ctx, queue)
        polls += 1
        if polls == 1 and not ctx.is_local and not snap.queues and not allow_empty:
            raise RefusedError(no_queues_message(ctx))
        streak = streak + 1 if snap.idle else 0
        if on_poll:
            on_poll(snap, streak)
        if streak >= stable or (ctx.is_local and snap.idle):
            return DrainResult(True, polls, clock() - start, snap)
        remaining = start + timeout - clock()
        if remaining <= 0:
            return DrainResult(False, polls, clock() - start, snap)
        sleep(min(interval, remaining))
