"""Animl's SQS queues, AWS Batch jobs and batch stacks of a stage: counts, and waiting until all are idle.

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
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import AccessDenied, InputError, RefusedError, StoreError

COUNT_ATTRIBUTES = {"ApproximateNumberOfMessages": "visible",
                    "ApproximateNumberOfMessagesNotVisible": "in_flight",
                    "ApproximateNumberOfMessagesDelayed": "delayed"}
ACTIVE_JOB_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
# Every CloudFormation stack status but DELETE_COMPLETE: a stack in any of them still exists.
LIVE_STACK_STATUSES = (
    "CREATE_IN_PROGRESS", "CREATE_FAILED", "CREATE_COMPLETE", "ROLLBACK_IN_PROGRESS",
    "ROLLBACK_FAILED", "ROLLBACK_COMPLETE", "DELETE_IN_PROGRESS", "DELETE_FAILED",
    "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_COMPLETE",
    "UPDATE_FAILED", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE",
    "REVIEW_IN_PROGRESS", "IMPORT_IN_PROGRESS", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_IN_PROGRESS",
    "IMPORT_ROLLBACK_FAILED", "IMPORT_ROLLBACK_COMPLETE")


@dataclass
class QueueInfo:
    name: str
    url: str
    visible: int
    in_flight: int
    delayed: int
    dlq: bool

    @property
    def messages(self) -> int:
        return self.visible + self.in_flight + self.delayed

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "visible": self.visible,
                "in_flight": self.in_flight, "delayed": self.delayed, "dlq": self.dlq}


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
            if exc.code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                continue  # a batch queue deleted with its stack since the listing
            raise
        found.append((url.rstrip("/").rsplit("/", 1)[-1], url, attrs))
    targets = {_dead_letter_target(attrs) for _, _, attrs in found}
    out = []
    for name, url, attrs in sorted(found):
        counts = {field_: int(attrs.get(attr, 0)) for attr, field_ in COUNT_ATTRIBUTES.items()}
        dlq = attrs.get("QueueArn") in targets or "dlq" in name.lower()
        out.append(QueueInfo(name, url, dlq=dlq, **counts))
    return out


def _dead_letter_target(attrs: dict[str, str]) -> str | None:
    try:
        return json.loads(attrs.get("RedrivePolicy") or "{}").get("deadLetterTargetArn")
    except (ValueError, AttributeError):
        return None


@dataclass
class Visibility:
    """What a poll saw of one kind of work, or why it could not see it."""

    items: dict[str, Any] | None  # job status -> count, or stack name -> status; None: not visible
    note: str | None = None


def active_jobs(ctx: StageContext, job_queue: str | None) -> Visibility:
    """Batch jobs not yet finished in the stage's job queue (`/images/batch-queue-<stage>`)."""
    if ctx.is_local:
        return Visibility(None, "the local stage has no Batch jobs")
    if not job_queue:
        return Visibility(None, f"no parameter {ctx.names.batch_queue_param}")
    batch = ctx.client("batch")
    counts: dict[str, Any] = {}
    try:
        for status in ACTIVE_JOB_STATUSES:
            n = sum(len(p.get("jobSummaryList", [])) for p in pages(
                "Batch ListJobs", batch.get_paginator("list_jobs"), jobQueue=job_queue, jobStatus=status))
            if n:
                counts[status] = n
    except AccessDenied as exc:
        return Visibility(None, f"Batch jobs not visible: {exc.code}")
    return Visibility(counts)


def live_batch_stacks(ctx: StageContext) -> Visibility:
    """`animl-ingest-<stage>-batch-*` stacks that still exist (one per bulk upload in progress)."""
    if ctx.is_local:
        return Visibility(None, "the local stage has no stacks")
    prefix = ctx.names.batch_stack_prefix
    stacks: dict[str, Any] = {}
    try:
        cfn = ctx.client("cloudformation")
        for page in pages("CloudFormation ListStacks", cfn.get_paginator("list_stacks"),
                          StackStatusFilter=list(LIVE_STACK_STATUSES)):
            for s in page.get("StackSummaries", []):
                if s["StackName"].startswith(prefix):
                    stacks[s["StackName"]] = s["StackStatus"]
    except AccessDenied as exc:
        return Visibility(None, f"stacks not visible: {exc.code}")
    return Visibility(stacks)


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
        return (not self.busy_queues and not sum((self.jobs.items or {}).values())
                and not self.stacks.items)

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


def snapshot(ctx: StageContext, job_queue: str | None) -> Snapshot:
    return Snapshot(list_queues(ctx), active_jobs(ctx, job_queue), live_batch_stacks(ctx))


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
    job_queue = None
    if not ctx.is_local:
        p = ctx.params.get(ctx.names.batch_queue_param)
        job_queue = p.value if p else None
    polls = streak = 0
    while True:
        snap = snapshot(ctx, job_queue)
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
