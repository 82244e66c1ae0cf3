"""The batch teardown: a bulk upload's per-batch stack deleted once its work is done.

The Lambda handler (`handler`) has three entry points, as the Node IngestDelete function had:
- the SNS message of the batch's `<stack>-sqs-empty` alarm (queue and DLQ empty for 10 minutes);
- a direct invoke `{"batch": "batch-<uuid>"}` (animl-api's stopBatch);
- the hourly schedule, which sweeps this stage's batch stacks older than 24 h.

Tearing a batch down is DeleteStack, then `updateBatch {_id, processingEnd}`; a failure sends
`createBatchError` and the invocation fails (Lambda retries it). It is idempotent: a stack that is
already being deleted is not deleted again, and one already gone is left alone (no updateBatch).

The sweep deletes a stack when both its queues are empty and its alarm is not OK (INSUFFICIENT_DATA,
ALARM, or no alarm at all: a stack that failed before making one). A batch whose dead-letter queue
holds messages keeps the alarm OK forever: the sweep keeps such a batch (deleting it would drop the
dead messages), logs it every run and sends one `createBatchError` saying how many messages are dead
and how to redrive them. "Once" is remembered as a tag on the DLQ itself, which goes with the stack.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from animl_ingest_cli import keys
from animl_ingest_cli.api import Api
from animl_ingest_cli.aws import translated
from animl_ingest_cli.batchjob.inflight import (
    BatchStack,
    QueueInfo,
    alarm_state,
    batch_queues,
    find_stack,
    list_batch_stacks,
)
from animl_ingest_cli.context import StageContext, open_stage
from animl_ingest_cli.errors import AnimlError, ApiError, InputError
from animl_ingest_cli.redact import redact, register

log = logging.getLogger("animl_ingest.teardown")
logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))

SWEEP_AGE = dt.timedelta(hours=24)
EMPTY_ALARM_STATES = ("INSUFFICIENT_DATA", "ALARM")
DEAD_REPORTED_TAG = "animl-ingest:dead-letters-reported"

# What a teardown did.
DELETED = "deleted"            # DeleteStack sent, processingEnd recorded
WOULD_DELETE = "would-delete"  # dry run
DELETING = "already-deleting"  # another delivery started it: only processingEnd sent again
GONE = "gone"                  # no stack: nothing to delete
FAILED = "failed"


def iso(when: dt.datetime) -> str:
    """The API's date format: ISO 8601, milliseconds, `Z`."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Teardown:
    batch: str
    stack: str
    action: str
    status: str | None = None          # the stack's status before
    processing_end: str | None = None  # what updateBatch was sent
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_batch(batch: Any) -> str:
    if not isinstance(batch, str) or not keys.BATCH_ID_RE.match(batch):
        raise InputError(f"not a batch id (batch-<uuid>): {str(batch)[:80]!r}")
    return batch


def teardown(ctx: StageContext, api: Api | None, batch: str, *, dry_run: bool = False,
             end_if_absent: bool = False, now: Callable[[], dt.datetime] = _now) -> Teardown:
    """Delete the batch's stack, then record processingEnd. Raises AnimlError on failure (the caller
    reports it). `end_if_absent`: record processingEnd even when the batch has no stack (a stop
    request for a batch whose stack was never made, as stopBatch expects)."""
    check_batch(batch)
    name = ctx.names.batch_stack(batch)
    stack = find_stack(ctx, batch)
    status = stack.status if stack else None
    deleting = stack is not None and stack.status == "DELETE_IN_PROGRESS"
    if stack is None and not end_if_absent:
        log.info("%s: no such stack (already torn down), nothing to do", name)
        return Teardown(batch, name, GONE)
    action = DELETING if deleting else DELETED if stack else GONE
    if dry_run:
        return Teardown(batch, name, WOULD_DELETE if action == DELETED else action, status)
    if action == DELETED:
        log.info("deleting stack %s (%s)", name, status)
        with translated(f"CloudFormation DeleteStack {name}"):
            ctx.client("cloudformation").delete_stack(StackName=name)
    # Also while another delivery's deletion is under way: a retry after a failed updateBatch then
    # still records processingEnd (moved by the seconds between the two, nothing else).
    end = iso(now())
    if api is None:
        raise InputError("no API to record processingEnd with")
    api.update_batch({"_id": batch, "processingEnd": end})
    log.info("%s: %s, processingEnd %s", name, action, end)
    return Teardown(batch, name, action, status, end)


def report_failure(api: Api | None, batch: str, message: str) -> None:
    """createBatchError, best effort: the failure is logged and raised whatever happens here."""
    log.error("%s: %s", batch, redact(message))
    if api is None:
        return
    try:
        api.create_batch_error(message, batch)
    except ApiError as exc:
        log.error("%s: createBatchError failed too: %s", batch, exc.message)


# --- the hourly sweep ------------------------------------------------------------------------------

@dataclass
class SweepItem:
    batch: str
    stack: str
    status: str
    age_hours: float
    decision: str   # deleted | kept: <why> | dead-letters | failed
    dead: int = 0
    reported: bool = False  # createBatchError sent for the dead letters on this run
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dead_letter_text(ctx: StageContext, batch: str, queue: QueueInfo | None, dlq: QueueInfo) -> str:
    """What an operator is told about a batch stuck on its dead-letter queue."""
    redrive = (f"redrive them with `aws sqs start-message-move-task --source-arn {dlq.arn} "
               f"--destination-arn {queue.arn}`" if queue and queue.arn and dlq.arn
               else f"inspect them in {dlq.name}")
    return (f"{dlq.messages} inference message(s) are dead in {dlq.name}, so the batch's stack is "
            f"kept: {redrive}; or give them up with `animl-ingest batches teardown {batch} --stage "
            f"{ctx.stage} --discard-dead-letters`")


def _already_reported(ctx: StageContext, dlq: QueueInfo) -> bool:
    with translated(f"SQS ListQueueTags {dlq.name}"):
        tags = ctx.client("sqs").list_queue_tags(QueueUrl=dlq.url).get("Tags") or {}
    return DEAD_REPORTED_TAG in tags


def _mark_reported(ctx: StageContext, dlq: QueueInfo, when: dt.datetime) -> None:
    with translated(f"SQS TagQueue {dlq.name}"):
        ctx.client("sqs").tag_queue(QueueUrl=dlq.url, Tags={
            DEAD_REPORTED_TAG: f"{iso(when)} {dlq.messages}"})


def report_dead_letters(ctx: StageContext, api: Api, batch: str, queue: QueueInfo | None,
                        dlq: QueueInfo, now: dt.datetime) -> bool:
    """Log the stuck batch; send createBatchError unless an earlier run did. True when sent now.
    The API call comes first and the tag second, so a failure in between reports twice, never zero
    times."""
    text = dead_letter_text(ctx, batch, queue, dlq)
    log.warning("%s: %s", batch, text)
    if _already_reported(ctx, dlq):
        return False
    api.create_batch_error(text, batch)
    _mark_reported(ctx, dlq, now)
    return True


def sweep_one(ctx: StageContext, api: Api, stack: BatchStack, now: dt.datetime) -> SweepItem:
    item = SweepItem(stack.batch, stack.name, stack.status, round(stack.age(now).total_seconds() / 3600, 1),
                     "kept")
    if stack.status == "DELETE_IN_PROGRESS":
        item.decision = "kept: already being deleted"
        return item
    queue, dlq = batch_queues(ctx, stack.batch)
    if queue is not None and queue.messages:
        item.decision = f"kept: {queue.messages} message(s) still in {queue.name}"
        return item
    if dlq is not None and dlq.messages:
        item.decision, item.dead = "dead-letters", dlq.messages
        item.reported = report_dead_letters(ctx, api, stack.batch, queue, dlq, now)
        return item
    state = alarm_state(ctx, stack.batch)
    if state is not None and state not in EMPTY_ALARM_STATES:
        item.decision = f"kept: alarm {state}"
        return item
    result = teardown(ctx, api, stack.batch, now=lambda: now)
    item.decision = result.action
    return item


def sweep(ctx: StageContext, api: Api, now: dt.datetime | None = None,
          min_age: dt.timedelta = SWEEP_AGE) -> list[SweepItem]:
    """The hourly run: every batch stack older than `min_age`, torn down, kept or reported."""
    when = now or _now()
    out = []
    stacks = [s for s in list_batch_stacks(ctx) if s.age(when) >= min_age]
    log.info("%d batch stack(s) older than %s", len(stacks), min_age)
    for stack in stacks:
        try:
            item = sweep_one(ctx, api, stack, when)
        except AnimlError as exc:
            report_failure(api, stack.batch, f"teardown of {stack.name} failed: {exc.message}")
            item = SweepItem(stack.batch, stack.name, stack.status,
                             round(stack.age(when).total_seconds() / 3600, 1), FAILED, error=exc.message)
        log.info("%s: %s", stack.name, item.decision)
        out.append(item)
    return out


# --- the Lambda entry point --------------------------------------------------------------------------

class TeardownFailed(RuntimeError):
    """Some batch could not be torn down; it was reported with createBatchError."""


def _alarm_batches(ctx: StageContext, records: list[Any]) -> list[str]:
    """The batches named by SNS alarm notifications (stack = AlarmName minus `-sqs-empty`)."""
    names = ctx.names
    out = []
    for record in records:
        sns = record.get("Sns") if isinstance(record, dict) else None
        if not isinstance(sns, dict):
            log.warning("ignoring a record that is not an SNS notification")
            continue
        try:
            message = json.loads(sns.get("Message") or "")
        except ValueError:
            log.warning("ignoring an SNS message that is not JSON")
            continue
        alarm = message.get("AlarmName") if isinstance(message, dict) else None
        state = message.get("NewStateValue") if isinstance(message, dict) else None
        if not isinstance(alarm, str) or not alarm.endswith(names.batch_alarm_suffix):
            log.warning("ignoring SNS message for alarm %r: not a batch alarm", alarm)
            continue
        if state not in (None, "ALARM"):
            log.info("ignoring alarm %s going %s", alarm, state)
            continue
        batch = names.batch_of_stack(alarm[: -len(names.batch_alarm_suffix)])
        if batch is None or not keys.BATCH_ID_RE.match(batch):
            log.warning("ignoring alarm %r: not a batch stack of stage %s", alarm, ctx.stage)
            continue
        out.append(batch)
    return list(dict.fromkeys(out))


def event_kind(event: Any) -> str:
    """`alarm`, `stop` or `schedule`; InputError for anything else."""
    if isinstance(event, dict):
        if isinstance(event.get("Records"), list):
            return "alarm"
        if "batch" in event:
            return "stop"
        if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
            return "schedule"
    raise InputError("unknown event: expected an SNS alarm notification, {\"batch\": ...} or the "
                     "hourly schedule")


_ctx: StageContext | None = None


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
    log.info("event: %s", redact(json.dumps(event, default=str)[:2000]))
    kind = event_kind(event)
    ctx = _context()
    api = ctx.api()
    if kind == "schedule":
        items = sweep(ctx, api)
        failed = [i for i in items if i.decision == FAILED]
        if failed:
            raise TeardownFailed(redact(f"{len(failed)} batch stack(s) not torn down: "
                                        + "; ".join(f"{i.stack}: {i.error}" for i in failed[:10])))
        return {"kind": kind, "results": [i.to_dict() for i in items]}
    batches = _alarm_batches(ctx, event["Records"]) if kind == "alarm" else [check_batch(event["batch"])]
    results, errors = [], []
    for batch in batches:
        try:
            results.append(teardown(ctx, api, batch, end_if_absent=kind == "stop").to_dict())
        except AnimlError as exc:
            report_failure(api, batch, f"teardown of {ctx.names.batch_stack(batch)} failed: {exc.message}")
            errors.append(f"{batch}: {exc.message}")
    if errors:
        raise TeardownFailed(redact("; ".join(errors)))
    return {"kind": kind, "results": results}
