"""The per-batch stack: its CloudFormation template in code, and its creation (docs/bulk-upload.md).

One stack per bulk upload, named `animl-ingest-<stage>-batch-<uuid>`, made by the bulk-upload job
before it writes the zip's images and deleted by the batch teardown once its queues are empty. It
holds what animl-api needs to run inference on the batch's images, with the names animl-api and the
frontend already rely on (they are hard-coded there; keep them):

- `PredQueue`: SQS queue named like the stack (visibility 720 s, to the DLQ after 5 receives);
  animl-api sends one `run-inference` message per batch image to it;
- `PredDLQ`: its dead-letter queue, `<stack>-dlq`;
- `PredInference`: the event-source mapping from the queue to Lambda `animl-api-<stage>-batchinference`
  (batch size 10, ReportBatchItemFailures);
- `PredSQSAlarm`: CloudWatch alarm `<stack>-sqs-empty`: the sum of the per-minute Maximum of visible,
  in-flight and delayed messages of the queue and its DLQ at <= 0 for 10 of 10 one-minute periods,
  missing data treated as missing, action: SNS topic `animl-ingest-<stage>-delete` (the teardown).

The names are `config.Names` (`batch_stack`, `batch_queue`, `batch_dlq`, `batch_alarm`,
`batch_delete_topic`): the template names things by the stack's own name, so they agree by
construction, and tests/batchjob/test_stack.py checks what moto makes. Resources and names are the
Node job's (`ingest-zip/lib/stack.js`) but for two things: the DLQ's in-flight metric is named by
the DLQ's QueueName attribute instead of by a joined string (same value), and the queues are tagged
with the parameters (`animl:batch`, `animl:zip`), which the Node template declared and never used.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from animl_ingest_cli import keys
from animl_ingest_cli.api import one_line
from animl_ingest_cli.aws import AWS_ERRORS, error_code, translate
from animl_ingest_cli.config import Names
from animl_ingest_cli.errors import EXIT_SOME_FAILED, AnimlError

QUEUE_VISIBILITY_SECONDS = 720
MAX_RECEIVES = 5
INFERENCE_BATCH_SIZE = 10
ALARM_PERIODS = 10
# the metrics the alarm sums, for the queue and for its DLQ
QUEUE_METRICS = ("ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesVisible",
                 "ApproximateNumberOfMessagesDelayed")


def stack_name(stage: str, batch: str) -> str:
    """`animl-ingest-<stage>-batch-<uuid>` for batch `batch-<uuid>` (the names live in config.Names;
    this refuses anything that is not a batch id before it becomes a stack name)."""
    if not keys.BATCH_ID_RE.match(batch):
        raise ValueError(f"not a batch id: {batch!r}")
    return Names(stage).batch_stack(batch)


def inference_function_name(stage: str) -> str:
    """animl-api's Lambda that consumes the batch queue."""
    return f"animl-api-{stage}-batchinference"


def _metric(ident: str, metric: str, queue: Any) -> dict[str, Any]:
    return {"Id": ident, "ReturnData": False, "MetricStat": {
        "Metric": {"Namespace": "AWS/SQS", "MetricName": metric,
                   "Dimensions": [{"Name": "QueueName", "Value": queue}]},
        "Period": 60, "Stat": "Maximum"}}


def template(stage: str) -> dict[str, Any]:
    """The per-batch stack's template for `stage` (parameters BatchID and S3URL, as the Node job's)."""
    queue = {"Fn::GetAtt": ["PredQueue", "QueueName"]}
    dlq = {"Fn::GetAtt": ["PredDLQ", "QueueName"]}
    metrics: list[dict[str, Any]] = [{"Id": "total", "Label": "TotalSQS", "ReturnData": True,
                                      "Expression": "SUM(METRICS())"}]
    for n, (name, target) in enumerate([(m, queue) for m in QUEUE_METRICS] +
                                       [(m, dlq) for m in QUEUE_METRICS], start=1):
        metrics.append(_metric(f"m{n}", name, target))
    topic = {"Fn::Sub": "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:"
                        + Names(stage).batch_delete_topic}
    tags = [{"Key": "animl:batch", "Value": {"Ref": "BatchID"}},
            {"Key": "animl:zip", "Value": {"Ref": "S3URL"}}]
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"animl-ingest {stage}: the queues and alarm of one bulk upload",
        "Parameters": {
            "BatchID": {"Type": "String", "Description": "The unique ID of the Batch Task"},
            "S3URL": {"Type": "String", "Description": "The S3 URL of the bulk-upload zip"},
        },
        "Resources": {
            "PredQueue": {"Type": "AWS::SQS::Queue", "Properties": {
                "QueueName": {"Ref": "AWS::StackName"},
                "VisibilityTimeout": QUEUE_VISIBILITY_SECONDS,
                "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["PredDLQ", "Arn"]},
                                  "maxReceiveCount": MAX_RECEIVES},
                "Tags": tags}},
            "PredDLQ": {"Type": "AWS::SQS::Queue", "Properties": {
                "QueueName": {"Fn::Join": ["", [{"Ref": "AWS::StackName"}, "-dlq"]]},
                "Tags": tags}},
            "PredInference": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
                "BatchSize": INFERENCE_BATCH_SIZE, "Enabled": True,
                "EventSourceArn": {"Fn::GetAtt": ["PredQueue", "Arn"]},
                "FunctionName": inference_function_name(stage),
                "FunctionResponseTypes": ["ReportBatchItemFailures"]}},
            "PredSQSAlarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
                "AlarmName": {"Fn::Join": ["", [{"Ref": "AWS::StackName"}, Names(stage).batch_alarm_suffix]]},
                "AlarmDescription": "Set an alarm to breach when SQS list is at 0",
                "ActionsEnabled": True, "OKActions": [], "AlarmActions": [topic],
                "InsufficientDataActions": [],
                "EvaluationPeriods": ALARM_PERIODS, "DatapointsToAlarm": ALARM_PERIODS,
                "Threshold": 0, "ComparisonOperator": "LessThanOrEqualToThreshold",
                "TreatMissingData": "missing", "Metrics": metrics}},
        },
        "Outputs": {
            "QueueUrl": {"Value": {"Ref": "PredQueue"}},
            "DLQUrl": {"Value": {"Ref": "PredDLQ"}},
        },
    }


def template_body(stage: str) -> str:
    return json.dumps(template(stage), indent=1, sort_keys=True)


def stack_parameters(batch: str, bucket: str, key: str) -> list[dict[str, str]]:
    return [{"ParameterKey": "BatchID", "ParameterValue": batch},
            {"ParameterKey": "S3URL", "ParameterValue": f"s3://{bucket}/{key}"}]


# --- creating the stack and waiting for it -------------------------------------------------------
READY = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"})
WAITING = frozenset({"CREATE_IN_PROGRESS", "REVIEW_IN_PROGRESS", "UPDATE_IN_PROGRESS",
                     "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS",
                     "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"})
# everything else (CREATE_FAILED, ROLLBACK_*, DELETE_*, IMPORT_*ROLLBACK*, UPDATE_FAILED...) is a failure
DEFAULT_TIMEOUT = 15 * 60.0  # CloudFormation makes these four resources in about a minute
DEFAULT_POLL = 10.0


class StackFailed(AnimlError):
    """The per-batch stack could not be made (or is being deleted): the batch cannot run."""

    exit_code = EXIT_SOME_FAILED


@dataclass
class StackReady:
    name: str
    status: str
    created: bool  # False when an existing stack for the batch was reused
    waited: float


def _describe(cfn: Any, name: str) -> dict[str, Any] | None:
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except AWS_ERRORS as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            return None
        raise translate(exc, f"CloudFormation DescribeStacks {name}") from None
    live = [s for s in stacks if s.get("StackStatus") != "DELETE_COMPLETE"]
    return live[0] if live else None


def _failure_reasons(cfn: Any, name: str) -> str:
    """The first few failed resources' reasons, oldest first; empty when none were recorded."""
    try:
        events = cfn.describe_stack_events(StackName=name).get("StackEvents", [])
    except AWS_ERRORS:
        return ""
    failed = [f"{e.get('LogicalResourceId')}: {e.get('ResourceStatusReason') or e.get('ResourceStatus')}"
              for e in reversed(events)
              if str(e.get("ResourceStatus", "")).endswith("FAILED")
              and e.get("LogicalResourceId") != name]
    return "; ".join(failed[:3])


def ensure_stack(cfn: Any, stage: str, batch: str, bucket: str, key: str, *,
                 timeout: float = DEFAULT_TIMEOUT, poll: float = DEFAULT_POLL,
                 log: Callable[[str], None] = lambda _m: None,
                 sleep: Callable[[float], None] = time.sleep) -> StackReady:
    """The batch's stack, ready: an existing one is reused (never created twice), else it is
    created; then wait until it is ready. A failed, rolled-back or deleting stack raises StackFailed
    at once with the failed resources' reasons; no answer within `timeout` seconds raises too (moto,
    and a stuck resource, leave a stack in CREATE_IN_PROGRESS for ever)."""
    name = stack_name(stage, batch)
    start = time.monotonic()
    found = _describe(cfn, name)
    created = False
    create_error = ""
    if found is None:
        try:
            cfn.create_stack(StackName=name, TemplateBody=template_body(stage),
                             Parameters=stack_parameters(batch, bucket, key),
                             ClientRequestToken=f"{batch}-{uuid.uuid4().hex[:12]}",
                             Tags=[{"Key": "animl:batch", "Value": batch}])
            created = True
            log(f"creating stack {name}")
        except Exception as exc:  # noqa: BLE001 - any failure: the stack's own status decides below
            if error_code(exc) == "AlreadyExistsException":
                log(f"stack {name} is being created by another job: waiting for it")
            else:
                # the stack may exist all the same (moto registers it, then fails a resource and
                # answers an error): the wait below tells; without a stack, this is the failure
                create_error = one_line(str(translate(exc, "CreateStack"))
                                        if isinstance(exc, AWS_ERRORS) else str(exc))
                if _describe(cfn, name) is None:
                    raise StackFailed(f"stack {name} could not be created: {create_error}") from None
                created = True
    else:
        log(f"stack {name} exists ({found.get('StackStatus')}): reusing it")
    while True:
        found = _describe(cfn, name)
        status = str(found.get("StackStatus")) if found else "DELETE_COMPLETE"
        waited = time.monotonic() - start
        if status in READY:
            return StackReady(name, status, created, waited)
        if status not in WAITING:
            reasons = _failure_reasons(cfn, name) or str((found or {}).get("StackStatusReason") or "")
            raise StackFailed(f"stack {name} {status}" + (f": {reasons}" if reasons else ""))
        if waited >= timeout:
            reasons = _failure_reasons(cfn, name) or create_error
            raise StackFailed(f"stack {name} still {status} after {waited:.0f} s"
                              + (f": {reasons}" if reasons else ""))
        sleep(min(poll, max(0.0, timeout - waited)))
