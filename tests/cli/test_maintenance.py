"""`animl-ingest maintenance`: from the installed command against moto's server, and on local."""

from __future__ import annotations

import json
import subprocess
import time

import boto3
import pytest

from tests.conftest import subprocess_env
from tests.ops.helpers import installed_cli, run_cli

PARAM = "/images/maintenance-mode-dev"


def cli(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*installed_cli(), *args], capture_output=True, text=True, input=stdin,
                          env=subprocess_env(env), timeout=120)


def test_installed_command_against_moto_server_waits_for_the_cache(moto_server: str) -> None:
    started = time.monotonic()
    r = cli("maintenance", "on", "--stage", "dev", env={"ANIML_MAINTENANCE_WAIT_SECONDS": "0.6"})
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - started >= 0.6  # the wait happened
    assert r.stdout == "maintenance on (dev)\n" and "waiting 0.6 s" in r.stderr
    assert boto3.client("ssm").get_parameter(Name=PARAM)["Parameter"]["Value"] == "true"
    r = cli("maintenance", "status", "--stage", "dev", "--json")
    state = json.loads(r.stdout)
    assert state["maintenance"] is True and state["stage"] == "dev" and state["changed"]
    r = cli("maintenance", "off", "--stage", "dev", "--no-wait", "--json")
    change = json.loads(r.stdout)
    assert change["maintenance"] is False and change["previous"] is True
    assert change["in_force"] is False and change["in_force_in"] > 10  # the default 16 s wait skipped


def test_local_stage_on_off_idempotent_and_audited(capsys, monkeypatch) -> None:
    assert run_cli(capsys, monkeypatch, "maintenance", "status").out == "off on local\n"
    r = run_cli(capsys, monkeypatch, "maintenance", "on", "--no-wait")
    assert (r.code, r.out) == (0, "maintenance on (local)\n")
    r = run_cli(capsys, monkeypatch, "maintenance", "on", "--no-wait")
    assert r.code == 0 and "already on" in r.err
    assert run_cli(capsys, monkeypatch, "maintenance", "status").out == "on on local\n"
    assert run_cli(capsys, monkeypatch, "maintenance", "off", "--no-wait").out == "maintenance off (local)\n"
    from animl_ingest_cli.audit import audit_path

    entries = [json.loads(x) for x in audit_path().read_text().splitlines()]
    assert [(e["command"], e["old"], e["new"]) for e in entries] == [
        ("maintenance on", None, "true"), ("maintenance off", "true", "false")]


def test_prod_asks_for_the_stage_name(aws_mock: None, capsys, monkeypatch) -> None:
    ssm = boto3.client("ssm")
    r = run_cli(capsys, monkeypatch, "maintenance", "on", "--stage", "prod", "--no-wait", stdin="yes\n")
    assert r.code == 3 and "not confirmed" in r.err and r.err.count("\n") <= 2
    assert not ssm.describe_parameters()["Parameters"]  # nothing written
    r = run_cli(capsys, monkeypatch, "maintenance", "on", "--stage", "prod", "--no-wait", stdin="prod\n")
    assert r.code == 0 and "Type the stage name" in r.err
    r = run_cli(capsys, monkeypatch, "maintenance", "off", "--stage", "prod", "--no-wait", "--yes")
    assert r.code == 0 and "Type the stage name" not in r.err
    assert ssm.get_parameter(Name="/images/maintenance-mode-prod")["Parameter"]["Value"] == "false"


def test_bad_wait_setting_is_one_line_exit_2(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANIML_MAINTENANCE_WAIT_SECONDS", "later")
    r = run_cli(capsys, monkeypatch, "maintenance", "on")
    assert r.code == 2 and r.err.startswith("error: ANIML_MAINTENANCE_WAIT_SECONDS")
