"""Per-batch stacks in moto for the teardown and `batches` tests, and the stand-in of animl-api's
batchinference function that the job's own stacks map their queue to.

The stack has the queue and its DLQ (redrive after 5 receives) as docs/bulk-upload.md says. moto's
CloudFormation skips `AWS::CloudWatch::Alarm`, so the alarm is made beside the stack with
PutMetricAlarm and put in the state a test wants with SetAlarmState (moto never evaluates alarms).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
import zipfile
from typing import Any

import boto3

from animl_ingest_cli.batchjob.stack import inference_function_name
from animl_ingest_cli.config import REGION, Names

STAGE = "dev"
NAMES = Names(STAGE)


def inference_function(stage: str = STAGE, iam: Any = None, lambda_client: Any = None) -> None:
    """animl-api's batchinference Lambda, as a stand-in: the event-source mapping of a per-batch
    stack needs it to exist. With the clients given, else boto3's (moto in-process, or the endpoint
    the environment names)."""
    iam = iam or boto3.client("iam", region_name=REGION)
    lambda_client = lambda_client or boto3.client("lambda", region_name=REGION)
    role = iam.create_role(RoleName="batchinference", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", "def handler(event, context):\n    return {}\n")
    lambda_client.create_function(FunctionName=inference_function_name(stage), Runtime="python3.12",
                                  Role=role, Handler="index.handler", Code={"ZipFile": buf.getvalue()})


def new_batch() -> str:
    return f"batch-{uuid.uuid4()}"


def stack_template(stage: str, batch: str) -> str:
    names = Names(stage)
    return json.dumps({"Resources": {
        "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": names.batch_dlq(batch)}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": names.batch_queue(batch), "VisibilityTimeout": 720,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]},
                              "maxReceiveCount": 5}}},
    }})


def make_batch_stack(batch: str, stage: str = STAGE, alarm: str | None = "OK") -> str:
    """The batch's stack (its two queues) and, unless `alarm` is None, its alarm in that state."""
    names = Names(stage)
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(StackName=names.batch_stack(batch), TemplateBody=stack_template(stage, batch))
    if alarm is not None:
        cw = boto3.client("cloudwatch", region_name=REGION)
        cw.put_metric_alarm(
            AlarmName=names.batch_alarm(batch), ComparisonOperator="LessThanOrEqualToThreshold",
            EvaluationPeriods=10, DatapointsToAlarm=10, Threshold=0, TreatMissingData="missing",
            Metrics=[{"Id": "total", "Expression": "SUM(METRICS())", "ReturnData": True}],
            AlarmActions=[f"arn:aws:sns:{REGION}:123456789012:{names.batch_delete_topic}"])
        cw.set_alarm_state(AlarmName=names.batch_alarm(batch), StateValue=alarm, StateReason="test")
    return names.batch_stack(batch)


def send(queue: str, n: int) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    for i in range(n):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"run-inference": i}))


def stack_status(batch: str, stage: str = STAGE) -> str | None:
    """The stack's status, None when DescribeStacks no longer knows it (deleted)."""
    cfn = boto3.client("cloudformation", region_name=REGION)
    try:
        return str(cfn.describe_stacks(StackName=Names(stage).batch_stack(batch))["Stacks"][0]["StackStatus"])
    except cfn.exceptions.ClientError:
        return None


def alarm_event(alarm: str, state: str = "ALARM") -> dict[str, Any]:
    """What SNS hands a subscribed Lambda when a CloudWatch alarm changes state."""
    message = {"AlarmName": alarm, "NewStateValue": state, "OldStateValue": "OK",
               "NewStateReason": "Threshold Crossed: 10 out of the last 10 datapoints",
               "StateChangeTime": dt.datetime.now(dt.UTC).isoformat(),
               "Region": "US West (Oregon)",
               "AlarmArn": f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{alarm}"}
    return {"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0",
        "EventSubscriptionArn": f"arn:aws:sns:{REGION}:123456789012:{NAMES.batch_delete_topic}:1",
        "Sns": {"Type": "Notification", "MessageId": str(uuid.uuid4()),
                "TopicArn": f"arn:aws:sns:{REGION}:123456789012:{NAMES.batch_delete_topic}",
                "Subject": f'ALARM: "{alarm}" in US West (Oregon)', "Message": json.dumps(message),
                "Timestamp": dt.datetime.now(dt.UTC).isoformat()}}]}


SCHEDULE_EVENT = {"version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
                  "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012",
                  "time": "2026-12-02T15:00:00Z",
                  "region": REGION, "resources": [f"arn:aws:events:{REGION}:123456789012:rule/x"],
                  "detail": {}}


def make_job_queue(stage: str = STAGE) -> str:
    """The stage's AWS Batch job queue, named by `/images/batch-queue-<stage>`; its ARN."""
    from tests.ops.helpers import make_job_queue as make

    return make(stage)


def submit_zip_job(queue: str, batch: str, status: str = "RUNNING") -> str:
    """A `process-batch` job as the ingest function submits it (TASK env), left in `status`.

    moto's Batch without Docker finishes a job as soon as it is submitted; a job still running is
    what a bulk upload being unzipped looks like, so the test sets the status moto holds."""
    from moto.batch import batch_backends
    from moto.batch.models import JobStatus
    from moto.core import DEFAULT_ACCOUNT_ID

    client = boto3.client("batch", region_name=REGION)
    job_def = client.register_job_definition(
        jobDefinitionName="animl-ingest-dev-batch-job", type="container",
        containerProperties={"image": "animl-ingest", "vcpus": 1, "memory": 5120})["jobDefinitionArn"]
    task = {"Bucket": f"animl-images-ingestion-{STAGE}", "Key": f"{batch}.zip", "errors": [],
            "FileName": f"{batch}.zip", "batchId": batch}
    job_id = str(client.submit_job(jobName="process-batch", jobQueue=queue, jobDefinition=job_def,
                                   containerOverrides={"environment": [
                                       {"name": "TASK", "value": json.dumps(task)}]})["jobId"])
    batch_backends[DEFAULT_ACCOUNT_ID][REGION]._jobs[job_id].status = JobStatus[status]
    return job_id
