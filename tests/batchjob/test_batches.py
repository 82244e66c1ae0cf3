"""`animl-ingest batches list|show|teardown` end to end from the CLI, against moto and the animl-api
stand-in; and the one "still running" rule that `queues drain` and the runbook share."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from animl_ingest_cli.audit import audit_path
from animl_ingest_cli.config import REGION, Names
from animl_ingest_cli.context import open_stage
from animl_ingest_cli.ops import queues
from tests.batchjob.batchstacks import (
    NAMES,
    make_batch_stack,
    make_job_queue,
    new_batch,
    send,
    stack_status,
    submit_zip_job,
)
from tests.ops.helpers import run_cli


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from moto import mock_aws

    monkeypatch.delenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", raising=False)
    with mock_aws(config={"batch": {"use_docker": False}}):
        yield


@pytest.fixture
def api(aws: None, api_stub: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("API_KEY", api_stub.api_key)
    ssm = boto3.client("ssm", region_name=REGION)
    for stage in ("dev", "prod"):
        ssm.put_parameter(Name=Names(stage).api_url_param, Value=api_stub.url, Type="String")
    return api_stub


@pytest.fixture
def scene(aws: None) -> dict[str, str]:
    """Four bulk uploads on dev: one working (queue messages, its job ended), one stuck on its DLQ,
    one still being unzipped (job running, no stack yet), one finished (stack deleted); and a prod
    stack that dev must not show."""
    queue = make_job_queue("dev")
    working, stuck, unzipping, finished = new_batch(), new_batch(), new_batch(), new_batch()
    make_batch_stack(working)
    send(NAMES.batch_queue(working), 3)
    submit_zip_job(queue, working, "SUCCEEDED")
    make_batch_stack(stuck)
    send(NAMES.batch_dlq(stuck), 2)
    submit_zip_job(queue, unzipping, "RUNNING")
    make_batch_stack(finished)
    boto3.client("cloudformation", region_name=REGION).delete_stack(StackName=NAMES.batch_stack(finished))
    make_batch_stack(new_batch(), stage="prod")
    return {"working": working, "stuck": stuck, "unzipping": unzipping, "finished": finished,
            "queue": queue}


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def test_list_shows_every_batch_in_flight(scene: dict[str, str], capsys: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    r = run_cli(capsys, monkeypatch, "batches", "list", "--stage", "dev", "--json")
    assert r.code == 0, r.err
    rows = {x["batch"]: x for x in lines(r.out)}
    assert set(rows) == {scene["working"], scene["stuck"], scene["unzipping"]}
    working, stuck, unzipping = rows[scene["working"]], rows[scene["stuck"]], rows[scene["unzipping"]]
    assert working["stack_status"] == "CREATE_COMPLETE" and working["queue"]["visible"] == 3
    assert working["dlq"]["visible"] == 0 and working["alarm"] == "OK" and working["running"]
    assert working["job"] is None  # `list` looks at active jobs only; its job has ended
    assert stuck["dlq"]["visible"] == 2 and stuck["queue"]["visible"] == 0
    assert unzipping["stack"] is None and unzipping["job"]["status"] == "RUNNING" and unzipping["running"]
    assert unzipping["queue"] is None and unzipping["alarm"] is None
    assert all(x["age_seconds"] is not None and 0 <= x["age_seconds"] < 600 for x in rows.values())

    r = run_cli(capsys, monkeypatch, "batches", "list", "--stage", "dev")
    assert r.code == 0
    for batch in (scene["working"], scene["stuck"], scene["unzipping"]):
        assert batch[:20] in r.out
    assert scene["finished"][:20] not in r.out
    assert f"{scene['stuck']}: 2 message(s) dead" in r.err.replace("\n", "")


def test_show_includes_ended_jobs_and_counts(scene: dict[str, str], capsys: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    r = run_cli(capsys, monkeypatch, "batches", "show", scene["working"], "--stage", "dev", "--json")
    assert r.code == 0, r.err
    [view] = lines(r.out)
    assert view["job"]["status"] == "SUCCEEDED" and view["queue"]["visible"] == 3
    r = run_cli(capsys, monkeypatch, "batches", "show", scene["finished"], "--stage", "dev")
    assert r.code == 0
    assert "running  no" in r.out and "stack    none" in r.out
    r = run_cli(capsys, monkeypatch, "batches", "show", "batch-nope", "--stage", "dev")
    assert r.code == 2
    assert r.err.strip().splitlines() == ["error: not a batch id (batch-<uuid>): 'batch-nope'"]


def test_drain_and_the_runbook_see_the_same_running_batches(scene: dict[str, str]) -> None:
    from animl_ingest_cli.ops import batches

    ctx = open_stage("dev")
    views, _ = batches.in_flight(ctx)
    snap = queues.snapshot(ctx, batches.job_queue(ctx))
    assert not snap.idle
    assert set(snap.stacks.items or {}) == {v.stack.name for v in views if v.stack}
    assert sum((snap.jobs.items or {}).values()) == sum(1 for v in views if v.job and v.job.active)
    assert batches.busy_descriptions(snap.jobs, snap.stacks)


def audit_entries() -> list[dict[str, Any]]:
    return [json.loads(x) for x in audit_path().read_text().splitlines()] if audit_path().exists() else []


def test_teardown_deletes_the_stack_records_processing_end_and_is_audited(
        api: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = new_batch()
    make_batch_stack(batch)
    r = run_cli(capsys, monkeypatch, "batches", "teardown", batch, "--stage", "dev")
    assert r.code == 0, r.err
    assert stack_status(batch) is None
    [update] = [c.input for c in api.calls("updateBatch")]
    assert update["_id"] == batch and update["processingEnd"] in r.out
    [entry] = audit_entries()
    assert entry["command"] == "batches teardown" and entry["batch"] == batch
    assert entry["action"] == "deleted" and entry["stack_status"] == "CREATE_COMPLETE"
    # Again: nothing left to delete; a stop still ends the batch, as stopBatch's teardown does.
    r = run_cli(capsys, monkeypatch, "batches", "teardown", batch, "--stage", "dev")
    assert r.code == 0 and "no stack to delete" in r.out


def test_teardown_refuses_while_the_dlq_holds_messages(api: Any, capsys: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    batch = new_batch()
    make_batch_stack(batch)
    send(NAMES.batch_dlq(batch), 2)
    r = run_cli(capsys, monkeypatch, "batches", "teardown", batch, "--stage", "dev")
    assert r.code == 3 and "2 message(s) are dead" in r.err and len(r.err.strip().splitlines()) == 1
    assert stack_status(batch) == "CREATE_COMPLETE" and not api.requests
    r = run_cli(capsys, monkeypatch, "batches", "teardown", batch, "--stage", "dev", "--discard-dead-letters")
    assert r.code == 0, r.err
    assert stack_status(batch) is None


def test_teardown_on_prod_is_guarded(api: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = new_batch()
    make_batch_stack(batch, stage="prod")
    r = run_cli(capsys, monkeypatch, "batches", "teardown", batch, "--stage", "prod", "--dry-run")
    assert r.code == 0 and "would delete stack animl-ingest-prod-" in r.err
    r = run_cli(capsys, monkeypatch, "batches", "teardown", batch, "--stage", "prod", stdin="dev\n")
    assert r.code == 3 and "not confirmed" in r.err
    r = run_cli(capsys, monkeypatch, "batches", "teardown", batch, "--stage", "prod", "--dry-run", "--json")
    assert lines(r.out)[0]["result"]["action"] == "would-delete"
    assert stack_status(batch, "prod") == "CREATE_COMPLETE" and not api.requests and not audit_entries()
    r = run_cli(capsys, monkeypatch, "batches", "teardown", batch, "--stage", "prod", stdin="prod\n")
    assert r.code == 0, r.err
    assert stack_status(batch, "prod") is None and len(api.calls("updateBatch")) == 1


def test_teardown_refuses_while_the_job_still_writes(scene: dict[str, str], api: Any, capsys: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    r = run_cli(capsys, monkeypatch, "batches", "teardown", scene["unzipping"], "--stage", "dev", "--yes")
    assert r.code == 3 and "is RUNNING" in r.err and "aws batch terminate-job" in r.err
    assert not api.requests and not audit_entries()


def test_local_stage_says_there_is_nothing_in_flight(capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    r = run_cli(capsys, monkeypatch, "batches", "list", "--json")
    assert r.code == 0 and r.out == "" and "in-process" in r.err
    r = run_cli(capsys, monkeypatch, "batches", "teardown", new_batch(), "--yes")
    assert r.code == 3 and "local stage has no batch stacks" in r.err


def test_the_installed_command_lists_and_tears_down_against_moto_server(
        moto_server: str, api_stub: Any) -> None:
    """As an operator runs it: the installed `animl-ingest`, its own process, moto's server."""
    import subprocess

    from tests.conftest import subprocess_env
    from tests.ops.helpers import installed_cli

    boto3.client("ssm", region_name=REGION).put_parameter(
        Name=NAMES.api_url_param, Value=api_stub.url, Type="String")
    batch = new_batch()
    make_batch_stack(batch)
    send(NAMES.batch_queue(batch), 1)
    env = subprocess_env({"API_KEY": api_stub.api_key})
    r = subprocess.run([*installed_cli(), "batches", "list", "--stage", "dev", "--json"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    [row] = lines(r.stdout)
    assert row["batch"] == batch and row["queue"]["visible"] == 1 and row["stack_status"] == "CREATE_COMPLETE"
    r = subprocess.run([*installed_cli(), "batches", "teardown", batch, "--stage", "dev", "--json"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout)[0]["result"]["action"] == "deleted"
    assert stack_status(batch) is None
    assert [c.input["_id"] for c in api_stub.calls("updateBatch")] == [batch]
    assert api_stub.api_key not in r.stdout + r.stderr
