"""`animl-ingest runbook prod-deploy|status`: the installed command against moto's server with the
answers piped on stdin (a full run, a "no" then --resume, a step that fails, Ctrl-C, a dry run),
and in-process for the refusals and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.awsfixtures import bucket
from tests.conftest import subprocess_env
from tests.ops.helpers import installed_cli, keys, run_cli
from tests.runbook.helpers import (
    audit_entries,
    backups,
    fake_api_checkout,
    invalidations,
    maintenance_value,
    make_world,
    needs_npm,
)

FAST = ["--drain-interval", "0.1", "--drain-stable", "2"]


@pytest.fixture
def world(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("ANIML_MAINTENANCE_WAIT_SECONDS", "0.2")
    return make_world("prod")


def runbook(*args: str, answers: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*installed_cli(), "runbook", *args], input=answers, capture_output=True,
                          text=True, env=subprocess_env(), timeout=timeout)


def status_json() -> dict[str, Any]:
    r = runbook("status", "--stage", "prod", "--json")
    assert r.returncode == 0, r.stderr
    [line] = r.stdout.splitlines()
    return json.loads(line)


def step_states() -> list[str]:
    return [s["state"] for s in status_json()["steps"]]


def parts_done(part: str) -> int:
    return sum(1 for e in audit_entries() if e.get("part") == part and e.get("result") == "done")


@needs_npm
def test_a_full_prod_run_with_the_answers_piped(world, tmp_path: Path, monkeypatch) -> None:
    api = fake_api_checkout(tmp_path, monkeypatch)
    parked = keys(world["s3"], bucket("parkinglot", "prod"))
    # the frontend; its cache; the Batch jobs the tool cannot see; maintenance on; (drain, backup);
    # deploy-api; the frontend again; maintenance off; its cache; unpark
    answers = "y\nprod\ny\nprod\ny\ny\nprod\nprod\nprod\n"
    r = runbook("prod-deploy", "--distribution-id", world["distribution"], "--api-dir", str(api), *FAST,
                answers=answers)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("runbook prod-deploy on prod: complete (8 steps done, 0 skipped")
    assert "Is frontend-flag-on done? [y/n]" in r.stderr and "Type the stage name (prod)" in r.stderr
    assert "npm run export-db-prod" in r.stderr and "no parameter /images/batch-queue-prod" in r.stderr
    report = status_json()
    assert report["stage"] == "prod" and report["complete"] is True
    assert [(s["name"], s["state"]) for s in report["steps"]] == [
        ("frontend-maintenance-on", "done"), ("no-bulk-upload-in-flight", "done"),
        ("ingest-maintenance-on", "done"), ("drain-queues", "done"), ("backup-db", "done"),
        ("deploy-api", "done"), ("maintenance-off", "done"), ("unpark", "done")]
    assert all(s["started"] and s["finished"] for s in report["steps"])
    assert maintenance_value("prod") == "false" and invalidations(world) == 2
    assert keys(world["s3"], bucket("parkinglot", "prod")) == {}
    assert keys(world["s3"], bucket("ingestion", "prod")) == parked
    [folder] = backups(api, "prod")
    assert len(list(folder.glob("*.json"))) == 2 and str(folder) in report["steps"][4]["detail"]
    assert {e["step"] for e in audit_entries() if "step" in e} == {s["name"] for s in report["steps"]}
    r = runbook("status", "--stage", "prod")
    assert r.returncode == 0 and ": complete" in r.stdout.splitlines()[0]


@needs_npm
def test_declined_half_way_then_resumed(world, tmp_path: Path, monkeypatch) -> None:
    api = fake_api_checkout(tmp_path, monkeypatch)
    start = ["prod-deploy", "--yes", "--distribution-id", world["distribution"], "--api-dir", str(api), *FAST]
    # --yes answers the stage-name questions only: the frontend, the unseen jobs, then no to deploy-api
    r = runbook(*start, answers="y\ny\nn\n")
    assert r.returncode == 3, r.stderr
    last = r.stderr.strip().splitlines()[-1]  # after the prompt: a piped answer is not echoed
    assert last.endswith("[y/n]: error: stopped at step 6 deploy-api: deploy-api not confirmed (the "
                         "operator answered no). Ingest maintenance stays on (arrivals are parked, "
                         "nothing is lost). Run again with --resume to go on from there.")
    assert step_states() == ["done"] * 5 + ["pending"] * 3
    assert maintenance_value("prod") == "true" and invalidations(world) == 1

    r = runbook(*start, answers="y\ny\n")  # not a resume: refused, nothing asked or done
    assert r.returncode == 2 and "continue it with --resume, or start over with --restart" in r.stderr

    r = runbook("prod-deploy", "--resume", "--yes", *FAST, answers="y\ny\n")  # deploy-api, frontend
    assert r.returncode == 0, r.stderr
    assert "Is frontend-flag-on done?" not in r.stderr and "export-db" not in r.stderr
    assert status_json()["complete"] is True
    assert maintenance_value("prod") == "false" and invalidations(world) == 2  # saved --distribution-id
    assert len(backups(api, "prod")) == 1 and parts_done("backup-db") == 1
    assert parts_done("ingest-maintenance-on") == 1 and parts_done("frontend-flag-on") == 1
    assert [e["phase"] for e in audit_entries() if "phase" in e] == ["start", "resume", "complete"]


def test_queues_that_never_drain_fail_the_run_with_maintenance_left_on(world) -> None:
    world["sqs"].send_message(QueueUrl=world["queues"]["taskQueue"], MessageBody="work")
    r = runbook("prod-deploy", "--yes", "--drain-timeout", "0.5", "--drain-interval", "0.1",
                answers="y\ny\ny\n")  # the frontend, its cache and the unseen jobs, by hand
    assert r.returncode == 3, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: step 4 drain-queues failed: not drained after"), last
    assert "taskQueue-prod 1/0/0" in last and "Ingest maintenance stays on" in last
    assert maintenance_value("prod") == "true"
    report = status_json()
    assert report["complete"] is False
    assert [s["state"] for s in report["steps"]] == ["done"] * 3 + ["failed"] + ["pending"] * 4
    assert report["steps"][3]["detail"].startswith("drain-queues: not drained after")
    assert keys(world["s3"], bucket("parkinglot", "prod")) != {}  # nothing unparked


def test_ctrl_c_saves_the_state_and_resume_finishes(world, tmp_path: Path) -> None:
    world["sqs"].send_message(QueueUrl=world["queues"]["taskQueue"], MessageBody="work")
    err = tmp_path / "err.txt"
    with err.open("wb") as err_fh, subprocess.Popen(
            [*installed_cli(), "runbook", "prod-deploy", "--yes", *FAST], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=err_fh, env=subprocess_env(), text=True,
            # Ctrl-C as a terminal sends it, even where this test runs with SIGINT ignored
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) as proc:
        assert proc.stdin is not None
        proc.stdin.write("y\ny\ny\n")  # the frontend, its cache and the unseen jobs, by hand
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while "poll:" not in err.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, err.read_text()
        os.kill(proc.pid, signal.SIGINT)  # while step 4 waits for the queue
        assert proc.wait(60) == 130
    assert "state saved in" in err.read_text() and "--resume" in err.read_text()
    report = status_json()
    assert report["steps"][3]["state"] == "failed" and "interrupted" in report["steps"][3]["detail"]
    assert maintenance_value("prod") == "true"

    world["sqs"].purge_queue(QueueUrl=world["queues"]["taskQueue"])
    # the backup, deploy-api, the frontend and its cache: all by hand on this run
    r = runbook("prod-deploy", "--resume", "--yes", *FAST, answers="y\ny\ny\ny\n")
    assert r.returncode == 0, r.stderr
    assert step_states() == ["done"] * 8 and maintenance_value("prod") == "false"


def test_dry_run_touches_nothing(world, tmp_path: Path, monkeypatch) -> None:
    state_dir = Path(os.environ["ANIML_STATE_DIR"])
    parked = keys(world["s3"], bucket("parkinglot", "prod"))
    r = runbook("prod-deploy", "--dry-run", "--distribution-id", world["distribution"])
    assert r.returncode == 0, r.stderr
    for name in ("frontend-maintenance-on", "no-bulk-upload-in-flight", "ingest-maintenance-on",
                 "drain-queues", "backup-db", "deploy-api", "maintenance-off", "unpark"):
        assert f": {name}" in r.stdout or f". {name}:" in r.stdout, name
    assert "animl-ingest maintenance on --stage prod" in r.stdout
    assert "invalidate-cache, the tool" in r.stdout and "backup-db, you" in r.stdout
    assert not state_dir.exists() or not any(state_dir.iterdir())
    assert maintenance_value("prod") is None and invalidations(world) == 0
    assert keys(world["s3"], bucket("parkinglot", "prod")) == parked
    assert keys(world["s3"], bucket("ingestion", "prod")) == {}
    # nor does it ask AWS anything: the same plan with no AWS to reach
    dead = subprocess.run([*installed_cli(), "runbook", "prod-deploy", "--dry-run"], capture_output=True,
                          text=True, timeout=60,
                          env=subprocess_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}))
    assert dead.returncode == 0 and "8. unpark: Unpark" in dead.stdout


# --- in-process: refusals and exit codes -----------------------------------------------------------

def test_status_without_a_run(capsys, monkeypatch) -> None:
    r = run_cli(capsys, monkeypatch, "runbook", "status", "--json")
    report = json.loads(r.out)
    assert r.code == 0 and report["stage"] == "prod" and report["complete"] is False
    assert report["run_id"] is None and {s["state"] for s in report["steps"]} == {"pending"}
    r = run_cli(capsys, monkeypatch, "runbook", "status", "--stage", "dev")
    assert r.code == 0 and r.out.startswith("no runbook run saved for dev")


def test_resume_without_a_saved_run_is_exit_2(capsys, monkeypatch) -> None:
    r = run_cli(capsys, monkeypatch, "runbook", "prod-deploy", "--resume")
    assert r.code == 2 and r.err.strip() == ("error: no saved runbook run for prod: nothing to resume "
                                             "(start one without --resume)")
    r = run_cli(capsys, monkeypatch, "runbook", "prod-deploy", "--resume", "--restart")
    assert r.code == 2 and "exclude each other" in r.err


def test_the_stage_comes_from_the_option_only(capsys, monkeypatch) -> None:
    monkeypatch.setenv("ANIML_STAGE", "local")
    r = run_cli(capsys, monkeypatch, "runbook", "prod-deploy", "--dry-run")
    assert r.code == 0 and r.out.startswith("runbook prod-deploy on prod")


@pytest.mark.parametrize("args,message", [
    (["--distribution-id", "d111111abcdef8.cloudfront.net"], "distribution's ID"),
    (["--api-dir", "/no/such/animl-api"], "not an animl-api checkout"),
    (["--drain-stable", "0"], "--drain-stable >= 1"),
    (["--stage", "production"], "unknown stage"),
])
def test_bad_options_stop_before_anything_changes(capsys, monkeypatch, args, message) -> None:
    r = run_cli(capsys, monkeypatch, "runbook", "prod-deploy", *args, stdin="y\n" * 20)
    assert r.code == 2 and message in r.err and r.err.count("\n") == 1
    assert not (Path(os.environ["ANIML_STATE_DIR"]) / "audit.jsonl").exists()


def test_no_answer_on_stdin_stops_with_exit_3(capsys, monkeypatch, aws_mock) -> None:
    make_world("prod")
    r = run_cli(capsys, monkeypatch, "runbook", "prod-deploy", stdin="")
    assert r.code == 3 and "frontend-flag-on not confirmed (no answer on stdin)" in r.err
    r = run_cli(capsys, monkeypatch, "runbook", "status", "--json")
    assert json.loads(r.out)["steps"][0]["detail"] == "frontend-flag-on: not confirmed (no answer on stdin)"
    assert boto3.client("ssm").get_parameters(Names=["/images/maintenance-mode-prod"])["Parameters"] == []
