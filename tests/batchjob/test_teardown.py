"""The teardown function's three entry points against moto and the animl-api stand-in."""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from animl_ingest_cli.batchjob import teardown
from animl_ingest_cli.config import REGION
from animl_ingest_cli.errors import InputError
from tests.batchjob.batchstacks import (
    NAMES,
    SCHEDULE_EVENT,
    STAGE,
    alarm_event,
    make_batch_stack,
    new_batch,
    send,
    stack_status,
)


@pytest.fixture
def stage(aws_mock: None, api_stub: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The dev stage in moto, its API URL parameter naming the stand-in; returns the stand-in."""
    monkeypatch.setenv("STAGE", STAGE)
    monkeypatch.setenv("API_KEY", api_stub.api_key)
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name=NAMES.api_url_param, Value=api_stub.url, Type="String")
    teardown.reset()
    yield api_stub
    teardown.reset()


def later(monkeypatch: pytest.MonkeyPatch, hours: float) -> None:
    """Make the teardown's clock run `hours` ahead (moto's stacks are created now)."""
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
    monkeypatch.setattr(teardown, "_now", lambda: ahead)


def updates(stub: Any) -> list[dict[str, Any]]:
    return [r.input for r in stub.calls("updateBatch")]


def batch_errors(stub: Any) -> list[dict[str, Any]]:
    return [r.input for r in stub.calls("createBatchError")]


def queue_exists(name: str) -> bool:
    try:
        boto3.client("sqs", region_name=REGION).get_queue_url(QueueName=name)
    except ClientError:
        return False
    return True


def test_the_alarm_deletes_the_stack_then_records_processing_end(stage: Any) -> None:
    batch = new_batch()
    make_batch_stack(batch, alarm="ALARM")
    result = teardown.handler(alarm_event(NAMES.batch_alarm(batch)))
    assert stack_status(batch) is None
    assert not queue_exists(NAMES.batch_queue(batch)) and not queue_exists(NAMES.batch_dlq(batch))
    [update] = updates(stage)
    assert update["_id"] == batch and update["processingEnd"].endswith("Z")
    assert result["results"][0]["action"] == teardown.DELETED
    assert stage.catalog.batches()[0]["fields"]["processingEnd"] == update["processingEnd"]
    assert not batch_errors(stage)


def test_a_second_delivery_does_nothing(stage: Any) -> None:
    batch = new_batch()
    make_batch_stack(batch, alarm="ALARM")
    event = alarm_event(NAMES.batch_alarm(batch))
    teardown.handler(event)
    before = len(stage.requests)
    result = teardown.handler(event)
    assert result["results"][0]["action"] == teardown.GONE
    assert len(stage.requests) == before  # no updateBatch, no createBatchError
    assert stack_status(batch) is None


def test_alarms_that_are_not_this_stages_batches_are_ignored(stage: Any) -> None:
    batch = new_batch()
    make_batch_stack(batch)
    foreign = [f"animl-ingest-prod-{batch}-sqs-empty", "inferenceQueue-dev-sqs-empty",
               f"animl-ingest-dev-{batch}-other-alarm", "animl-ingest-dev-batch-not-a-uuid-sqs-empty"]
    for alarm in foreign:
        assert teardown.handler(alarm_event(alarm))["results"] == []
    # the alarm going back to OK is not a reason to delete either
    assert teardown.handler(alarm_event(NAMES.batch_alarm(batch), state="OK"))["results"] == []
    assert stack_status(batch) == "CREATE_COMPLETE"
    assert not stage.requests


def test_a_stop_request_deletes_and_records_processing_end(stage: Any) -> None:
    batch = new_batch()
    make_batch_stack(batch)  # alarm OK: stopBatch does not wait for the queues
    send(NAMES.batch_queue(batch), 3)
    result = teardown.handler({"batch": batch})
    assert result["results"][0]["action"] == teardown.DELETED
    assert stack_status(batch) is None
    assert [u["_id"] for u in updates(stage)] == [batch]


def test_a_stop_request_for_a_batch_without_a_stack_still_ends_it(stage: Any) -> None:
    batch = new_batch()  # e.g. the job failed before it made the stack
    result = teardown.handler({"batch": batch})
    assert result["results"][0]["action"] == teardown.GONE
    assert [set(u) for u in updates(stage)] == [{"_id", "processingEnd"}]


def test_bad_events_are_refused(stage: Any) -> None:
    with pytest.raises(InputError, match="unknown event"):
        teardown.handler({"hello": "world"})
    with pytest.raises(InputError, match="not a batch id"):
        teardown.handler({"batch": "../../animl-ingest-dev"})
    assert not stage.requests


def fail_delete_stack(code: str = "AccessDenied") -> None:
    """DeleteStack answers `code` on the client the teardown uses."""
    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": code, "Message": "not allowed"}}, "DeleteStack")

    teardown._context().client("cloudformation").meta.events.register(
        "before-call.cloudformation.DeleteStack", refuse)


def test_a_failed_delete_is_reported_and_the_invocation_fails(stage: Any) -> None:
    batch = new_batch()
    make_batch_stack(batch, alarm="ALARM")
    fail_delete_stack()
    with pytest.raises(teardown.TeardownFailed, match="AccessDenied"):
        teardown.handler(alarm_event(NAMES.batch_alarm(batch)))
    [error] = batch_errors(stage)
    assert error["batch"] == batch and "DeleteStack" in error["error"]
    assert not updates(stage)  # processingEnd is not claimed for a stack that is still there
    assert stack_status(batch) == "CREATE_COMPLETE"


def test_an_api_failure_after_the_delete_is_reported(stage: Any) -> None:
    batch = new_batch()
    make_batch_stack(batch, alarm="ALARM")
    stage.fail(403, times=1, mutation="updateBatch")
    with pytest.raises(teardown.TeardownFailed, match="Forbidden"):
        teardown.handler({"batch": batch})
    assert stack_status(batch) is None
    [error] = batch_errors(stage)
    assert "Forbidden" in error["error"]


# --- the hourly schedule --------------------------------------------------------------------------

def test_the_sweep_deletes_old_idle_stacks_and_keeps_the_rest(stage: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    idle = new_batch()
    make_batch_stack(idle, alarm="INSUFFICIENT_DATA")
    fired = new_batch()
    make_batch_stack(fired, alarm="ALARM")  # the SNS delivery was lost
    no_alarm = new_batch()
    make_batch_stack(no_alarm, alarm=None)  # the Node sweep crashed on this one
    busy = new_batch()
    make_batch_stack(busy, alarm="OK")
    send(NAMES.batch_queue(busy), 2)
    ok_alarm = new_batch()
    make_batch_stack(ok_alarm, alarm="OK")  # empty now, but not yet for 10 minutes
    later(monkeypatch, 25)
    result = teardown.handler(SCHEDULE_EVENT)
    decisions = {r["batch"]: r["decision"] for r in result["results"]}
    assert decisions[idle] == decisions[fired] == decisions[no_alarm] == teardown.DELETED
    assert decisions[busy].startswith("kept: 2 message(s)")
    assert decisions[ok_alarm] == "kept: alarm OK"
    assert {b: stack_status(b) for b in (idle, fired, no_alarm, busy, ok_alarm)} == {
        idle: None, fired: None, no_alarm: None, busy: "CREATE_COMPLETE", ok_alarm: "CREATE_COMPLETE"}
    assert sorted(u["_id"] for u in updates(stage)) == sorted([idle, fired, no_alarm])
    assert all("processingEnd" in u for u in updates(stage))


def test_the_sweep_leaves_young_stacks_alone(stage: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    batch = new_batch()
    make_batch_stack(batch, alarm="INSUFFICIENT_DATA")
    later(monkeypatch, 23)
    assert teardown.handler(SCHEDULE_EVENT)["results"] == []
    assert stack_status(batch) == "CREATE_COMPLETE"


def test_a_batch_stuck_on_its_dlq_is_reported_once_and_kept(stage: Any, caplog: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    batch = new_batch()
    make_batch_stack(batch, alarm="OK")  # the DLQ's messages keep the sum above 0
    send(NAMES.batch_dlq(batch), 4)
    later(monkeypatch, 30)
    first = teardown.handler(SCHEDULE_EVENT)["results"][0]
    assert first["decision"] == "dead-letters" and first["dead"] == 4 and first["reported"]
    [error] = batch_errors(stage)
    assert error["batch"] == batch
    text = error["error"]
    assert "4 inference message(s) are dead in " + NAMES.batch_dlq(batch) in text
    assert "aws sqs start-message-move-task --source-arn arn:aws:sqs:" in text
    assert f"--destination-arn arn:aws:sqs:{REGION}:123456789012:{NAMES.batch_queue(batch)}" in text
    assert f"animl-ingest batches teardown {batch} --stage dev --discard-dead-letters" in text
    # The next hourly run logs it again but does not send a second createBatchError.
    caplog.clear()
    teardown.reset()  # a cold start: "once" must not live in memory
    second = teardown.handler(SCHEDULE_EVENT)["results"][0]
    assert second["decision"] == "dead-letters" and not second["reported"]
    assert len(batch_errors(stage)) == 1
    assert any("are dead in" in r.getMessage() for r in caplog.records)
    assert stack_status(batch) == "CREATE_COMPLETE" and not updates(stage)


def test_a_failure_in_the_sweep_is_reported_and_the_others_go_on(stage: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = new_batch(), new_batch()
    make_batch_stack(first, alarm="INSUFFICIENT_DATA")
    make_batch_stack(second, alarm="INSUFFICIENT_DATA")
    later(monkeypatch, 25)
    fail_delete_stack()
    with pytest.raises(teardown.TeardownFailed, match="2 batch stack"):
        teardown.handler(SCHEDULE_EVENT)
    assert sorted(e["batch"] for e in batch_errors(stage)) == sorted([first, second])


def test_a_delivery_during_the_deletion_only_records_processing_end(stage: Any) -> None:
    """moto deletes a stack at once; CloudFormation takes minutes. A delivery that arrives meanwhile
    (the alarm's, after stopBatch's) must not delete again, and records processingEnd (so a retry
    after an API failure still does)."""
    from moto.cloudformation.models import cloudformation_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    batch = new_batch()
    make_batch_stack(batch, alarm="ALARM")
    backend = cloudformation_backends[DEFAULT_ACCOUNT_ID][REGION]
    [stack] = [s for s in backend.stacks.values() if s.name == NAMES.batch_stack(batch)]
    stack.status = "DELETE_IN_PROGRESS"
    deletes: list[Any] = []
    teardown._context().client("cloudformation").meta.events.register(
        "before-call.cloudformation.DeleteStack", lambda **kw: deletes.append(kw))
    result = teardown.handler(alarm_event(NAMES.batch_alarm(batch)))
    assert result["results"][0]["action"] == teardown.DELETING
    assert not deletes
    assert [u["_id"] for u in updates(stage)] == [batch]
