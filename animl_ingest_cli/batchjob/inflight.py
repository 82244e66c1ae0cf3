"""What a stage's bulk uploads hold in AWS right now: the per-batch stacks, their queues' counts and
their empty-queue alarm. Read by the teardown function and by the operator commands alike.

A per-batch stack (`animl-ingest-<stage>-batch-<uuid>`, docs/bulk-upload.md) owns the queue of the
same name, its `-dlq` and the alarm `<stack>-sqs-empty`; the names come from `config.Names`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from animl_ingest_cli import keys
from animl_ingest_cli.aws import pages, translated
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import StoreError

COUNT_ATTRIBUTES = {"ApproximateNumberOfMessages": "visible",
                    "ApproximateNumberOfMessagesNotVisible": "in_flight",
                    "ApproximateNumberOfMessagesDelayed": "delayed"}
MISSING_QUEUE_CODES = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
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
    arn: str | None = None

    @property
    def messages(self) -> int:
        return self.visible + self.in_flight + self.delayed

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "visible": self.visible,
                "in_flight": self.in_flight, "delayed": self.delayed, "dlq": self.dlq}


def counts_of(attrs: dict[str, str]) -> dict[str, int]:
    """visible / in_flight / delayed from SQS queue attributes."""
    return {field_: int(attrs.get(attr, 0)) for attr, field_ in COUNT_ATTRIBUTES.items()}


@dataclass
class BatchStack:
    """One per-batch stack as CloudFormation lists it."""

    name: str
    batch: str
    status: str
    created: dt.datetime
    reason: str | None = None

    def age(self, now: dt.datetime) -> dt.timedelta:
        return now - self.created

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "created": self.created.isoformat(),
                "reason": self.reason}


def _aware(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.now(dt.UTC)


def _batch_of(ctx: StageContext, stack: str) -> str | None:
    batch = ctx.names.batch_of_stack(stack)
    return batch if batch and keys.BATCH_ID_RE.match(batch) else None


def list_batch_stacks(ctx: StageContext) -> list[BatchStack]:
    """This stage's per-batch stacks that still exist (any status but DELETE_COMPLETE), oldest first."""
    cfn = ctx.client("cloudformation")
    out = []
    for page in pages("CloudFormation ListStacks", cfn.get_paginator("list_stacks"),
                      StackStatusFilter=list(LIVE_STACK_STATUSES)):
        for s in page.get("StackSummaries", []):
            batch = _batch_of(ctx, s["StackName"])
            if batch:
                out.append(BatchStack(s["StackName"], batch, s["StackStatus"], _aware(s.get("CreationTime")),
                                      s.get("StackStatusReason")))
    return sorted(out, key=lambda s: (s.created, s.name))


def find_stack(ctx: StageContext, batch: str) -> BatchStack | None:
    """The batch's stack, or None when there is none (never created, or deleted)."""
    name = ctx.names.batch_stack(batch)
    try:
        with translated(f"CloudFormation DescribeStacks {name}"):
            stacks = ctx.client("cloudformation").describe_stacks(StackName=name).get("Stacks", [])
    except StoreError as exc:
        if exc.code == "ValidationError" and "does not exist" in exc.message:
            return None
        raise
    for s in stacks:
        if s.get("StackStatus") != "DELETE_COMPLETE":
            return BatchStack(s["StackName"], batch, s["StackStatus"], _aware(s.get("CreationTime")),
                              s.get("StackStatusReason"))
    return None


def queue_info(ctx: StageContext, name: str, dlq: bool) -> QueueInfo | None:
    """A queue's counts and ARN, or None when the queue does not exist."""
    sqs = ctx.client("sqs")
    try:
        with translated(f"SQS GetQueueUrl {name}"):
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        with translated(f"SQS GetQueueAttributes {name}"):
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
                *COUNT_ATTRIBUTES, "QueueArn"])["Attributes"]
    except StoreError as exc:
        if exc.code in MISSING_QUEUE_CODES:
            return None
        raise
    return QueueInfo(name, url, dlq=dlq, arn=attrs.get("QueueArn"), **counts_of(attrs))


def batch_queues(ctx: StageContext, batch: str) -> tuple[QueueInfo | None, QueueInfo | None]:
    """(the batch's inference queue, its dead-letter queue); None for one that does not exist."""
    names = ctx.names
    return queue_info(ctx, names.batch_queue(batch), False), queue_info(ctx, names.batch_dlq(batch), True)


def alarm_state(ctx: StageContext, batch: str) -> str | None:
    """OK, ALARM or INSUFFICIENT_DATA for the batch's `-sqs-empty` alarm; None when it has none
    (a stack that failed before its alarm was made)."""
    name = ctx.names.batch_alarm(batch)
    with translated(f"CloudWatch DescribeAlarms {name}"):
        alarms = ctx.client("cloudwatch").describe_alarms(AlarmNames=[name]).get("MetricAlarms", [])
    return str(alarms[0]["StateValue"]) if alarms else None
