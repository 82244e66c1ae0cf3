"""Queues of a stage, and drain: SQS counts, DLQs apart, Batch jobs and batch stacks waited on."""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest

from animl_ingest_cli.context import open_stage
from animl_ingest_cli.errors import InputError
from animl_ingest_cli.ops import queues as q
from tests.ops.helpers import QUEUE_UUID as UUID
from tests.ops.helpers import make_job_queue, make_queues


@pytest.fixture
def sqs(aws_mock: None):
    return boto3.client("sqs")


def test_list_finds_every_animl_queue_with_counts_and_dlqs(sqs) -> None:
    urls = make_queues(sqs)
    sqs.send_message(QueueUrl=urls["taskQueue-dev"], MessageBody="a")
    sqs.send_message(QueueUrl=urls["taskQueue-dev"], MessageBody="b")
    sqs.receive_message(QueueUrl=urls["taskQueue-dev"], MaxNumberOfMessages=1)
    sqs.send_message(QueueUrl=urls["inferenceQueue-dev"], MessageBody="c", DelaySeconds=60)
    sqs.send_message(QueueUrl=urls["taskDLQ-dev"], MessageBody="dead")
    found = {x.name: x for x in q.list_queues(open_stage("dev"))}
    assert set(found) == set(urls)
    assert (found["taskQueue-dev"].visible, found["taskQueue-dev"].in_flight) == (1, 1)
    assert found["inferenceQueue-dev"].delayed == 1
    assert {n for n, x in found.items() if x.dlq} == {"inferenceDLQ-dev", "taskDLQ-dev",
                                                      f"animl-ingest-dev-batch-{UUID}-dlq"}
    assert found["taskDLQ-dev"].to_dict() == {"name": "taskDLQ-dev", "url": urls["taskDLQ-dev"],
                                              "visible": 1, "in_flight": 0, "delayed": 0, "dlq": True}


def test_a_queue_is_a_dlq_when_named_by_a_redrive_policy(sqs) -> None:
    target = sqs.create_queue(QueueName="taskQueue-dev-parking")["QueueUrl"]  # no "dlq" in its name
    arn = sqs.get_queue_attributes(QueueUrl=target, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.create_queue(QueueName="taskQueue-dev", Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "1"})})
    found = {x.name: x.dlq for x in q.list_queues(open_stage("dev"))}
    assert found == {"taskQueue-dev": False, "taskQueue-dev-parking": True}


def test_listing_is_paginated(sqs, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(7):
        sqs.create_queue(QueueName=f"animl-ingest-dev-batch-{i}")
    calls = []
    real = q.pages

    def counting(what, paginator, **kw):
        kw["PaginationConfig"] = {"PageSize": 2}
        for page in real(what, paginator, **kw):
            calls.append(what)
            yield page

    monkeypatch.setattr(q, "pages", counting)
    assert len(q.list_queues(open_stage("dev"))) == 7
    assert calls.count("SQS ListQueues") >= 4 + 4  # 4 pages for the batch prefix, one per other prefix


def test_drain_waits_until_a_consumer_empties_the_work_queues(sqs) -> None:
    urls = make_queues(sqs)
    for i in range(5):
        sqs.send_message(QueueUrl=urls["inferenceQueue-dev"], MessageBody=str(i))
    sqs.send_message(QueueUrl=urls["inferenceDLQ-dev"], MessageBody="dead")  # never waited on
    ctx = open_stage("dev")

    first_poll = threading.Event()

    def consumer() -> None:
        first_poll.wait(10)
        while True:
            got = sqs.receive_message(QueueUrl=urls["inferenceQueue-dev"], MaxNumberOfMessages=10)
            for msg in got.get("Messages", []):
                sqs.delete_message(QueueUrl=urls["inferenceQueue-dev"], ReceiptHandle=msg["ReceiptHandle"])
            if not got.get("Messages"):
                return

    polls: list[tuple[bool, int]] = []

    def on_poll(snap: q.Snapshot, streak: int) -> None:
        polls.append((snap.idle, streak))
        first_poll.set()

    worker = threading.Thread(target=consumer)
    worker.start()
    result = q.drain(ctx, timeout=20, interval=0.05, stable=3, on_poll=on_poll)
    worker.join()
    assert result.drained
    assert polls[0] == (False, 0) and polls[-3:] == [(True, 1), (True, 2), (True, 3)]
    assert [x.name for x in result.last.dead_letters] == ["inferenceDLQ-dev"]


def test_drain_times_out(sqs) -> None:
    urls = make_queues(sqs)
    sqs.send_message(QueueUrl=urls["taskQueue-dev"], MessageBody="stuck")
    ctx = open_stage("dev")
    now = [0.0]  # a clock that only the waits move: a loaded machine cannot change the poll count

    def sleep(seconds: float) -> None:
        now[0] += seconds

    result = q.drain(ctx, timeout=0.3, interval=0.1, stable=2, sleep=sleep, clock=lambda: now[0])
    assert not result.drained and result.polls >= 3
    assert [x.name for x in result.last.busy_queues] == ["taskQueue-dev"]


def test_drain_waits_for_a_running_batch_job(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import mock_aws

    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "2")  # the job runs ~2 s, then stops
    with mock_aws(config={"batch": {"use_docker": False}}):
        batch = boto3.client("batch")
        queue_arn = make_job_queue("dev")
        job_def = batch.register_job_definition(jobDefinitionName="unzip", type="container",
                                                containerProperties={"image": "unzip", "vcpus": 1,
                                                                     "memory": 128})
        submitter = threading.Thread(target=lambda: batch.submit_job(
            jobName="unzip-batch", jobQueue=queue_arn, jobDefinition=job_def["jobDefinitionArn"]))
        submitter.start()
        ctx = open_stage("dev")
        for client in ("ssm", "sqs", "batch", "cloudformation"):
            ctx.client(client)  # made before the job starts: the job must outlive drain's first poll
        while not batch.list_jobs(jobQueue=queue_arn, jobStatus="SUBMITTED")["jobSummaryList"]:
            time.sleep(0.02)
        seen: list[dict | None] = []
        result = q.drain(ctx, timeout=20, interval=0.1, stable=2, allow_empty=True,  # no SQS queue here
                         on_poll=lambda snap, streak: seen.append(snap.jobs.items))
        submitter.join()
        assert result.drained
        assert seen[0] == {"SUBMITTED": 1}  # the job was seen and waited on
        assert seen[-1] == {}


def test_drain_waits_for_batch_stacks_until_they_are_deleted(aws_mock: None) -> None:
    cfn = boto3.client("cloudformation")
    name = f"animl-ingest-dev-batch-{UUID}"
    template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": name}}}}
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))
    cfn.create_stack(StackName="animl-ingest-prod-batch-x", TemplateBody=json.dumps(
        {"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}))
    ctx = open_stage("dev")
    snap = q.snapshot(ctx, None)
    assert snap.stacks.items == {name: "CREATE_COMPLETE"} and not snap.idle
    assert [x.name for x in snap.queues] == [name]  # the stack's queue is listed too
    seen: list[dict | None] = []

    def on_poll(snap: q.Snapshot, streak: int) -> None:
        seen.append(snap.stacks.items)
        if len(seen) == 2:  # the bulk upload finishes: its stack (and queue) goes
            cfn.delete_stack(StackName=name)

    result = q.drain(ctx, timeout=20, interval=0.05, stable=2, on_poll=on_poll)
    assert result.drained and result.last.stacks.items == {}
    assert seen[:2] == [{name: "CREATE_COMPLETE"}] * 2 and len(seen) == 4


def test_unseen_jobs_and_stacks_are_said_so(aws_mock: None) -> None:
    snap = q.snapshot(open_stage("dev"), None)
    assert snap.jobs.items is None and "batch-queue-dev" in (snap.jobs.note or "")
    assert snap.idle


def test_local_stage_has_no_queues_and_drains_at_once(tmp_path) -> None:
    ctx = open_stage("local")
    assert q.list_queues(ctx) == []
    result = q.drain(ctx, interval=60, stable=3)
    assert result.drained and result.polls == 1


def test_bad_drain_options(tmp_path) -> None:
    with pytest.raises(InputError):
        q.drain(open_stage("local"), stable=0)


def test_a_queue_deleted_while_listing_is_left_out(sqs) -> None:
    gone = sqs.create_queue(QueueName=f"animl-ingest-dev-batch-{UUID}")["QueueUrl"]
    sqs.create_queue(QueueName="taskQueue-dev")
    ctx = open_stage("dev")

    def stack_deleted(params, **_) -> None:
        if params.get("QueueUrl") == gone:
            sqs.delete_queue(QueueUrl=gone)  # its bulk upload finished: the stack took it

    ctx.client("sqs").meta.events.register("before-parameter-build.sqs.GetQueueAttributes", stack_deleted)
    assert [x.name for x in q.list_queues(ctx)] == ["taskQueue-dev"]
