"""A whole bulk upload on the local stage, no AWS account: `batch run` with STAGE=local, as the
container would be started, and the same zip through `ingest` of the local ingestion bucket."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from animl_ingest_cli.api_local import LocalApi
from tests.conftest import EXAMPLES, subprocess_env

BATCH = "batch-0d6c4d5e-1b8a-4c4e-9f55-2a1b3c4d5e6f"
ING = "animl-images-ingestion-local"


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "animl_ingest_cli", *args], capture_output=True,
                          text=True, timeout=300, env=subprocess_env(env))


def local_zip(local: Path) -> list[str]:
    ingestion = local / "buckets" / ING
    ingestion.mkdir(parents=True)
    names = sorted(p.name for p in EXAMPLES.iterdir())
    with zipfile.ZipFile(ingestion / f"{BATCH}.zip", "w") as z:
        for name in names:
            z.write(EXAMPLES / name, f"./DCIM/{name}")
        z.writestr("DCIM/.DS_Store", b"x")
    return names


def test_batch_run_on_the_local_stage(tmp_path: Path) -> None:
    local = tmp_path / "animl-local"
    names = local_zip(local)
    task = json.dumps({"Bucket": ING, "Key": f"{BATCH}.zip", "FileName": f"{BATCH}.zip",
                       "batchId": BATCH, "errors": []})
    r = cli("batch", "run", "--json", env={"ANIML_LOCAL_DIR": str(local), "STAGE": "local", "TASK": task})
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.splitlines()[-1])
    outcomes = [x["outcome"] for x in summary["results"]]
    assert outcomes.count("served") == len(names) and outcomes.count("skipped") == 1
    assert not any((local / "buckets" / ING).rglob("*"))  # zip, images and journal: all gone
    served = [p for p in (local / "buckets" / "animl-images-serving-local").rglob("*") if p.is_file()]
    assert len(served) == 3 * len(names)
    catalog = LocalApi(local / "catalog.sqlite")
    (batch,) = catalog.batches()
    fields = batch["fields"]
    assert fields["total"] == len(names)
    assert sorted(fields) == ["ingestionComplete", "processingEnd", "processingStart", "total",
                              "uploadComplete"]
    assert fields["uploadComplete"] <= fields["processingStart"] <= fields["ingestionComplete"] \
        <= fields["processingEnd"]
    errors = [e["error"] for e in catalog.batch_errors()]
    assert errors == ["1 zip entry skipped: hidden file: DCIM/.DS_Store"]
    assert {i["md"]["Path"] for i in catalog.images()} == {f"DCIM/{n}" for n in names}
    catalog.close()


def test_a_bad_task_is_one_line_and_exit_2(tmp_path: Path) -> None:
    r = cli("batch", "run", env={"ANIML_LOCAL_DIR": str(tmp_path), "STAGE": "local", "TASK": "{oops"})
    assert r.returncode == 2 and r.stderr == "error: TASK is not JSON\n"


def test_ingest_of_a_zip_on_the_local_stage_is_a_bulk_upload(tmp_path: Path) -> None:
    """`ingest upload.zip` on `local`: the job unpacks it into the local ingestion bucket under a
    new batch id, the images are ingested, the user's zip is left as it is."""
    local = tmp_path / "animl-local"
    upload = tmp_path / "upload.zip"
    names = sorted(p.name for p in EXAMPLES.iterdir())
    with zipfile.ZipFile(upload, "w") as z:
        for name in names:
            z.write(EXAMPLES / name, f"card 1/{name}")
    r = cli("ingest", str(upload), "--json", env={"ANIML_LOCAL_DIR": str(local)})
    assert r.returncode == 0, r.stderr
    items = [json.loads(x) for x in r.stdout.splitlines()[:-1]]
    (zip_item,) = [i for i in items if i["key"] == "upload.zip"]
    batch = zip_item["reason"].rsplit(" ", 1)[-1]
    assert zip_item["outcome"] == "batch-submitted" and batch.startswith("batch-")
    served = sorted(i["key"] for i in items if i["outcome"] == "served")
    assert served == sorted(f"{batch}/card 1/{n}" for n in names)
    assert upload.exists() and not any((local / "buckets" / ING).rglob("*.*"))
    catalog = LocalApi(local / "catalog.sqlite")
    assert {i["batch"] for i in catalog.images()} == {batch}
    assert sorted(catalog.batches()[0]["fields"]) == ["ingestionComplete", "processingEnd",
                                                      "processingStart", "total", "uploadComplete"]
    catalog.close()
