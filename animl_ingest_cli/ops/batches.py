"""Bulk uploads in flight on a stage, and tearing one down by hand.

One home for "a bulk upload is still running": its AWS Batch job is active (SUBMITTED ... RUNNING in
the job queue of `/images/batch-queue-<stage>`), or its `animl-ingest-<stage>-batch-<uuid>` stack
still exists. `queues drain`, the runbook's "no bulk upload half-way" step and `batches list` all ask
here. A batch's view adds its queue and dead-letter counts, its alarm, and its age.

Jobs are all named `process-batch` (as the Node function named them), so a job is matched to its batch
by the `batchId` in the `TASK` JSON of its environment (DescribeJobs).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from animl_ingest_cli import audit
from animl_ingest_cli.aws import pages, translated
from animl_ingest_cli.batchjob import teardown as teardown_fn
from animl_ingest_cli.batchjob.inflight import (
    BatchStack,
    QueueInfo,
    alarm_state,
    batch_queues,
    find_stack,
    list_batch_stacks,
)
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import AccessDenied, RefusedError

ACTIVE_JOB_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
ENDED_JOB_STATUSES = ("SUCCEEDED", "FAILED")
DESCRIBE_JOBS_LIMIT = 100  # job ids per DescribeJobs call
_EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)
_LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)


@dataclass
class Visibility:
    """What a poll saw of one kind of work, or why it could not see it."""

    items: dict[str, Any] | None  # job status -> count, or stack name -> status; None: not visible
    note: str | None = None


def job_queue(ctx: StageContext) -> str | None:
    """The stage's AWS Batch job queue (ARN from `/images/batch-queue-<stage>`), None when unset."""
    if ctx.is_local:
        return None
    p = ctx.params.get(ctx.names.batch_queue_param)
    return p.value if p else None


def active_jobs(ctx: StageContext, queue: str | None) -> Visibility:
    """Batch jobs not yet finished in the stage's job queue: status -> count."""
    if ctx.is_local:
        return Visibility(None, "the local stage has no Batch jobs")
    if not queue:
        return Visibility(None, f"no parameter {ctx.names.batch_queue_param}")
    batch = ctx.client("batch")
    counts: dict[str, Any] = {}
    try:
        for status in ACTIVE_JOB_STATUSES:
            n = sum(len(p.get("jobSummaryList", [])) for p in pages(
                "Batch ListJobs", batch.get_paginator("list_jobs"), jobQueue=queue, jobStatus=status))
            if n:
                counts[status] = n
    except AccessDenied as exc:
        return Visibility(None, f"Batch jobs not visible: {exc.code}")
    return Visibility(counts)


def _stacks(ctx: StageContext) -> tuple[list[BatchStack] | None, str | None]:
    if ctx.is_local:
        return None, "the local stage has no stacks"
    try:
        return list_batch_stacks(ctx), None
    except AccessDenied as exc:
        return None, f"stacks not visible: {exc.code}"


def live_batch_stacks(ctx: StageContext) -> Visibility:
    """`animl-ingest-<stage>-batch-*` stacks that still exist: name -> status."""
    stacks, note = _stacks(ctx)
    return Visibility(None if stacks is None else {s.name: s.status for s in stacks}, note)


def busy_descriptions(jobs: Visibility, stacks: Visibility) -> list[str]:
    """What keeps bulk uploads running, one phrase each (empty: none, among what is visible)."""
    busy = [f"{n} Batch job(s) {status}" for status, n in (jobs.items or {}).items() if n]
    return busy + [f"stack {name} ({status})" for name, status in (stacks.items or {}).items()]


# --- one view per batch ----------------------------------------------------------------------------

@dataclass
class JobInfo:
    id: str
    status: str
    created: dt.datetime | None
    reason: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_JOB_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "reason": self.reason,
                "created": self.created.isoformat() if self.created else None}


@dataclass
class BatchView:
    batch: str
    stack: BatchStack | None = None
    job: JobInfo | None = None
    queue: QueueInfo | None = None
    dlq: QueueInfo | None = None
    alarm: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def running(self) -> bool:
        """The one rule: an active job, or a stack that still exists."""
        return self.stack is not None or bool(self.job and self.job.active)

    @property
    def created(self) -> dt.datetime | None:
        times = [t for t in (self.stack.created if self.stack else None,
                             self.job.created if self.job else None) if t]
        return min(times) if times else None

    def age_seconds(self, now: dt.datetime) -> float | None:
        created = self.created
        return round((now - created).total_seconds()) if created else None

    @property
    def dead(self) -> int:
        return self.dlq.messages if self.dlq else 0

    def to_dict(self, now: dt.datetime) -> dict[str, Any]:
        def counts(q: QueueInfo | None) -> dict[str, Any] | None:
            return None if q is None else {"name": q.name, "visible": q.visible,
                                           "in_flight": q.in_flight, "delayed": q.delayed}

        return {"batch": self.batch, "running": self.running,
                "stack": self.stack.name if self.stack else None,
                "stack_status": self.stack.status if self.stack else None,
                "stack_reason": self.stack.reason if self.stack else None,
                "job": self.job.to_dict() if self.job else None,
                "queue": counts(self.queue), "dlq": counts(self.dlq), "alarm": self.alarm,
                "created": self.created.isoformat() if self.created else None,
                "age_seconds": self.age_seconds(now), "notes": self.notes}


def _millis(value: Any) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC) if isinstance(value, (int, float)) else None


def _task_batch(job: dict[str, Any]) -> str | None:
    """The batchId of the TASK JSON the ingest function put in the job's environment."""
    for var in (job.get("container") or {}).get("environment") or []:
        if var.get("name") == "TASK":
            try:
                task = json.loads(var.get("value") or "")
            except ValueError:
                return None
            batch = task.get("batchId") if isinstance(task, dict) else None
            return batch if isinstance(batch, str) else None
    return None


def jobs_by_batch(ctx: StageContext, queue: str | None,
                  statuses: tuple[str, ...] = ACTIVE_JOB_STATUSES + ENDED_JOB_STATUSES,
                  ) -> tuple[dict[str, JobInfo], str | None]:
    """The newest job of each batch in the job queue, and a note when jobs cannot be seen."""
    if ctx.is_local:
        return {}, "the local stage has no Batch jobs"
    if not queue:
        return {}, f"no parameter {ctx.names.batch_queue_param}: Batch jobs not visible"
    client = ctx.client("batch")
    ids: list[str] = []
    try:
        for status in statuses:
            for page in pages("Batch ListJobs", client.get_paginator("list_jobs"), jobQueue=queue,
                              jobStatus=status):
                ids += [j["jobId"] for j in page.get("jobSummaryList", [])]
        described: list[dict[str, Any]] = []
        for i in range(0, len(ids), DESCRIBE_JOBS_LIMIT):
            with translated("Batch DescribeJobs"):
                described += client.describe_jobs(jobs=ids[i:i + DESCRIBE_JOBS_LIMIT]).get("jobs", [])
    except AccessDenied as exc:
        return {}, f"Batch jobs not visible: {exc.code}"
    out: dict[str, JobInfo] = {}
    for j in described:
        batch = _task_batch(j)
        if batch is None:
            continue
        info = JobInfo(j["jobId"], j.get("status", "?"), _millis(j.get("createdAt")), j.get("statusReason"))
        known = out.get(batch)
        if known is None or (info.created or _EARLIEST) > (known.created or _EARLIEST):
            out[batch] = info
    return out, None


def _fill(ctx: StageContext, view: BatchView) -> BatchView:
    view.queue, view.dlq = batch_queues(ctx, view.batch)
    if view.stack is not None:
        view.alarm = alarm_state(ctx, view.batch)
    return view


def in_flight(ctx: StageContext) -> tuple[list[BatchView], list[str]]:
    """Every batch still running on the stage (its stack exists or its job is active), oldest first,
    with what could not be seen."""
    if ctx.is_local:
        return [], ["the local stage runs bulk uploads in-process: nothing is in flight between commands"]
    stacks, stack_note = _stacks(ctx)
    jobs, job_note = jobs_by_batch(ctx, job_queue(ctx), ACTIVE_JOB_STATUSES)
    views: dict[str, BatchView] = {s.batch: BatchView(s.batch, stack=s) for s in stacks or []}
    for batch, job in jobs.items():
        views.setdefault(batch, BatchView(batch)).job = job
    notes = [n for n in (stack_note, job_note) if n]
    out = [_fill(ctx, v) for v in views.values()]
    return sorted(out, key=lambda v: (v.created or _LATEST, v.batch)), notes


def show(ctx: StageContext, batch: str) -> BatchView:
    """One batch, running or not: its stack, newest job (ended ones too), queues and alarm."""
    teardown_fn.check_batch(batch)
    view = BatchView(batch)
    if ctx.is_local:
        view.notes.append("the local stage has no stacks, queues or Batch jobs")
        return view
    view.stack = find_stack(ctx, batch)
    jobs, note = jobs_by_batch(ctx, job_queue(ctx))
    view.job = jobs.get(batch)
    if note:
        view.notes.append(note)
    return _fill(ctx, view)


# --- tearing one down --------------------------------------------------------------------------------

@dataclass
class TeardownPlan:
    view: BatchView
    dry_run: bool
    result: teardown_fn.Teardown | None = None

    def to_dict(self, now: dt.datetime) -> dict[str, Any]:
        return {"batch": self.view.batch, "dry_run": self.dry_run, "view": self.view.to_dict(now),
                "result": self.result.to_dict() if self.result else None}


def teardown(ctx: StageContext, batch: str, *, dry_run: bool = False,
             discard_dead_letters: bool = False) -> TeardownPlan:
    """What stopBatch's teardown does: DeleteStack, then `updateBatch {processingEnd}` (also for a
    batch without a stack). Refused while its Batch job is active, and while its dead-letter queue
    holds messages unless `discard_dead_letters` (they go with the stack). Audited."""
    if ctx.is_local:
        raise RefusedError("the local stage has no batch stacks to tear down")
    view = show(ctx, batch)
    plan = TeardownPlan(view, dry_run)
    if view.job and view.job.active:
        raise RefusedError(f"its Batch job {view.job.id} is {view.job.status}: it would go on writing "
                           f"images for a batch that has ended. Stop it first (aws batch terminate-job "
                           f"--job-id {view.job.id} --reason 'batch torn down'), then tear down")
    if view.dead and not discard_dead_letters:
        raise RefusedError(f"{view.dead} message(s) are dead in {view.dlq.name if view.dlq else 'its DLQ'}: "
                           f"redrive them first, or pass --discard-dead-letters to delete them with the "
                           f"stack")
    if dry_run:
        plan.result = teardown_fn.teardown(ctx, None, batch, dry_run=True, end_if_absent=True)
        return plan
    api = ctx.api()
    try:
        plan.result = teardown_fn.teardown(ctx, api, batch, end_if_absent=True)
    finally:
        audit.record(ctx.stage, "batches teardown", batch=batch, stack=ctx.names.batch_stack(batch),
                     stack_status=view.stack.status if view.stack else None, dead_letters=view.dead,
                     action=plan.result.action if plan.result else "failed",
                     processing_end=plan.result.processing_end if plan.result else None)
    return plan
