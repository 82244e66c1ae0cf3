"""`animl-ingest config` from the command line."""

from __future__ import annotations

import json
import subprocess

import boto3

from tests.conftest import subprocess_env
from tests.ops.helpers import installed_cli, run_cli


def test_installed_command_against_moto_server(moto_server: str) -> None:
    boto3.client("ssm").put_parameter(Name="/images/ingestion-bucket-dev", Value="other-ingestion",
                                      Type="String")
    r = subprocess.run([*installed_cli(), "config", "--stage", "dev", "--json"], capture_output=True,
                       text=True, env=subprocess_env({"API_KEY": "top-secret-api-key"}), timeout=120)
    assert r.returncode == 0, r.stderr
    rows = {x["name"]: x for x in map(json.loads, r.stdout.splitlines())}
    ingestion = rows["ingestion-bucket"]
    assert (ingestion["value"], ingestion["source"]) == ("other-ingestion", "ssm")
    assert rows["endpoint"]["value"] == moto_server
    assert "top-secret-api-key" not in r.stdout + r.stderr


def test_local_stage_table(capsys, monkeypatch) -> None:
    r = run_cli(capsys, monkeypatch, "config")
    assert r.code == 0 and "parkinglot-bucket" in r.out and "audit-log" in r.out
