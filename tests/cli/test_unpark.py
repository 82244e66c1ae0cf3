"""`animl-ingest unpark`: the installed command against moto's server (kill -9 and Ctrl-C mid-way,
then a rerun), and in-process for the options, refusals and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.awsfixtures import bucket, make_buckets
from tests.conftest import subprocess_env
from tests.ops.helpers import awkward_keys, installed_cli, keys, run_cli, seed

PARK, INGEST = bucket("parkinglot"), bucket("ingestion")


def start_unpark(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    out, err = tmp_path / "out.jsonl", tmp_path / "err.txt"
    proc = subprocess.Popen([*installed_cli(), "unpark", "--stage", "dev", "--json", *args],
                            stdout=out.open("wb"), stderr=err.open("wb"), env=subprocess_env(),
                            # Ctrl-C as a terminal sends it, even where this test runs with SIGINT ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return proc, out, err


def wait_for_copies(proc: subprocess.Popen[bytes], at_least: int, timeout: float = 60) -> None:
    """Until the run has verified `at_least` copies (its journal, read without slowing moto down)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"unpark ended (exit {proc.returncode}) before it could be stopped mid-way")
        journals = list((Path(os.environ["ANIML_STATE_DIR"]) / "moves").glob("*.jsonl"))
        if journals and journals[0].read_bytes().count(b"\n") >= at_least:
            return
        time.sleep(0.01)
    pytest.fail("unpark made no progress")


def summary_of(out: Path) -> dict:
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert set(lines[-1]) == {"summary"}
    return lines[-1]["summary"]


def test_kill_9_mid_way_loses_nothing_and_a_rerun_finishes(s3_server, tmp_path: Path) -> None:
    seed(PARK, awkward_keys(200))
    parked = keys(s3_server, PARK)
    proc, _, _ = start_unpark(tmp_path, "--concurrency", "4")
    wait_for_copies(proc, 80)
    proc.kill()  # SIGKILL: no cleanup at all
    proc.wait()
    left, there = keys(s3_server, PARK), keys(s3_server, INGEST)
    assert set(left) | set(there) == set(parked)  # nothing is in neither bucket
    assert all(there[k] == parked[k] for k in there)  # and what was copied is whole
    both = set(left) & set(there)  # copied, not yet deleted
    assert len(both) >= 80
    rerun, out, err = start_unpark(tmp_path)
    assert rerun.wait(120) == 0, err.read_text()
    summary = summary_of(out)
    assert keys(s3_server, PARK) == {} and keys(s3_server, INGEST) == parked
    assert summary["already"] == len(both)  # not copied again (not ingested twice)
    assert summary["moved"] == len(set(left) - both)
    assert summary["requests"]["CopyObject"] == summary["moved"]


def test_ctrl_c_finishes_the_copies_under_way_exits_130_and_a_rerun_finishes(s3_server,
                                                                              tmp_path: Path) -> None:
    seed(PARK, [f"cam/{i:04d} é+.jpg" for i in range(150)])
    parked = keys(s3_server, PARK)
    proc, out, err = start_unpark(tmp_path, "--concurrency", "4")
    wait_for_copies(proc, 40)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    assert "interrupted" in err.read_text() and "Traceback" not in err.read_text()
    summary = summary_of(out)
    assert summary["interrupted"] is True and 40 <= summary["moved"] < 150
    left, there = keys(s3_server, PARK), keys(s3_server, INGEST)
    assert set(left) | set(there) == set(parked)
    assert not set(left) & set(there)  # what was copied was deleted before it stopped
    assert len(there) == summary["moved"]
    rerun, out, err = start_unpark(tmp_path)
    assert rerun.wait(120) == 0, err.read_text()
    assert keys(s3_server, PARK) == {} and keys(s3_server, INGEST) == parked
    assert summary_of(out)["moved"] == len(left)


def test_refused_while_maintenance_is_on_exit_3_and_force(s3, capsys, monkeypatch) -> None:
    s3.put_object(Bucket=PARK, Key="a.jpg", Body=b"a")
    assert run_cli(capsys, monkeypatch, "maintenance", "on", "--stage", "dev", "--no-wait").code == 0
    r = run_cli(capsys, monkeypatch, "unpark", "--stage", "dev")
    assert r.code == 3 and "maintenance is on" in r.err and r.err.count("\n") == 1
    assert set(keys(s3, PARK)) == {"a.jpg"}
    r = run_cli(capsys, monkeypatch, "unpark", "--stage", "dev", "--force")
    assert r.code == 0 and r.out.startswith("moved 1,")
    assert set(keys(s3, INGEST)) == {"a.jpg"}


def test_dry_run_prints_each_planned_move(s3, capsys, monkeypatch) -> None:
    for k in ("x 1.jpg", "batch-1/y+2.jpg"):
        s3.put_object(Bucket=PARK, Key=k, Body=k.encode())
    r = run_cli(capsys, monkeypatch, "unpark", "--stage", "dev", "--dry-run")
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        f"batch-1/y+2.jpg -> s3://{INGEST}/batch-1/y+2.jpg: copy, verify, delete from the source",
        f"x 1.jpg -> s3://{INGEST}/x 1.jpg: copy, verify, delete from the source",
        "dry run on dev: 2 to move, 0 would fail; nothing changed"]
    assert len(keys(s3, PARK)) == 2 and keys(s3, INGEST) == {}


def test_some_failed_exit_1_and_json_summary(s3, capsys, monkeypatch) -> None:
    s3.put_object(Bucket=PARK, Key="taken.jpg", Body=b"mine")
    s3.put_object(Bucket=PARK, Key="free.jpg", Body=b"free")
    s3.put_object(Bucket=INGEST, Key="taken.jpg", Body=b"someone else's")
    r = run_cli(capsys, monkeypatch, "unpark", "--stage", "dev", "--json")
    assert r.code == 1 and "1 object(s) not moved" in r.err
    lines = [json.loads(x) for x in r.out.splitlines()]
    by_key = {x["key"]: x for x in lines if "key" in x}
    assert by_key["free.jpg"]["status"] == "moved" and by_key["taken.jpg"]["status"] == "failed"
    assert lines[-1]["summary"]["moved"] == 1 and lines[-1]["summary"]["failed"] == 1


def test_prod_needs_the_stage_name_typed(aws_mock: None, capsys, monkeypatch) -> None:
    client = make_buckets("prod")
    client.put_object(Bucket=bucket("parkinglot", "prod"), Key="p.jpg", Body=b"p")
    r = run_cli(capsys, monkeypatch, "unpark", "--stage", "prod", stdin="y\n")
    assert r.code == 3 and keys(client, bucket("ingestion", "prod")) == {}
    r = run_cli(capsys, monkeypatch, "unpark", "--stage", "prod", stdin="prod\n")
    assert r.code == 0 and set(keys(client, bucket("ingestion", "prod"))) == {"p.jpg"}


def test_options_max_delete_prefix_and_bad_values(s3, capsys, monkeypatch) -> None:
    for i in range(4):
        s3.put_object(Bucket=PARK, Key=f"b/{i}.jpg", Body=b"%d" % i)
    s3.put_object(Bucket=PARK, Key="root.jpg", Body=b"r")
    r = run_cli(capsys, monkeypatch, "unpark", "--stage", "dev", "--prefix", "b/", "--max-delete", "3")
    assert r.code == 0 and r.out.startswith("moved 3,") and "--max-delete" in r.err
    assert len(keys(s3, PARK)) == 2
    r = run_cli(capsys, monkeypatch, "unpark", "--stage", "dev", "--concurrency", "0")
    assert r.code == 2 and "Traceback" not in r.err


def test_local_stage(capsys, monkeypatch) -> None:
    from animl_ingest_cli.context import open_stage

    ctx = open_stage("local")
    for k in awkward_keys(20):
        ctx.store("parkinglot").put(k, k.encode(), "image/jpeg")
    r = run_cli(capsys, monkeypatch, "unpark")
    assert r.code == 0 and r.out.startswith("moved 20,")
    assert sorted(i.key for i in ctx.store("ingestion").list()) == sorted(awkward_keys(20))
