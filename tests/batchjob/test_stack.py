"""The per-batch stack: names, the template (cfn-lint), creation against moto, failure detection."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from animl_ingest_cli.batchjob import stack as st
from tests.batchjob.batchstacks import inference_function

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS")

STAGE = "dev"
BATCH = "batch-0d6c4d5e-1b8a-4c4e-9f55-2a1b3c4d5e6f"
NAME = f"animl-ingest-{STAGE}-{BATCH}"


def test_stack_names_are_the_ones_animl_api_hard_codes(aws_mock: None) -> None:
    """What the template makes is named as config.Names says (the names the teardown looks for)."""
    from animl_ingest_cli.config import Names

    names = Names(STAGE)
    assert st.stack_name(STAGE, BATCH) == NAME == names.batch_stack(BATCH)
    with pytest.raises(ValueError):
        st.stack_name(STAGE, "batch-../../x")
    inference_function()
    cfn = boto3.client("cloudformation", region_name="us-west-2")
    st.ensure_stack(cfn, STAGE, BATCH, "b", BATCH + ".zip", poll=0.01)
    queues = boto3.client("sqs", region_name="us-west-2").list_queues()["QueueUrls"]
    assert sorted(q.rsplit("/", 1)[1] for q in queues) == [names.batch_queue(BATCH), names.batch_dlq(BATCH)]
    alarm = st.template(STAGE)["Resources"]["PredSQSAlarm"]["Properties"]["AlarmName"]
    assert alarm == {"Fn::Join": ["", [{"Ref": "AWS::StackName"}, "-sqs-empty"]]}
    assert names.batch_alarm(BATCH) == NAME + "-sqs-empty"
    assert st.inference_function_name("prod") == "animl-api-prod-batchinference"


def test_template_passes_cfn_lint() -> None:
    from cfnlint.api import ManualArgs, lint

    assert lint(st.template_body(STAGE), config=ManualArgs(regions=["us-west-2"])) == []


def test_alarm_sums_the_queue_and_its_dlq() -> None:
    alarm = st.template(STAGE)["Resources"]["PredSQSAlarm"]["Properties"]
    stats = [m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m]
    seen = {(s["Metric"]["MetricName"], s["Metric"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0])
            for s in stats}
    assert seen == {(m, q) for m in st.QUEUE_METRICS for q in ("PredQueue", "PredDLQ")}
    assert all(s["Period"] == 60 and s["Stat"] == "Maximum" for s in stats)
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"], alarm["Threshold"]) == (10, 10, 0)
    assert alarm["ComparisonOperator"] == "LessThanOrEqualToThreshold"
    assert alarm["AlarmActions"] == [{"Fn::Sub": "arn:${AWS::Partition}:sns:${AWS::Region}:"
                                                 "${AWS::AccountId}:animl-ingest-dev-delete"}]


def test_stack_is_created_once_then_reused(aws_mock: None) -> None:
    inference_function()
    cfn = boto3.client("cloudformation", region_name="us-west-2")
    first = st.ensure_stack(cfn, STAGE, BATCH, "animl-images-ingestion-dev", BATCH + ".zip", poll=0.01)
    assert first.created and first.status == "CREATE_COMPLETE"
    again = st.ensure_stack(cfn, STAGE, BATCH, "animl-images-ingestion-dev", BATCH + ".zip", poll=0.01)
    assert not again.created
    assert len(cfn.describe_stacks()["Stacks"]) == 1
    (params,) = [s["Parameters"] for s in cfn.describe_stacks(StackName=NAME)["Stacks"]]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in params} == {
        "BatchID": BATCH, "S3URL": f"s3://animl-images-ingestion-dev/{BATCH}.zip"}
    sqs = boto3.client("sqs", region_name="us-west-2")
    url = sqs.get_queue_url(QueueName=NAME)["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName=NAME + "-dlq")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert attrs["VisibilityTimeout"] == "720"
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {
        "animl:batch": BATCH, "animl:zip": f"s3://animl-images-ingestion-dev/{BATCH}.zip"}
    assert json.loads(attrs["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}
    (mapping,) = boto3.client("lambda", region_name="us-west-2").list_event_source_mappings()[
        "EventSourceMappings"]
    assert mapping["EventSourceArn"] == attrs["QueueArn"] and mapping["BatchSize"] == 10
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_a_stack_whose_resource_fails_is_not_waited_on_for_ever(aws_mock: None) -> None:
    """No batchinference function: moto fails the mapping and leaves the stack CREATE_IN_PROGRESS."""
    cfn = boto3.client("cloudformation", region_name="us-west-2")
    with pytest.raises(st.StackFailed, match=r"still CREATE_IN_PROGRESS after .*Function not found"):
        st.ensure_stack(cfn, STAGE, BATCH, "b", BATCH + ".zip", timeout=0.3, poll=0.05)


class RollingBack:
    """CloudFormation as seen through a fault: the stack's status goes where moto never takes it
    (moto has no rollback), and a failed resource is recorded in its events."""

    def __init__(self, cfn: Any, statuses: list[str]) -> None:
        self.cfn, self.statuses = cfn, statuses

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cfn, name)

    def describe_stacks(self, **kw: Any) -> Any:
        r = self.cfn.describe_stacks(**kw)
        if self.statuses and len(self.statuses) > 1:
            r["Stacks"][0]["StackStatus"] = self.statuses.pop(0)
        elif self.statuses:
            r["Stacks"][0]["StackStatus"] = self.statuses[0]
        return r

    def describe_stack_events(self, **kw: Any) -> Any:
        return {"StackEvents": [
            {"LogicalResourceId": NAME, "ResourceStatus": "ROLLBACK_IN_PROGRESS"},
            {"LogicalResourceId": "PredQueue", "ResourceStatus": "CREATE_FAILED",
             "ResourceStatusReason": "Resource handler returned message: AccessDenied"}]}


@pytest.mark.parametrize("final", ["ROLLBACK_COMPLETE", "ROLLBACK_IN_PROGRESS", "CREATE_FAILED",
                                   "ROLLBACK_FAILED", "DELETE_IN_PROGRESS"])
def test_a_rolled_back_stack_fails_at_once(aws_mock: None, final: str) -> None:
    inference_function()
    cfn = RollingBack(boto3.client("cloudformation", region_name="us-west-2"),
                      ["CREATE_IN_PROGRESS", "CREATE_IN_PROGRESS", final])
    slept: list[float] = []
    with pytest.raises(st.StackFailed) as err:
        st.ensure_stack(cfn, STAGE, BATCH, "b", BATCH + ".zip", poll=5, sleep=slept.append)
    reason = "PredQueue: Resource handler returned message: AccessDenied"
    assert err.value.message == f"stack {NAME} {final}: {reason}"
    assert slept == [5, 5]  # noticed on the first poll that saw it, not after a timeout


def test_a_stack_deleted_while_waiting_is_a_failure(aws_mock: None) -> None:
    inference_function()
    real = boto3.client("cloudformation", region_name="us-west-2")
    cfn = RollingBack(real, ["CREATE_IN_PROGRESS"])

    def delete_then_sleep(_s: float) -> None:
        real.delete_stack(StackName=NAME)
        cfn.statuses.clear()

    with pytest.raises(st.StackFailed, match="DELETE_COMPLETE"):
        st.ensure_stack(cfn, STAGE, BATCH, "b", BATCH + ".zip", poll=1, sleep=delete_then_sleep)
