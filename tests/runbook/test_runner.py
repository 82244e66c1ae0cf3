"""The run itself, in-process against moto: what the tool does and checks, what it asks, where it
stops, what it saves, and what a resumed run does again (nothing finished)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from animl_ingest_cli.context import open_stage
from animl_ingest_cli.errors import InputError
from animl_ingest_cli.runbook import runner, state
from animl_ingest_cli.runbook.runner import RunStopped
from animl_ingest_cli.runbook.steps import STEP_NAMES
from tests.awsfixtures import bucket
from tests.ops.helpers import keys, make_job_queue
from tests.runbook.helpers import (
    ScriptedOperator,
    audit_entries,
    invalidations,
    maintenance_value,
    make_world,
)

Y = True
N = False


@pytest.fixture
def world(aws_mock: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("ANIML_MAINTENANCE_WAIT_SECONDS", "0")
    return {"prod": make_world("prod"), "dev": make_world("dev")}


def deploy(stage: str, answers: list[Any], given: dict[str, Any] | None = None,
           **kw: Any) -> tuple[state.RunState | RunStopped, ScriptedOperator]:
    op = ScriptedOperator(list(answers))
    given = {"drain_interval": 0, "drain_stable": 2, **(given or {})}
    try:
        run: state.RunState | RunStopped = runner.prod_deploy(open_stage(stage), op, given,
                                                              sleep=lambda s: None, **kw)
    except RunStopped as exc:
        run = exc
    assert not op.answers, f"answers left over: {op.answers} (asked {op.asked})"
    return run, op


def states() -> dict[str, str]:
    return {s["name"]: s["state"] for s in runner.status("prod")["steps"]}


def test_a_full_prod_run_asks_what_only_a_person_can_do_and_does_the_rest(world) -> None:
    parked = keys(world["prod"]["s3"], bucket("parkinglot", "prod"))
    run, op = deploy("prod", [Y, "prod", Y, "prod", Y, Y, Y, "prod", "prod", "prod"],
                     {"distribution_id": world["prod"]["distribution"]})
    assert isinstance(run, state.RunState) and run.complete and run.finished
    assert op.asked == [
        "Is frontend-flag-on done?", "type the stage name: frontend-maintenance-on: invalidate-cache",
        "Have you checked that no bulk upload is half-way?",  # no /images/batch-queue-prod parameter
        "type the stage name: ingest-maintenance-on: ingest-maintenance-on",
        "Is backup-db done?", "Is deploy-api done?", "Is frontend-flag-off done?",
        "type the stage name: maintenance-off: ingest-maintenance-off",
        "type the stage name: maintenance-off: invalidate-cache", "type the stage name: unpark: unpark"]
    assert set(states().values()) == {"done"}
    assert maintenance_value("prod") == "false" and invalidations(world["prod"]) == 2
    assert keys(world["prod"]["s3"], bucket("parkinglot", "prod")) == {}
    assert keys(world["prod"]["s3"], bucket("ingestion", "prod")) == parked
    assert maintenance_value("dev") is None  # nothing else touched
    report = runner.status("prod")
    assert report["complete"] and report["run_id"] == run.run_id
    step1 = report["steps"][0]
    assert step1["parts"]["frontend-flag-on"]["by"] == "operator"
    assert step1["parts"]["invalidate-cache"]["by"] == "tool"
    assert step1["parts"]["invalidate-cache"]["data"]["status"].lower() == "completed"
    assert "unseen" not in json.dumps(report) and "checked by the operator" in report["steps"][1]["detail"]
    log = audit_entries()
    assert [e.get("phase") for e in log if "phase" in e] == ["start", "complete"]
    assert {e["step"] for e in log if e.get("result") == "done" and "part" not in e} == set(STEP_NAMES)
    assert all(e["run"] == run.run_id and e["stage"] == "prod" for e in log)
    assert [e["command"] for e in audit_entries(None) if e["command"].startswith("maintenance")] == [
        "maintenance on", "maintenance off"]


def test_local_stage_skips_what_it_does_not_have(world, monkeypatch: pytest.MonkeyPatch) -> None:
    run, op = deploy("local", [])
    assert isinstance(run, state.RunState) and op.asked == []
    assert {s.name: s.state for s in run.steps} == {
        "frontend-maintenance-on": "skipped", "no-bulk-upload-in-flight": "done",
        "ingest-maintenance-on": "done", "drain-queues": "done", "backup-db": "skipped",
        "deploy-api": "skipped", "maintenance-off": "done", "unpark": "done"}


def test_a_live_batch_stack_stops_the_run_before_maintenance_then_resume_goes_on(world) -> None:
    make_job_queue("prod")
    cfn = boto3.client("cloudformation")
    stack = "animl-ingest-prod-batch-7d3c1c2e-52a4-4e8e-9d4b-3f1f5e0c2a10"
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(
        {"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": stack}}}}))
    run, op = deploy("prod", [Y, Y], {"distribution_id": ""})
    assert isinstance(run, RunStopped) and run.exit_code == 3
    assert f"stack {stack} (CREATE_COMPLETE)" in run.message
    assert "has not turned ingest maintenance on" in run.message and "--resume" in run.message
    assert maintenance_value("prod") is None
    assert states()["frontend-maintenance-on"] == "done" and states()["no-bulk-upload-in-flight"] == "failed"
    assert not any(e.get("result") == "done" and e.get("step") == "no-bulk-upload-in-flight"
                   for e in audit_entries())

    # the upload finishes: its stack goes; the batch queue is visible and idle, so nothing is asked
    cfn.delete_stack(StackName=stack)
    run, op = deploy("prod", ["prod", Y, Y, Y, "prod", Y, "prod"], resume=True)
    assert isinstance(run, state.RunState) and run.complete, run
    assert op.asked[:2] == ["type the stage name: ingest-maintenance-on: ingest-maintenance-on",
                            "Is backup-db done?"]  # steps 1 and 2 are not asked again
    assert "no Batch job active, no batch stack" in runner.status("prod")["steps"][1]["detail"]


def test_no_stops_with_maintenance_on_and_resume_redoes_nothing(world) -> None:
    given = {"distribution_id": world["dev"]["distribution"]}
    run, op = deploy("dev", [Y, Y, Y, N], given)  # frontend, check, backup by hand, no to deploy-api
    assert isinstance(run, RunStopped) and run.exit_code == 3
    assert "stopped at step 6 deploy-api: deploy-api not confirmed" in run.message
    assert "Ingest maintenance stays on" in run.message
    report = {s["name"]: s for s in runner.status("dev")["steps"]}
    assert [s["state"] for s in report.values()] == ["done"] * 5 + ["pending"] * 3
    assert report["deploy-api"]["detail"] == "deploy-api: not confirmed (the operator answered no)"
    assert maintenance_value("dev") == "true" and invalidations(world["dev"]) == 1

    with pytest.raises(InputError, match="unfinished run of dev .* step 6 deploy-api .*--resume"):
        runner.prod_deploy(open_stage("dev"), ScriptedOperator([]), {})
    run, op = deploy("dev", [Y, Y], resume=True)  # deploy-api, frontend-flag-off; options kept
    assert isinstance(run, state.RunState) and run.complete
    assert op.asked == ["Is deploy-api done?", "Is frontend-flag-off done?"]
    assert maintenance_value("dev") == "false" and invalidations(world["dev"]) == 2
    phases = [e["phase"] for e in audit_entries() if "phase" in e]
    assert phases == ["start", "resume", "complete"]
    assert len([e for e in audit_entries(None) if e["command"] == "maintenance on"]) == 1


def test_a_failed_part_is_redone_alone_with_a_corrected_option(world) -> None:
    run, op = deploy("prod", [Y, "prod"], {"distribution_id": "E0WRONGDIST"})
    assert isinstance(run, RunStopped)
    assert "step 1 frontend-maintenance-on failed: CloudFront CreateInvalidation: NoSuchDistribution" \
        in run.message
    rec = state.load("prod", STEP_NAMES).step("frontend-maintenance-on")
    assert rec.state == "failed" and list(rec.parts) == ["frontend-flag-on"]
    run, op = deploy("prod", ["prod", N], {"distribution_id": world["prod"]["distribution"]}, resume=True)
    assert op.asked[0] == "type the stage name: frontend-maintenance-on: invalidate-cache"  # not the deploy
    assert states()["frontend-maintenance-on"] == "done"
    assert state.load("prod", STEP_NAMES).options["distribution_id"] == world["prod"]["distribution"]


def test_a_wrong_stage_name_changes_nothing(world) -> None:
    run, op = deploy("prod", [Y, Y, Y, "dev"])  # the frontend, the cache by hand, the unseen jobs
    assert isinstance(run, RunStopped) and "ingest-maintenance-on not confirmed" in run.message
    assert maintenance_value("prod") is None and states()["ingest-maintenance-on"] == "pending"


def test_ctrl_c_saves_the_state_and_resume_finishes(world) -> None:
    sqs = world["dev"]["sqs"]
    sqs.send_message(QueueUrl=world["dev"]["queues"]["taskQueue"], MessageBody="work")
    op = ScriptedOperator([Y, Y, Y])
    op.on_poll_hook = lambda snap: (_ for _ in ()).throw(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        runner.prod_deploy(open_stage("dev"), op, {"drain_interval": 0}, sleep=lambda s: None)
    rec = state.load("dev", STEP_NAMES).step("drain-queues")
    assert (rec.state, rec.detail) == ("failed", "drain-queues: interrupted (Ctrl-C)")
    assert maintenance_value("dev") == "true"
    assert audit_entries()[-1]["result"] == "interrupted"

    sqs.purge_queue(QueueUrl=world["dev"]["queues"]["taskQueue"])
    op = ScriptedOperator([Y, KeyboardInterrupt()])  # backup by hand, then Ctrl-C at deploy-api
    with pytest.raises(KeyboardInterrupt):
        runner.prod_deploy(open_stage("dev"), op, {"drain_stable": 1}, resume=True, sleep=lambda s: None)
    rec = state.load("dev", STEP_NAMES).step("deploy-api")
    assert (rec.state, rec.detail) == ("pending", "deploy-api: interrupted (Ctrl-C)")
    run, op = deploy("dev", [Y, Y, Y], resume=True)  # deploy-api, frontend-flag-off, the cache by hand
    assert isinstance(run, state.RunState) and run.complete


def test_unpark_failure_fails_the_last_step(world) -> None:
    s3 = world["dev"]["s3"]
    s3.put_object(Bucket=bucket("ingestion", "dev"), Key="parked during deploy.JPG", Body=b"other bytes")
    run, op = deploy("dev", [Y] * 7)
    assert isinstance(run, RunStopped)
    assert "step 8 unpark failed: 1 object(s) not moved (each left in the parking lot)" in run.message
    assert "Ingest maintenance is off again" in run.message
    assert keys(s3, bucket("parkinglot", "dev")) != {}


def test_an_object_parked_during_the_unpark_fails_the_check(world) -> None:
    """A function that does not obey the flag parks while unpark runs: the step is not done."""
    s3 = world["dev"]["s3"]
    op = ScriptedOperator([Y] * 7)
    lot = bucket("parkinglot", "dev")
    op.on_outcome_hook = lambda o: s3.put_object(Bucket=lot, Key="late.jpg", Body=b"x")
    with pytest.raises(RunStopped, match="the parking lot still holds objects after the unpark .'late.jpg'"):
        runner.prod_deploy(open_stage("dev"), op, {"drain_interval": 0}, sleep=lambda s: None)
    assert runner.status("dev")["steps"][7]["state"] == "failed"


def test_resume_and_restart_rules(world) -> None:
    with pytest.raises(InputError, match="no saved runbook run for prod: nothing to resume"):
        runner.prod_deploy(open_stage("prod"), ScriptedOperator([]), {}, resume=True)
    with pytest.raises(InputError, match="exclude each other"):
        runner.prepare("prod", {}, resume=True, restart=True)
    first, _ = deploy("prod", [N])
    assert isinstance(first, RunStopped)
    second, op = deploy("prod", [Y, Y, N], restart=True)
    assert isinstance(second, RunStopped) and second.run.run_id != first.run.run_id
    kept = state.runbook_dir() / f"prod-{first.run.run_id}.json"
    assert json.loads(kept.read_text())["run_id"] == first.run.run_id
    assert runner.status("prod")["run_id"] == second.run.run_id


def test_resuming_a_complete_run_does_nothing(world) -> None:
    run, _ = deploy("local", [])
    assert isinstance(run, state.RunState) and run.complete
    again, op = deploy("local", [], resume=True)
    assert isinstance(again, state.RunState) and again.run_id == run.run_id and op.shown == []
    fresh, _ = deploy("local", [])
    assert isinstance(fresh, state.RunState) and fresh.run_id != run.run_id
