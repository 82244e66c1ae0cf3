"""The bulk-upload job against moto (S3, SSM, CloudFormation, SQS, Lambda) and the animl-api
stand-in: a full batch, resuming, a failed stack, maintenance, hostile zips."""

from __future__ import annotations

import io
import os
import zipfile
from typing import Any

import boto3
import pytest

from animl_ingest_cli.batchjob import job as jobmod
from animl_ingest_cli.batchjob.job import BatchJob, JobFailed, JobInterrupted, Task
from animl_ingest_cli.context import open_stage
from animl_ingest_cli.errors import InputError
from tests.batchjob.batchstacks import inference_function
from tests.metadata.builders import camera_jpeg

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS", "ignore:Duplicate name")

STAGE = "dev"
BUCKETS = {k: f"animl-images-{k}-{STAGE}" for k in ("ingestion", "serving", "dead-letter", "parkinglot")}
BATCH = "batch-0d6c4d5e-1b8a-4c4e-9f55-2a1b3c4d5e6f"
ZIP = BATCH + ".zip"
ING = BUCKETS["ingestion"]


def image(n: int) -> bytes:
    return camera_jpeg(size=(48, 32), seed=n) + b"\xff\xfe" + n.to_bytes(4, "big")


@pytest.fixture
def world(aws_mock, api_stub, monkeypatch) -> dict[str, Any]:  # noqa: ANN001
    s3 = boto3.client("s3", region_name="us-west-2")
    for name in BUCKETS.values():
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    s3.put_bucket_versioning(Bucket=ING, VersioningConfiguration={"Status": "Enabled"})
    ssm = boto3.client("ssm", region_name="us-west-2")
    ssm.put_parameter(Name=f"/api/url-{STAGE}", Value=api_stub.url, Type="String")
    monkeypatch.setenv("API_KEY", api_stub.api_key)
    inference_function()
    cfn = boto3.client("cloudformation", region_name="us-west-2")
    return {"s3": s3, "ssm": ssm, "stub": api_stub, "cfn": cfn}


def make_zip(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


def job(world: dict[str, Any], **kw: Any) -> BatchJob:
    ctx = open_stage(STAGE)
    kw.setdefault("stack_poll", 0.01)
    kw.setdefault("workers", 4)
    return BatchJob(ctx, world["stub"].client(), ctx.store("ingestion"), ZIP, BATCH, **kw)


def versions(s3: Any, prefix: str = BATCH + "/") -> dict[str, int]:
    """key -> how many times it was written (object versions, delete markers aside)."""
    out: dict[str, int] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=ING, Prefix=prefix):
        for v in page.get("Versions", []):
            if f"/{jobmod.PROGRESS}/" not in v["Key"]:
                out[v["Key"]] = out.get(v["Key"], 0) + 1
    return out


def live(s3: Any, bucket: str = ING) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def updates(stub: Any) -> list[dict[str, Any]]:
    return [r.input for r in stub.calls("updateBatch")]


def batch_errors(stub: Any) -> list[str]:
    return [r.input["error"] for r in stub.calls("createBatchError")]


def test_a_full_batch(world: dict[str, Any]) -> None:
    big = os.urandom(9 << 20)  # over the single-PUT size: written in parts
    entries = [(f"site {i // 10}/cam+{i % 3}/IMG_{i:04d}.JPG", image(i)) for i in range(40)]
    entries += [("./DCIM/100/IMG_0001.JPG", image(100)), ("site 0/cam+0/IMG_0000.JPG", image(101)),
                ("site 0/cam+0/IMG_0003.JPG", image(3)),  # same bytes again: written once
                ("big/pano.jpg", big), ("site 0/.DS_Store", b"x"), ("__MACOSX/site 0/._IMG.JPG", b"x"),
                ("notes.txt", b"hello"), ("ünï/☃ 1.png", image(102))]
    world["s3"].put_object(Bucket=ING, Key=ZIP, Body=make_zip(entries))
    r = job(world).run()

    expected = {f"{BATCH}/site {i // 10}/cam+{i % 3}/IMG_{i:04d}.JPG" for i in range(40)}
    expected |= {f"{BATCH}/DCIM/100/IMG_0001.JPG", f"{BATCH}/site 0/cam+0/IMG_0000-2.JPG",
                 f"{BATCH}/big/pano.jpg", f"{BATCH}/ünï/☃ 1.png"}
    s3 = world["s3"]
    assert set(live(s3)) == expected  # the zip is gone, and the progress journal
    assert all(n == 1 for n in versions(s3).values()) and set(versions(s3)) == expected
    assert s3.get_object(Bucket=ING, Key=f"{BATCH}/big/pano.jpg")["Body"].read() == big
    got = s3.get_object(Bucket=ING, Key=f"{BATCH}/site 0/cam+0/IMG_0000-2.JPG")
    assert got["Body"].read() == image(101) and got["ContentType"] == "image/jpeg"
    assert s3.head_object(Bucket=ING, Key=f"{BATCH}/ünï/☃ 1.png")["ContentType"] == "image/png"
    assert r.total == len(expected) == 44 and r.zip_deleted and r.stack_created

    ups = updates(world["stub"])
    assert [sorted(u) for u in ups] == [["_id", "total", "uploadComplete"], ["_id", "processingStart"],
                                        ["_id", "ingestionComplete"]]
    assert ups[0]["total"] == 44 and all(u["_id"] == BATCH for u in ups)
    assert ups[0]["uploadComplete"] <= ups[1]["processingStart"] <= ups[2]["ingestionComplete"]
    errors = batch_errors(world["stub"])
    assert len(errors) == 5  # renamed, identical, hidden, __MACOSX, unsupported: one per kind
    assert any("site 0/cam+0/IMG_0000.JPG -> site 0/cam+0/IMG_0000-2.JPG" in e for e in errors)
    assert any(e.startswith("1 zip entry skipped: unsupported file type: notes.txt") for e in errors)
    # the order the Node job kept: counted, reported, stack ready, written, done
    kinds = [(q.mutation, sorted(q.input)) for q in world["stub"].requests]
    assert kinds[0] == ("updateBatch", ["_id", "total", "uploadComplete"])
    assert [k for k, _ in kinds[1:6]] == ["createBatchError"] * 5
    status = world["cfn"].describe_stacks(StackName=f"animl-ingest-dev-{BATCH}")["Stacks"][0]["StackStatus"]
    assert status == "CREATE_COMPLETE"


def test_a_rerun_skips_what_was_written_even_once_consumed(world: dict[str, Any], monkeypatch) -> None:  # noqa: ANN001
    """Stopped half-way (a SIGTERM), the ingest function then consumes (deletes) what was written;
    the rerun writes only the rest, and never creates the stack or counts the batch twice."""
    entries = [(f"cam/IMG_{i:04d}.JPG", image(i)) for i in range(30)]
    world["s3"].put_object(Bucket=ING, Key=ZIP, Body=make_zip(entries))
    first = job(world, workers=2)
    real_put = jobmod.S3Target.put_new
    count = [0]

    def put_then_stop(self, *a, **kw):  # noqa: ANN001, ANN002, ANN003
        count[0] += 1
        if count[0] == 12:
            first.stop("SIGTERM")
        return real_put(self, *a, **kw)

    monkeypatch.setattr(jobmod.S3Target, "put_new", put_then_stop)
    with pytest.raises(JobInterrupted, match="a rerun resumes"):
        first.run()
    monkeypatch.setattr(jobmod.S3Target, "put_new", real_put)
    s3 = world["s3"]
    written = [k for k in live(s3) if k.startswith(BATCH + "/cam/")]
    assert 12 <= len(written) < 30 and ZIP in live(s3)
    for k in written:  # the ingest function consumed them
        s3.delete_object(Bucket=ING, Key=k)
    assert "stopped (SIGTERM)" in batch_errors(world["stub"])[-1]

    r = job(world).run()
    assert r.resumed == len(written) and r.zip_deleted and not r.stack_created
    v = versions(s3, BATCH + "/cam/")
    assert sorted(v) == sorted(f"{BATCH}/{n}" for n, _ in entries)  # none missing
    assert set(v.values()) == {1}  # none written twice
    ups = updates(world["stub"])
    assert [sorted(u) for u in ups] == [["_id", "total", "uploadComplete"], ["_id", "processingStart"],
                                        ["_id", "ingestionComplete"]]
    assert live(s3) == sorted(k for k in v if k not in written)


def test_an_entry_written_but_not_journalled_is_recognised(world: dict[str, Any]) -> None:
    """A kill between a write and its journal entry: the rerun's conditional write finds the object
    (412), sees the same size and CRC, and counts it written instead of writing it again."""
    entries = [("a.jpg", image(1)), ("b.jpg", image(2))]
    s3 = world["s3"]
    s3.put_object(Bucket=ING, Key=ZIP, Body=make_zip(entries))
    info = zipfile.ZipFile(io.BytesIO(make_zip(entries))).getinfo("a.jpg")
    s3.put_object(Bucket=ING, Key=f"{BATCH}/a.jpg", Body=image(1),
                  Metadata={jobmod.CRC_META: f"{info.CRC:08x}"})
    r = job(world).run()
    assert r.present == 1 and versions(s3) == {f"{BATCH}/a.jpg": 1, f"{BATCH}/b.jpg": 1}


def test_another_object_under_an_entry_key_is_never_overwritten(world: dict[str, Any]) -> None:
    s3 = world["s3"]
    s3.put_object(Bucket=ING, Key=ZIP, Body=make_zip([("a.jpg", image(1)), ("b.jpg", image(2))]))
    s3.put_object(Bucket=ING, Key=f"{BATCH}/a.jpg", Body=b"someone else's")
    with pytest.raises(JobFailed, match="1 of 2 images could not be written, so the zip is kept"):
        job(world).run()
    assert s3.get_object(Bucket=ING, Key=f"{BATCH}/a.jpg")["Body"].read() == b"someone else's"
    assert ZIP in live(s3) and f"{BATCH}/b.jpg" in live(s3)
    assert "holds another object" in batch_errors(world["stub"])[-1]
    assert not any("ingestionComplete" in u for u in updates(world["stub"]))


def test_a_failed_stack_ends_the_job(world: dict[str, Any]) -> None:
    """No batchinference function: moto fails the event-source mapping and leaves the stack
    CREATE_IN_PROGRESS; the wait times out, the batch error says why, nothing is written."""
    boto3.client("lambda", region_name="us-west-2").delete_function(
        FunctionName="animl-api-dev-batchinference")
    s3 = world["s3"]
    s3.put_object(Bucket=ING, Key=ZIP, Body=make_zip([("a.jpg", image(1))]))
    with pytest.raises(JobFailed, match="still CREATE_IN_PROGRESS"):
        job(world, stack_timeout=0.3).run()
    assert [sorted(u) for u in updates(world["stub"])] == [["_id", "total", "uploadComplete"]]
    assert "Function not found" in batch_errors(world["stub"])[-1]
    assert [k for k in live(s3) if not k.startswith(f"{BATCH}/.animl-progress/")] == [ZIP]


def test_maintenance_parks_the_zip_and_does_nothing_else(world: dict[str, Any]) -> None:
    world["ssm"].put_parameter(Name=f"/images/maintenance-mode-{STAGE}", Value="true", Type="String")
    data = make_zip([("a.jpg", image(1))])
    world["s3"].put_object(Bucket=ING, Key=ZIP, Body=data)
    r = job(world).run()
    assert r.parked and live(world["s3"]) == []
    parked = world["s3"].get_object(Bucket=BUCKETS["parkinglot"], Key=ZIP)
    assert parked["Body"].read() == data and parked["ContentType"] == "application/zip"
    assert world["stub"].requests == [] and world["cfn"].describe_stacks()["Stacks"] == []


def test_a_zip_with_no_images_makes_no_stack(world: dict[str, Any]) -> None:
    world["s3"].put_object(Bucket=ING, Key=ZIP, Body=make_zip([("readme.txt", b"x"), ("d/", b"")]))
    r = job(world).run()
    assert r.total == 0 and r.zip_deleted and live(world["s3"]) == []
    ups = updates(world["stub"])
    assert sorted(ups[0]) == ["_id", "processingEnd", "processingStart", "total", "uploadComplete"]
    assert ups[0]["total"] == 0 and sorted(ups[-1]) == ["_id", "ingestionComplete"]
    assert world["cfn"].describe_stacks()["Stacks"] == []


def test_a_lying_entry_keeps_the_zip_and_the_rerun_retries_only_it(world: dict[str, Any]) -> None:
    """An entry claiming 4 KB that inflates to 1 GiB: reading stops at 4 KB and its CRC fails; the
    other entries are written, the zip is kept, and a rerun writes nothing twice."""
    from tests.reliability.hostile import bomb_zip

    good = make_zip([("site/good.jpg", image(5)), ("site/other.jpg", image(6))])
    s3 = world["s3"]
    s3.put_object(Bucket=ING, Key=ZIP, Body=_concat_zips(bomb_zip("site/liar.jpg", gib=1, lie=True), good))
    with pytest.raises(JobFailed, match="1 of 3 images could not be written"):
        job(world).run()
    assert ZIP in live(s3) and f"{BATCH}/site/good.jpg" in live(s3)
    assert "site/liar.jpg" in batch_errors(world["stub"])[-1]
    with pytest.raises(JobFailed):
        job(world).run()
    assert versions(s3) == {f"{BATCH}/site/good.jpg": 1, f"{BATCH}/site/other.jpg": 1}


def _concat_zips(a: bytes, b: bytes) -> bytes:
    """One zip holding the entries of two (central directories merged, offsets shifted)."""
    za, zb = zipfile.ZipFile(io.BytesIO(a)), zipfile.ZipFile(io.BytesIO(b))
    body_a, body_b = a[:za.start_dir], b[:zb.start_dir]
    cd_a = a[za.start_dir:za.start_dir + (len(a) - za.start_dir - 22)]
    cd_b = bytearray(b[zb.start_dir:len(b) - 22])
    pos = 0
    for _ in zb.infolist():  # shift each central header's local-header offset by len(body_a)
        name_len, extra_len, comment_len = (int.from_bytes(cd_b[pos + k:pos + k + 2], "little")
                                            for k in (28, 30, 32))
        off = int.from_bytes(cd_b[pos + 42:pos + 46], "little") + len(body_a)
        cd_b[pos + 42:pos + 46] = off.to_bytes(4, "little")
        pos += 46 + name_len + extra_len + comment_len
    n = len(za.infolist()) + len(zb.infolist())
    cd = cd_a + bytes(cd_b)
    start = len(body_a) + len(body_b)
    eocd = (b"PK\x05\x06" + bytes(4) + n.to_bytes(2, "little") * 2 + len(cd).to_bytes(4, "little")
            + start.to_bytes(4, "little") + bytes(2))
    return body_a + body_b + cd + eocd


def test_a_zip_gone_after_a_finished_extraction_is_finished(world: dict[str, Any]) -> None:
    s3 = world["s3"]
    s3.put_object(Bucket=ING, Key=ZIP, Body=make_zip([("a.jpg", image(1))]))
    j = job(world)
    real = j._update

    def die_on_complete(**fields: Any) -> None:
        if "ingestionComplete" in fields:
            raise KeyboardInterrupt  # killed after the zip was deleted, before its last update
        real(**fields)

    j._update = die_on_complete  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        j.run()
    assert ZIP not in live(s3)
    r = job(world).run()
    assert r.zip_deleted and sorted(updates(world["stub"])[-1]) == ["_id", "ingestionComplete"]
    assert live(s3) == [f"{BATCH}/a.jpg"]  # the journal is gone too


def test_a_zip_that_is_not_there_is_a_batch_error(world: dict[str, Any]) -> None:
    with pytest.raises(JobFailed, match="no such zip"):
        job(world).run()
    assert batch_errors(world["stub"]) == [f"no such zip: s3://{ING}/{ZIP}"]


def test_not_a_zip_is_a_batch_error_and_stays(world: dict[str, Any]) -> None:
    world["s3"].put_object(Bucket=ING, Key=ZIP, Body=b"PK\x03\x04 not really")
    with pytest.raises(JobFailed, match="not a readable zip file"):
        job(world).run()
    assert live(world["s3"]) == [ZIP]


@pytest.mark.parametrize("text,message", [
    (None, "no TASK"), ("{", "TASK is not JSON"), ('{"Bucket": 1}', "Bucket and Key"),
    ('{"Bucket": "b", "Key": "batch-x.zip"}', "batch-<uuid>.zip"),
    ('{"Bucket": "b", "Key": "batch-0d6c4d5e-1b8a-4c4e-9f55-2a1b3c4d5e6f/a.zip"}', "batch-<uuid>.zip")])
def test_a_bad_task_is_refused(text: str | None, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Task.parse(text)
    assert Task.parse(f'{{"Bucket": "b", "Key": "{ZIP}", "errors": []}}') == Task("b", ZIP, BATCH)
