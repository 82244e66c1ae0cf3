"""`animl-ingest queues list|drain` from the command line."""

from __future__ import annotations

import json
import subprocess

import boto3

from tests.conftest import subprocess_env
from tests.ops.helpers import installed_cli, make_queues, run_cli


def test_list_from_the_installed_command_against_moto_server(moto_server: str) -> None:
    urls = make_queues(boto3.client("sqs"))
    boto3.client("sqs").send_message(QueueUrl=urls["taskQueue-dev"], MessageBody="x")
    r = subprocess.run([*installed_cli(), "queues", "list", "--stage", "dev", "--json"], capture_output=True,
                       text=True, env=subprocess_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    rows = {x["name"]: x for x in map(json.loads, r.stdout.splitlines())}
    assert set(rows) == set(urls)
    assert set(rows["taskQueue-dev"]) == {"name", "url", "visible", "in_flight", "delayed", "dlq"}
    assert rows["taskQueue-dev"]["visible"] == 1 and rows["taskDLQ-dev"]["dlq"] is True


def test_list_table(aws_mock: None, capsys, monkeypatch) -> None:
    make_queues(boto3.client("sqs"))
    r = run_cli(capsys, monkeypatch, "queues", "list", "--stage", "dev")
    assert r.code == 0
    rows = [line for line in r.out.splitlines() if "Queue-dev" in line or "DLQ-dev" in line]
    assert len(rows) == 4 and all(("DLQ" in line) == ("DLQ-dev" in line) for line in rows)


def test_drain_timeout_exit_4_and_dead_letters_reported(aws_mock: None, capsys, monkeypatch) -> None:
    sqs = boto3.client("sqs")
    urls = make_queues(sqs)
    sqs.send_message(QueueUrl=urls["taskDLQ-dev"], MessageBody="dead")
    r = run_cli(capsys, monkeypatch, "queues", "drain", "--stage", "dev", "--interval", "0.01",
                "--stable", "2")
    assert r.code == 0 and r.out.startswith("drained") and "taskDLQ-dev holds 1" in r.err
    sqs.send_message(QueueUrl=urls["taskQueue-dev"], MessageBody="work")
    r = run_cli(capsys, monkeypatch, "queues", "drain", "--stage", "dev", "--timeout", "0.2",
                "--interval", "0.05", "--json")
    assert r.code == 4 and r.err.strip().splitlines()[-1].startswith("error: not drained on dev after")
    *polls, summary = map(json.loads, r.out.splitlines())
    assert polls and polls[0]["idle"] is False and summary["summary"]["drained"] is False


def test_local_stage_has_none(capsys, monkeypatch) -> None:
    r = run_cli(capsys, monkeypatch, "queues", "list")
    assert r.code == 0 and r.out == "" and "no Animl queues" in r.err
    r = run_cli(capsys, monkeypatch, "queues", "drain")
    assert r.code == 0 and r.out.startswith("drained")


def test_drain_exit_codes_from_the_installed_command(moto_server: str) -> None:
    sqs = boto3.client("sqs")
    urls = make_queues(sqs)
    sqs.send_message(QueueUrl=urls["inferenceQueue-dev"], MessageBody="work")
    drain = [*installed_cli(), "queues", "drain", "--stage", "dev", "--interval", "0.1", "--stable", "2"]
    r = subprocess.run([*drain, "--timeout", "0.5"], capture_output=True, text=True, env=subprocess_env(),
                       timeout=120)
    assert r.returncode == 4 and "inferenceQueue-dev 1/0/0" in r.stderr
    sqs.purge_queue(QueueUrl=urls["inferenceQueue-dev"])
    r = subprocess.run([*drain, "--timeout", "30"], capture_output=True, text=True, env=subprocess_env(),
                       timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("drained"), r.stderr
