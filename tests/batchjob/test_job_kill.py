"""The installed `animl-ingest batch run` against moto's server, killed (SIGKILL) half-way and run
again: every entry ends in the bucket exactly once (the bucket is versioned: each write is a version),
the zip is deleted only by the run that finished."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.batchjob.batchstacks import inference_function
from tests.conftest import subprocess_env
from tests.metadata.builders import camera_jpeg

pytestmark = pytest.mark.slow

STAGE = "dev"
BATCH = "batch-7d3c1c2e-52a4-4e8e-9d4b-3f1f5e0c2a10"
ZIP = BATCH + ".zip"
ING = f"animl-images-ingestion-{STAGE}"
N = 240


def clients(endpoint: str) -> dict[str, Any]:
    return {name: boto3.client(name, region_name="us-west-2", endpoint_url=endpoint)
            for name in ("s3", "ssm", "lambda", "iam", "cloudformation")}


def setup_stage(c: dict[str, Any], api_url: str) -> bytes:
    for kind in ("ingestion", "serving", "dead-letter", "parkinglot"):
        c["s3"].create_bucket(Bucket=f"animl-images-{kind}-{STAGE}",
                              CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    c["s3"].put_bucket_versioning(Bucket=ING, VersioningConfiguration={"Status": "Enabled"})
    c["ssm"].put_parameter(Name=f"/api/url-{STAGE}", Value=api_url, Type="String")
    inference_function(STAGE, c["iam"], c["lambda"])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(N):
            z.writestr(f"cam {i % 4}/IMG_{i:04d}.JPG",
                       camera_jpeg(size=(64, 48), seed=i) + i.to_bytes(4, "big"))
    data = buf.getvalue()
    c["s3"].put_object(Bucket=ING, Key=ZIP, Body=data)
    return data


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        return subprocess.Popen([sys.executable, "-m", "animl_ingest_cli", "batch", "run", "--json",
                                 "--workers", "4"], env=env, stdout=fh, stderr=fh)


def entry_versions(s3: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=ING, Prefix=BATCH + "/cam"):
        for v in page.get("Versions", []):
            out[v["Key"]] = out.get(v["Key"], 0) + 1
    return out


@pytest.mark.filterwarnings("ignore:Tried to parse AWS")
@pytest.mark.parametrize("sig", [signal.SIGKILL, pytest.param(signal.SIGTERM, marks=pytest.mark.stress)],
                         ids=["SIGKILL", "SIGTERM"])
def test_killed_half_way_then_rerun(moto_server: str, api_stub, tmp_path: Path, sig: int) -> None:  # noqa: ANN001
    """SIGKILL: entries written but not journalled are recognised by size and CRC. SIGTERM (AWS
    Batch stopping the job): the job stops between entries, flushes its journal and exits 130; the
    ingest function then consumes what was written, and the rerun still writes none of it again."""
    c = clients(moto_server)
    setup_stage(c, api_stub.url)
    env = subprocess_env({"STAGE": STAGE, "API_KEY": api_stub.api_key,
                          "TASK": json.dumps({"Bucket": ING, "Key": ZIP, "FileName": ZIP,
                                              "batchId": BATCH, "errors": []})})
    log = tmp_path / "job.log"
    proc = start(env, log)
    deadline = time.monotonic() + 120
    while len(entry_versions(c["s3"])) < N // 4:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the job wrote nothing in two minutes"
        time.sleep(0.05)
    os.kill(proc.pid, sig)
    code = proc.wait(timeout=120)
    killed_at = len(entry_versions(c["s3"]))
    if sig == signal.SIGTERM:
        assert code == 130, log.read_text()
        assert "error: stopped (SIGTERM) after" in log.read_text()
        for key in entry_versions(c["s3"]):  # the ingest function consumed them
            c["s3"].delete_object(Bucket=ING, Key=key)
    assert killed_at < N, "the job finished before it was killed: make the zip bigger"
    head = c["s3"].head_object(Bucket=ING, Key=ZIP)  # the zip stays until every entry is written
    assert head["ContentLength"] > 0

    rerun = subprocess.run([sys.executable, "-m", "animl_ingest_cli", "batch", "run", "--json"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout.splitlines()[-1])
    assert result["written"] == N and result["zip_deleted"] and not result["stack_created"]
    assert result["resumed"] + result["present"] > 0
    if sig == signal.SIGTERM:
        assert result["resumed"] == killed_at and result["present"] == 0
    versions = entry_versions(c["s3"])
    assert sorted(versions) == sorted(f"{BATCH}/cam {i % 4}/IMG_{i:04d}.JPG" for i in range(N))
    assert set(versions.values()) == {1}, {k: v for k, v in versions.items() if v != 1}
    live = [o["Key"] for o in c["s3"].list_objects_v2(Bucket=ING).get("Contents", [])]
    assert ZIP not in live and not any("/.animl-progress/" in k for k in live)
    ups = [r.input for r in api_stub.calls("updateBatch")]
    assert [sorted(u) for u in ups] == [["_id", "total", "uploadComplete"], ["_id", "processingStart"],
                                        ["_id", "ingestionComplete"]]
    assert ups[0]["total"] == N
    assert api_stub.api_key not in log.read_text() + rerun.stdout + rerun.stderr
