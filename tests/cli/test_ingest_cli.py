"""`animl-ingest ingest` as a user runs it: the installed command, the local stage, moto's server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import boto3
import pytest

from animl_ingest_cli.claims import PREFIX as CLAIMS
from tests.awsfixtures import BUCKETS, STAGE
from tests.conftest import CORPUS_EXPECTED, CORPUS_IMAGES, EXAMPLES, REPO, needs_corpus


def cli(*args: str, env: dict[str, str] | None = None, input: str | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "animl_ingest_cli", *args], capture_output=True,
                          text=True, env=full, input=input, timeout=300, cwd=cwd or REPO)


def test_readme_main_job_on_the_local_stage(tmp_path: Path) -> None:
    local = tmp_path / "animl-local"
    r = cli("ingest", str(EXAMPLES), "--json", env={"ANIML_LOCAL_DIR": str(local)})
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    items, summary = lines[:-1], lines[-1]["summary"]
    images = sorted(p.name for p in EXAMPLES.iterdir())
    assert sorted(Path(i["key"]).name for i in items) == images
    assert summary["outcomes"]["served"] == len(images)
    served = [p for p in (local / "buckets" / "animl-images-serving-local").rglob("*.*")
              if p.is_file() and CLAIMS.rstrip("/") not in p.parts]
    assert len(served) == 3 * len(images)
    assert all(p.exists() for p in EXAMPLES.iterdir())  # a folder source is never deleted
    # the same command again: nothing new, nothing dead-lettered, still exit 0
    again = cli("ingest", str(EXAMPLES), "--json", env={"ANIML_LOCAL_DIR": str(local)})
    assert again.returncode == 0, again.stdout
    assert json.loads(again.stdout.splitlines()[-1])["summary"]["outcomes"]["served"] == len(images)


def test_missing_path_is_one_line_exit_2(tmp_path: Path) -> None:
    r = cli("ingest", str(tmp_path / "nope"))
    assert r.returncode == 2 and "no such file or directory" in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr


def test_bad_batch_option_is_rejected(tmp_path: Path) -> None:
    r = cli("ingest", str(EXAMPLES), "--batch", "batch-XYZ")
    assert r.returncode == 2 and "--batch" in r.stderr


def test_prod_needs_the_stage_name(tmp_path: Path) -> None:
    r = cli("ingest", str(EXAMPLES), "--stage", "prod", input="yes\n")
    assert r.returncode == 3 and "not confirmed" in r.stderr


def test_dry_run_on_local_writes_nothing(tmp_path: Path) -> None:
    local = tmp_path / "animl-local"
    r = cli("ingest", str(EXAMPLES), "--dry-run", "--json", env={"ANIML_LOCAL_DIR": str(local)})
    assert r.returncode == 0, r.stderr
    items = [json.loads(x) for x in r.stdout.splitlines()[:-1]]
    assert items and all(i["planned"] for i in items)
    assert not (local / "buckets").exists()


def test_local_stage_batch_zip_in_the_ingestion_bucket_is_unpacked(tmp_path: Path) -> None:
    import zipfile

    local = tmp_path / "animl-local"
    uuid = "0d6c4d5e-1b8a-4c4e-9f55-2a1b3c4d5e6f"
    ingestion = local / "buckets" / "animl-images-ingestion-local"
    ingestion.mkdir(parents=True)
    with zipfile.ZipFile(ingestion / f"batch-{uuid}.zip", "w") as z:
        for p in sorted(EXAMPLES.iterdir()):
            z.write(p, f"site 1/{p.name}")
        z.writestr("../../evil.jpg", b"x")
    r = cli("ingest", "s3://animl-images-ingestion-local/", "--json", env={"ANIML_LOCAL_DIR": str(local)})
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    outcomes = [x["outcome"] for x in lines[:-1]]
    assert outcomes.count("batch-submitted") == 1
    assert outcomes.count("served") == len(list(EXAMPLES.iterdir()))
    assert outcomes.count("skipped") == 1
    assert r.returncode == 0, r.stderr
    assert not any(ingestion.rglob("*.*"))  # the zip and its images are gone from ingestion
    assert not (tmp_path / "evil.jpg").exists()


def _expected_outcome(name: str) -> str:
    """What the corpus oracle says should happen: served when exiftool sees a serial and a date.
    The one accepted difference from exiftool: the Canon maker-note serial is not decoded."""
    if name == "exiftool_canon_makernote_serial.jpg":
        return "dead-lettered"
    path = CORPUS_EXPECTED / f"{name}.json"
    tags: dict = {}
    if path.exists():
        for k, v in json.loads(path.read_text())[0].items():
            tags.setdefault(k.split(":", 1)[-1], v)
    date = str(tags.get("DateTimeOriginal", ""))
    ok = bool(str(tags.get("SerialNumber", "")).strip()) and date and not date.startswith("0000")
    return "served" if ok and tags.get("MIMEType") in ("image/jpeg", "image/png") else "dead-lettered"


@needs_corpus
@pytest.mark.slow
def test_whole_corpus_from_the_ingestion_bucket_against_moto_server(moto_server: str, s3_server,  # noqa: ANN001
                                                                     api_stub) -> None:  # noqa: ANN001
    s3 = s3_server
    ssm = boto3.client("ssm", region_name="us-west-2", endpoint_url=moto_server)
    ssm.put_parameter(Name=f"/api/url-{STAGE}", Value=api_stub.url, Type="String")
    names = sorted(p.name for p in CORPUS_IMAGES.iterdir())
    for n in names:
        s3.put_object(Bucket=BUCKETS["ingestion"], Key=f"cam 1/{n}", Body=(CORPUS_IMAGES / n).read_bytes())
    r = cli("ingest", f"s3://{BUCKETS['ingestion']}/", "--stage", STAGE, "--json", "--concurrency", "4",
            env={"API_KEY": api_stub.api_key, "AWS_ENDPOINT_URL": moto_server})
    assert r.returncode == 1, r.stderr  # some corpus files are meant to be dead-lettered
    assert api_stub.api_key not in r.stdout + r.stderr
    results = {Path(x["key"]).name: x for x in map(json.loads, r.stdout.splitlines()[:-1])}
    assert sorted(results) == names

    def listing(kind: str) -> list[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKETS[kind])
        return [o["Key"] for p in pages for o in p.get("Contents", []) if not o["Key"].startswith(CLAIMS)]

    assert listing("ingestion") == [] and listing("parkinglot") == []
    served, dead = listing("serving"), listing("dead-letter")
    for n in names:
        res = results[n]
        assert res["outcome"] == _expected_outcome(n), (n, res)
        if res["outcome"] == "served":
            ext = res["destinations"][0].rsplit(".", 1)[-1]
            for size in ("original", "medium", "small"):
                key = f"{size}/{res['image_id']}-{size}.{ext}"
                assert key in served
                ctype = s3.head_object(Bucket=BUCKETS["serving"], Key=key)["ContentType"]
                assert ctype == ("image/png" if ext == "png" else "image/jpeg")
        else:
            (dl,) = [k for k in dead if k.endswith("/" + Path(n).stem + Path(n).suffix.lower())]
            meta = s3.head_object(Bucket=BUCKETS["dead-letter"], Key=dl)["Metadata"]
            assert urllib.parse.unquote(meta["original-key"]) == f"cam 1/{n}"
            assert urllib.parse.unquote(meta["original-bucket"]) == BUCKETS["ingestion"]
            assert dl.split("/")[0] == res["reason"]
    assert len(served) == 3 * sum(1 for x in results.values() if x["outcome"] == "served")
    assert len(dead) == sum(1 for x in results.values() if x["outcome"] == "dead-lettered")


def test_redrive_round_trip_on_the_local_stage(tmp_path: Path) -> None:
    """An image with no serial is dead-lettered; redrive sends it back to its original key in the
    ingestion bucket, where the next ingest finds it again."""
    from tests.metadata.builders import camera_jpeg

    local = tmp_path / "animl-local"
    env = {"ANIML_LOCAL_DIR": str(local), "ANIML_STATE_DIR": str(tmp_path / "state")}
    ingestion = local / "buckets" / "animl-images-ingestion-local"
    key = "cam 1/no serial é+1.jpg"
    (ingestion / "cam 1").mkdir(parents=True)
    data = camera_jpeg(serial=None)
    (ingestion / key).write_bytes(data)
    r = cli("ingest", "s3://animl-images-ingestion-local/", "--json", env=env)
    assert r.returncode == 1
    assert json.loads(r.stdout.splitlines()[0])["reason"] == "Unknown Serial Number"
    assert not (ingestion / key).exists()
    r = cli("deadletter", "redrive", "--error", "Unknown Serial Number", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert (ingestion / key).read_bytes() == data
    dead = local / "buckets" / "animl-images-dead-letter-local"
    assert not any(p.is_file() for p in dead.rglob("*"))
    # and from a plain folder: the dead letter goes back to the ingestion bucket, not to a folder bucket
    cards = tmp_path / "cards"
    (cards / "site").mkdir(parents=True)
    (cards / "site" / "IMG_9.JPG").write_bytes(camera_jpeg(serial=None, seed=9))
    assert cli("ingest", str(cards), env=env).returncode == 1
    r = cli("deadletter", "redrive", "--error", "Unknown Serial Number", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert (ingestion / "site" / "IMG_9.JPG").is_file()
    assert (cards / "site" / "IMG_9.JPG").is_file()  # the card itself is never touched
