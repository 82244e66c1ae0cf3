"""`animl-ingest deadletter list|redrive` from the command line."""

from __future__ import annotations

import json
import subprocess

from animl_ingest_cli.context import open_stage
from tests.awsfixtures import bucket, make_buckets
from tests.conftest import subprocess_env
from tests.ops.helpers import dead_letter, installed_cli, keys, run_cli

DL, INGEST = bucket("dead-letter"), bucket("ingestion")


def fill(stage: str = "dev") -> None:
    store = open_stage(stage).store("dead-letter")
    ingestion = bucket("ingestion", stage)
    dead_letter(store, "Unknown Serial Number", "UNKNOWN_ID", "a b.jpg", b"a", original_bucket=ingestion,
                original_key="a b.jpg")
    dead_letter(store, "Unknown Serial Number", "p:1", "c.jpg", b"cc", original_bucket=ingestion,
                original_key="batch-1/x/c.JPG", batch="batch-1")
    dead_letter(store, "DUPLICATE_IMAGE", "p:2", "d.jpg", b"ddd", original_bucket=ingestion,
                original_key="d.jpg")


def test_list_table_and_json(s3, capsys, monkeypatch) -> None:
    fill()
    r = run_cli(capsys, monkeypatch, "deadletter", "list", "--stage", "dev")
    assert r.code == 0 and "Unknown Serial Number" in r.out and "DUPLICATE_IMAGE" in r.out
    r = run_cli(capsys, monkeypatch, "deadletter", "list", "--stage", "dev", "--json")
    rows = {x["error"]: x for x in map(json.loads, r.out.splitlines())}
    assert rows["Unknown Serial Number"]["objects"] == 2 and rows["Unknown Serial Number"]["bytes"] == 3
    assert rows["DUPLICATE_IMAGE"]["objects"] == 1 and rows["DUPLICATE_IMAGE"]["newest"]


def test_redrive_round_trip_and_audit(s3, capsys, monkeypatch) -> None:
    fill()
    r = run_cli(capsys, monkeypatch, "deadletter", "redrive", "--stage", "dev", "--error",
                "Unknown Serial Number", "--json")
    assert r.code == 0, r.err
    *objects, summary = map(json.loads, r.out.splitlines())
    assert {o["to"] for o in objects} == {f"s3://{INGEST}/a b.jpg", f"s3://{INGEST}/batch-1/x/c.JPG"}
    assert summary["summary"]["moved"] == 2
    assert set(keys(s3, INGEST)) == {"a b.jpg", "batch-1/x/c.JPG"}
    assert set(keys(s3, DL)) == {"DUPLICATE_IMAGE/p:2/d.jpg"}
    from animl_ingest_cli.audit import audit_path

    end = [json.loads(x) for x in audit_path().read_text().splitlines()][-1]
    assert end["command"] == "deadletter redrive" and end["error"] == "Unknown Serial Number"
    assert end["moved"] == 2


def test_duplicate_image_warns_and_dry_run_changes_nothing(s3, capsys, monkeypatch) -> None:
    fill()
    r = run_cli(capsys, monkeypatch, "deadletter", "redrive", "--stage", "dev", "--error", "DUPLICATE_IMAGE",
                "--dry-run")
    assert r.code == 0 and "warning: DUPLICATE_IMAGE" in r.err
    assert r.out.splitlines()[0] == (f"DUPLICATE_IMAGE/p:2/d.jpg -> s3://{INGEST}/d.jpg: copy, verify, "
                                     f"delete from the source (staged first)")
    assert keys(s3, INGEST) == {} and len(keys(s3, DL)) == 3


def test_missing_error_is_a_usage_error(capsys, monkeypatch) -> None:
    r = run_cli(capsys, monkeypatch, "deadletter", "redrive")
    assert r.code == 2 and "--error" in r.err


def test_prod_redrive_needs_the_stage_name(aws_mock: None, capsys, monkeypatch) -> None:
    client = make_buckets("prod")
    fill("prod")
    r = run_cli(capsys, monkeypatch, "deadletter", "redrive", "--stage", "prod", "--error", "DUPLICATE_IMAGE",
                stdin="dev\n")
    assert r.code == 3 and len(keys(client, bucket("dead-letter", "prod"))) == 3
    r = run_cli(capsys, monkeypatch, "deadletter", "redrive", "--stage", "prod", "--error", "DUPLICATE_IMAGE",
                "--yes")
    assert r.code == 0 and set(keys(client, bucket("ingestion", "prod"))) == {"d.jpg"}


def test_installed_command_against_moto_server(moto_server: str) -> None:
    client = make_buckets()
    fill()
    run = lambda *a: subprocess.run([*installed_cli(), *a], capture_output=True, text=True,  # noqa: E731
                                    env=subprocess_env(), timeout=120)
    r = run("deadletter", "list", "--stage", "dev", "--json")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2
    r = run("deadletter", "redrive", "--stage", "dev", "--error", "Unknown Serial Number")
    assert r.returncode == 0 and r.stdout.startswith("moved 2,"), r.stderr
    assert set(keys(client, INGEST)) == {"a b.jpg", "batch-1/x/c.JPG"}


def test_local_stage(capsys, monkeypatch) -> None:
    fill("local")
    r = run_cli(capsys, monkeypatch, "deadletter", "redrive", "--error", "Unknown Serial Number")
    assert r.code == 0 and r.out.startswith("moved 2,")
    got = sorted(i.key for i in open_stage("local").store("ingestion").list())
    assert got == ["a b.jpg", "batch-1/x/c.JPG"]
    r = run_cli(capsys, monkeypatch, "deadletter", "list")
    assert "DUPLICATE_IMAGE" in r.out and "Unknown Serial Number" not in r.out
