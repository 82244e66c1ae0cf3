"""The core ingest function against moto (S3, SSM, Batch) and the animl-api stand-in on loopback."""

from __future__ import annotations

import io
import json
import os
import urllib.parse
import zipfile

import boto3
import pytest
from PIL import Image

from animl_ingest_cli import keys
from animl_ingest_cli.api import GraphQLApi
from animl_ingest_cli.claims import PREFIX as CLAIMS
from animl_ingest_cli.context import open_stage
from animl_ingest_cli.ingest import (
    BATCH_SUBMITTED,
    DEAD_LETTERED,
    FAILED,
    PARKED,
    SERVED,
    SKIPPED,
    Ingestor,
    dead_letter_metadata,
)
from tests.awsfixtures import BUCKETS, STAGE
from tests.conftest import CORPUS_IMAGES, EXAMPLES, needs_corpus
from tests.metadata.builders import camera_jpeg

UUID = "0d6c4d5e-1b8a-4c4e-9f55-2a1b3c4d5e6f"
RECONYX = EXAMPLES / "reconyx_hc500_hyperfire_channel_islands.jpg"


def ingestor(stage, **kw) -> Ingestor:  # noqa: ANN001
    api = GraphQLApi(kw.pop("url", None) or stage.params.get(f"/api/url-{STAGE}").value,
                     kw.pop("api_key", None) or os.environ["API_KEY"],
                     timeout=kw.pop("timeout", 2.0), backoff=0.01, max_attempts=kw.pop("attempts", 2))
    return Ingestor(stage, api, **kw)


def last_md(stub) -> dict:  # noqa: ANN001
    return stub.calls("createImage")[-1].input["md"]


def put(s3, key: str, data: bytes, bucket: str = BUCKETS["ingestion"]) -> None:  # noqa: ANN001
    s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="binary/octet-stream")


def keys_in(s3, kind: str) -> list[str]:  # noqa: ANN001
    r = s3.list_objects_v2(Bucket=BUCKETS[kind])
    return sorted(o["Key"] for o in r.get("Contents", []) if not o["Key"].startswith(CLAIMS))


def run_one(stage, s3, key: str, data: bytes, **kw):  # noqa: ANN001
    put(s3, key, data)
    ing = ingestor(stage, **kw)
    (out,) = ing.process(stage.store("ingestion"), key, delete_source=True)
    return out


# --- outcomes ----------------------------------------------------------------------------------------

def test_served_image_has_three_copies_right_types_and_source_removed(stage, s3, api_stub) -> None:  # noqa: ANN001
    data = camera_jpeg(size=(2000, 1500))
    out = run_one(stage, s3, "IMG_0001.JPG", data)
    assert out.outcome == SERVED and out.complete, out
    image_id = out.image_id
    assert image_id and image_id.endswith(":" + __import__("hashlib").md5(data).hexdigest())
    served = keys_in(s3, "serving")
    assert served == sorted(keys.serving_keys(image_id, "jpg").values())
    assert keys_in(s3, "ingestion") == []
    for k in served:
        head = s3.head_object(Bucket=BUCKETS["serving"], Key=k)
        assert head["ContentType"] == "image/jpeg"  # FIX: REPLACE, not the source's type
    orig = s3.get_object(Bucket=BUCKETS["serving"], Key=keys.serving_key("original", image_id, "jpg"))
    assert orig["Body"].read() == data
    medium = Image.open(io.BytesIO(s3.get_object(
        Bucket=BUCKETS["serving"], Key=keys.serving_key("medium", image_id, "jpg"))["Body"].read()))
    small = Image.open(io.BytesIO(s3.get_object(
        Bucket=BUCKETS["serving"], Key=keys.serving_key("small", image_id, "jpg"))["Body"].read()))
    assert medium.format == small.format == "JPEG"
    assert medium.size == (940, 705) and small.size == (120, 90)
    md = last_md(api_stub)
    assert md["FileName"] == "IMG_0001.jpg" and md["Key"] == "IMG_0001.JPG"
    assert md["SerialNumber"] == "CAM-1" and md["DateTimeOriginal"] == "2024-05-06T07:08:09.000Z"
    assert md["batchId"] is None and md["Path"] is None and md["ProdBucket"] == BUCKETS["serving"]


@pytest.mark.parametrize("serial,date,folder", [
    (None, "2024:05:06 07:08:09", "Unknown Serial Number"),
    ("CAM-1", None, "Unknown DateTimeOriginal"),
    ("CAM-1", "0000:00:00 00:00:00", "Unknown DateTimeOriginal"),
    (None, None, "MULTIPLE_ERRORS"),
])
def test_api_validation_errors_dead_letter_with_metadata(stage, s3, serial, date, folder) -> None:  # noqa: ANN001
    out = run_one(stage, s3, "trail cam+1 é.jpg", camera_jpeg(serial, date))
    assert out.outcome == DEAD_LETTERED and out.reason == folder
    (dl_key,) = keys_in(s3, "dead-letter")
    assert dl_key.startswith(f"{folder}/") and dl_key.endswith("/trail cam+1 é.jpg")
    head = s3.head_object(Bucket=BUCKETS["dead-letter"], Key=dl_key)
    meta = {k: urllib.parse.unquote(v) for k, v in head["Metadata"].items()}
    assert meta["original-bucket"] == BUCKETS["ingestion"]
    assert meta["original-key"] == "trail cam+1 é.jpg"
    assert meta["image-id"] == dl_key.split("/")[1]
    assert "batch-id" not in meta
    assert head["ContentType"] == "image/jpeg"
    assert keys_in(s3, "ingestion") == [] and keys_in(s3, "serving") == []


def test_text_named_jpg_is_dead_lettered_with_its_corrupt_error(stage, s3, api_stub) -> None:  # noqa: ANN001
    out = run_one(stage, s3, "notes.jpg", b"this is not an image\njust text\n")
    # no serial and no date either: the API answers three errors
    assert out.outcome == DEAD_LETTERED and out.reason == "MULTIPLE_ERRORS"
    assert any("corrupt" in e for e in last_md(api_stub)["errors"])


def test_undecodable_image_after_the_record_goes_to_corrupted_image_file(stage, s3, api_stub) -> None:  # noqa: ANN001
    data = bytearray(camera_jpeg())
    sof = data.index(b"\xff\xc0")
    data[sof + 9] = 7  # seven colour components: the header reads, the decoder refuses
    out = run_one(stage, s3, "broken.jpg", bytes(data))
    assert out.outcome == DEAD_LETTERED and out.reason == "CORRUPTED_IMAGE_FILE", out
    assert out.image_id and api_stub.calls("createImageError")
    assert keys_in(s3, "dead-letter")[0].startswith(f"CORRUPTED_IMAGE_FILE/{out.image_id}/")
    assert keys_in(s3, "serving") == []


def test_duplicate_of_a_served_image_is_dead_lettered(stage, s3) -> None:  # noqa: ANN001
    data = camera_jpeg()
    assert run_one(stage, s3, "a.jpg", data).outcome == SERVED
    out = run_one(stage, s3, "copy of a.jpg", data)
    assert out.outcome == DEAD_LETTERED and out.reason == "DUPLICATE_IMAGE"
    assert len(keys_in(s3, "serving")) == 3


def test_dead_letters_are_never_overwritten(stage, s3) -> None:  # noqa: ANN001
    put(s3, "x/IMG.jpg", camera_jpeg(None, seed=2))
    put(s3, "y/IMG.jpg", camera_jpeg(None, seed=3))
    ing = ingestor(stage)
    for key in ("x/IMG.jpg", "y/IMG.jpg"):
        ing.process(stage.store("ingestion"), key, delete_source=True)
    dls = keys_in(s3, "dead-letter")
    # Two different images: two image ids, so no clash; now force one by the same folder/id/name.
    assert len(dls) == 2
    first = dls[0]
    folder, image_id, name = first.split("/")
    put(s3, "z/IMG.jpg", b"other")
    src, store = stage.store("ingestion"), stage.store("dead-letter")

    def place(key: str, data: bytes) -> str:
        etag = s3.head_object(Bucket=BUCKETS["ingestion"], Key=key)["ETag"].strip('"')
        meta = dead_letter_metadata(BUCKETS["ingestion"], key, "e", image_id, None)
        return Ingestor._place_dead_letter(store, src, key, data, etag, None, folder, image_id, name,
                                           BUCKETS["ingestion"], key, "image/jpeg", meta)

    assert place("z/IMG.jpg", b"other") == f"{folder}/{image_id}/IMG-2.jpg"
    # The same object coming back (a rerun) reuses its own key...
    original_key = urllib.parse.unquote(s3.head_object(Bucket=BUCKETS["dead-letter"], Key=first)
                                        ["Metadata"]["original-key"])
    data = s3.get_object(Bucket=BUCKETS["dead-letter"], Key=first)["Body"].read()
    put(s3, original_key, data)
    assert place(original_key, data) == first
    # ...but other bytes under that same original key are another image: a key of their own.
    put(s3, original_key, camera_jpeg(None, seed=9))
    assert place(original_key, camera_jpeg(None, seed=9)) == f"{folder}/{image_id}/IMG-3.jpg"
    assert len(keys_in(s3, "dead-letter")) == 4


def test_dead_letter_error_metadata_is_cut_to_2kb_but_key_is_not() -> None:
    key = "k" * 900
    meta = dead_letter_metadata("bucket", key, "é" * 5000, None, f"batch-{UUID}")
    assert urllib.parse.unquote(meta["original-key"]) == key
    assert sum(len(k) + len(v) for k, v in meta.items()) <= 2048
    assert urllib.parse.unquote(meta["error"]).startswith("é")
    assert all(v.isascii() for v in meta.values())


def test_unsupported_file_is_skipped_and_left(stage, s3) -> None:  # noqa: ANN001
    out = run_one(stage, s3, "readme.txt", b"hello")
    assert out.outcome == SKIPPED and keys_in(s3, "ingestion") == ["readme.txt"]


# --- awkward keys and batches --------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["with space.JPG", "plus+sign.jpg", "percent%41.jpeg", "ünïcødé ☃.png",
                                 f"batch-{UUID}/site A/cam+1/IMG 1.JPG"])
def test_awkward_keys_through_the_lambda_handler(stage, s3, api_stub, key, monkeypatch) -> None:  # noqa: ANN001
    from animl_ingest_cli import lambda_handler

    monkeypatch.setenv("STAGE", STAGE)
    monkeypatch.setattr(lambda_handler, "_ctx", None)
    if key.endswith(".png"):
        buf = io.BytesIO()
        img = Image.new("RGB", (300, 200), "green")
        exif = img.getexif()
        exif[0x010F] = "PNGCAM"
        img.save(buf, "PNG", exif=exif)
        data = buf.getvalue()
    else:
        data = camera_jpeg(seed=len(key))
    put(s3, key, data)
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": BUCKETS["ingestion"]},
                                 "object": {"key": urllib.parse.quote_plus(key, safe="/")}}}]}
    summary = lambda_handler.handler(event, None)
    (result,) = summary["results"]
    assert result["key"] == key
    assert keys_in(s3, "ingestion") == []
    md = last_md(api_stub)
    assert md["Key"] == key
    if key.startswith("batch-"):
        assert md["batchId"] == f"batch-{UUID}" and md["Path"] == "site A/cam+1/IMG 1.JPG"
        assert md["FileName"] == "IMG 1.jpg"
    if key.endswith(".png"):
        assert result["outcome"] == DEAD_LETTERED  # no serial, no date: but a PNG all the way
        assert keys_in(s3, "dead-letter")[0].endswith(".png")
    else:
        assert result["outcome"] == SERVED


def test_handler_ignores_other_events_and_raises_when_unaccounted(stage, s3, monkeypatch) -> None:  # noqa: ANN001
    from animl_ingest_cli import lambda_handler

    monkeypatch.setenv("STAGE", STAGE)
    monkeypatch.setattr(lambda_handler, "_ctx", None)
    put(s3, "a.jpg", camera_jpeg(None))
    s3.delete_bucket(Bucket=BUCKETS["dead-letter"])  # the dead-letter copy will fail
    event = {"Records": [
        {"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete",
         "s3": {"bucket": {"name": BUCKETS["ingestion"]}, "object": {"key": "gone.jpg"}}},
        {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
         "s3": {"bucket": {"name": BUCKETS["ingestion"]}, "object": {"key": "a.jpg"}}}]}
    with pytest.raises(lambda_handler.UnaccountedObjects, match="1 object"):
        lambda_handler.handler(event, None)
    assert keys_in(s3, "ingestion") == ["a.jpg"]  # the source stays when no copy could be made


# --- maintenance and zips ----------------------------------------------------------------------------

def test_maintenance_parks_images_and_zips_under_the_same_key(stage, s3, ssm) -> None:  # noqa: ANN001
    ssm.put_parameter(Name=f"/images/maintenance-mode-{STAGE}", Value="true", Type="String")
    ing = ingestor(stage)
    zip_key = f"batch-{UUID}.zip"
    for key, data in ((f"batch-{UUID}/a b.jpg", camera_jpeg()), (zip_key, b"PK\x05\x06" + b"\0" * 18)):
        put(s3, key, data)
        (out,) = ing.process(stage.store("ingestion"), key, delete_source=True)
        assert out.outcome == PARKED
    assert keys_in(s3, "parkinglot") == sorted([f"batch-{UUID}/a b.jpg", zip_key])
    assert keys_in(s3, "ingestion") == []
    head = s3.head_object(Bucket=BUCKETS["parkinglot"], Key=zip_key)
    assert head["ContentType"] == "application/zip"


def test_zip_is_submitted_to_aws_batch(stage, s3, ssm) -> None:  # noqa: ANN001
    iam = boto3.client("iam", region_name="us-west-2")
    role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    batch = boto3.client("batch", region_name="us-west-2")
    ec2 = boto3.client("ec2", region_name="us-west-2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="b", Description="b", VpcId=vpc)["GroupId"]
    env = batch.create_compute_environment(
        computeEnvironmentName="animl-ce", type="MANAGED", state="ENABLED", serviceRole=role,
        computeResources={"type": "FARGATE", "maxvCpus": 4, "subnets": [subnet], "securityGroupIds": [sg]})
    order = [{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}]
    queue = batch.create_job_queue(jobQueueName="animl-q", state="ENABLED", priority=1,
                                   computeEnvironmentOrder=order)
    jobdef = batch.register_job_definition(jobDefinitionName="unzip", type="container",
                                           containerProperties={"image": "busybox", "vcpus": 1,
                                                                "memory": 128})
    ssm.put_parameter(Name=f"/images/batch-queue-{STAGE}", Value=queue["jobQueueArn"], Type="String")
    ssm.put_parameter(Name=f"/images/batch-job-{STAGE}", Value=jobdef["jobDefinitionArn"], Type="String")
    out = run_one(stage, s3, f"batch-{UUID}.zip", b"PK\x05\x06" + b"\0" * 18)
    assert out.outcome == BATCH_SUBMITTED and out.reason.startswith("AWS Batch job ")
    job_id = out.reason.rsplit(" ", 1)[-1]
    job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
    task = json.loads({e["name"]: e["value"] for e in job["container"]["environment"]}["TASK"])
    assert task["Key"] == f"batch-{UUID}.zip" and task["batchId"] == f"batch-{UUID}"
    assert keys_in(s3, "ingestion") == [f"batch-{UUID}.zip"]  # the batch job unpacks and deletes it


def test_zip_without_batch_configuration_fails_and_stays(stage, s3) -> None:  # noqa: ANN001
    out = run_one(stage, s3, f"batch-{UUID}.zip", b"PK\x05\x06" + b"\0" * 18)
    assert out.outcome == FAILED and "batch-queue" in out.error
    assert keys_in(s3, "ingestion") == [f"batch-{UUID}.zip"]


# --- failure paths of docs/animl.md (The rule every path serves) ------------------------------

def test_api_forbidden_dead_letters_under_its_message_with_unknown_id(stage, s3) -> None:  # noqa: ANN001
    out = run_one(stage, s3, "a.jpg", camera_jpeg(), api_key="wrong-key")
    assert out.outcome == DEAD_LETTERED and out.reason == "Forbidden"
    assert keys_in(s3, "dead-letter") == ["Forbidden/UNKNOWN_ID/a.jpg"]


def test_api_failing_after_retries_dead_letters_with_unknown_id(stage, s3, api_stub) -> None:  # noqa: ANN001
    api_stub.fail(500, times=10)
    out = run_one(stage, s3, "a.jpg", camera_jpeg())
    assert out.outcome == DEAD_LETTERED and out.image_id is None
    assert keys_in(s3, "dead-letter")[0].split("/")[1] == "UNKNOWN_ID"
    assert keys_in(s3, "ingestion") == []


def test_api_recovering_within_retries_serves(stage, s3, api_stub) -> None:  # noqa: ANN001
    api_stub.fail(503, times=1)
    out = run_one(stage, s3, "a.jpg", camera_jpeg(), attempts=3)
    assert out.outcome == SERVED


def test_timeout_after_record_created_is_healed_by_the_rerun(stage, s3, api_stub) -> None:  # noqa: ANN001
    """The API created the record but the answer never came; the source stays in the ingestion bucket
    only if we crash — here the retries are spent and the image is dead-lettered; redriving it (put
    back at its key) gives DUPLICATE_IMAGE with no serving copies, which means: make them."""
    data = camera_jpeg()
    api_stub.record_then_fail(500)
    first = run_one(stage, s3, "a.jpg", data, attempts=1)
    assert first.outcome == DEAD_LETTERED and keys_in(s3, "serving") == []
    # redrive: back to its original key
    (dl,) = keys_in(s3, "dead-letter")
    s3.copy_object(Bucket=BUCKETS["ingestion"], Key="a.jpg",
                   CopySource={"Bucket": BUCKETS["dead-letter"], "Key": dl})
    s3.delete_object(Bucket=BUCKETS["dead-letter"], Key=dl)
    (again,) = ingestor(stage).process(stage.store("ingestion"), "a.jpg", delete_source=True)
    assert again.outcome == SERVED and again.healed
    assert len(keys_in(s3, "serving")) == 3 and keys_in(s3, "ingestion") == []


def test_crash_after_serving_before_delete_is_completed_by_rerun(stage, s3) -> None:  # noqa: ANN001
    data = camera_jpeg()
    put(s3, "a.jpg", data)
    ing = ingestor(stage)
    src = stage.store("ingestion")
    # simulate: the copies are made but the process dies before deleting the source
    (first,) = ing.process(src, "a.jpg", delete_source=False)
    assert first.outcome == SERVED and keys_in(s3, "ingestion") == ["a.jpg"]
    (rerun,) = ing.process(src, "a.jpg", delete_source=True)
    assert rerun.outcome == SERVED and rerun.healed
    assert keys_in(s3, "ingestion") == [] and keys_in(s3, "dead-letter") == []


def test_serving_failure_reports_image_error_with_batch_and_dead_letters(stage, s3, api_stub) -> None:  # noqa: ANN001
    s3.delete_bucket(Bucket=BUCKETS["serving"])
    key = f"batch-{UUID}/IMG.jpg"
    out = run_one(stage, s3, key, camera_jpeg())
    assert out.outcome == DEAD_LETTERED and out.image_id
    errors = [r.input for r in api_stub.calls("createImageError")]
    assert errors and errors[-1]["batch"] == f"batch-{UUID}" and errors[-1]["image"] == out.image_id
    (dl,) = keys_in(s3, "dead-letter")
    assert dl.split("/")[1] == out.image_id
    meta = s3.head_object(Bucket=BUCKETS["dead-letter"], Key=dl)["Metadata"]
    assert urllib.parse.unquote(meta["batch-id"]) == f"batch-{UUID}"


def test_wireless_image_error_report_is_accepted_by_the_api(stage, s3, api_stub) -> None:  # noqa: ANN001
    """FIX: the Node code sent no batch for wireless images and the API answered 400."""
    s3.delete_bucket(Bucket=BUCKETS["serving"])
    out = run_one(stage, s3, "IMG.jpg", camera_jpeg())
    assert out.outcome == DEAD_LETTERED
    assert [r.status for r in api_stub.calls("createImageError")] == [200]
    assert api_stub.calls("createImageError")[0].input["batch"] == ""


def test_rejected_image_error_report_never_blocks_the_dead_letter_copy(stage, s3, api_stub) -> None:  # noqa: ANN001
    s3.delete_bucket(Bucket=BUCKETS["serving"])
    api_stub.fail(400, times=10, mutation="createImageError")
    out = run_one(stage, s3, "IMG.jpg", camera_jpeg())
    assert out.outcome == DEAD_LETTERED and len(keys_in(s3, "dead-letter")) == 1


def test_s3_failure_while_dead_lettering_keeps_the_source(stage, s3) -> None:  # noqa: ANN001
    s3.delete_bucket(Bucket=BUCKETS["dead-letter"])
    out = run_one(stage, s3, "IMG.jpg", camera_jpeg(None))
    assert out.outcome == FAILED and not out.complete and "dead-letter" in out.error
    assert keys_in(s3, "ingestion") == ["IMG.jpg"]


@needs_corpus
def test_truncated_camera_jpeg_is_served(stage, s3) -> None:  # noqa: ANN001
    data = (CORPUS_IMAGES / "adv_truncated_scan_data.jpg").read_bytes()
    out = run_one(stage, s3, "trunc.jpg", data)
    assert out.outcome == SERVED, out


# --- local sources ----------------------------------------------------------------------------------

def test_local_folder_source_is_never_deleted(stage, s3, tmp_path) -> None:  # noqa: ANN001
    from animl_ingest_cli.sources import iter_work, parse_sources

    folder = tmp_path / "cards"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.JPG").write_bytes(camera_jpeg(seed=5))
    (folder / ".hidden.jpg").write_bytes(camera_jpeg(seed=6))
    ing = ingestor(stage)
    items = list(iter_work(stage, parse_sources([str(folder)])))
    assert [i.key for i in items] == ["sub/a.JPG"]
    (out,) = ing.process(items[0].store, items[0].key, delete_source=items[0].delete_source)
    assert out.outcome == SERVED
    assert (folder / "sub" / "a.JPG").exists()


def test_local_zip_is_read_safely(stage, s3, tmp_path, api_stub) -> None:  # noqa: ANN001
    from animl_ingest_cli.sources import iter_work, parse_sources

    zpath = tmp_path / "upload.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("cam/IMG_1.JPG", camera_jpeg(seed=7))
        z.writestr("../escape.jpg", camera_jpeg(seed=8))
        z.writestr("/abs.jpg", camera_jpeg(seed=9))
        z.writestr("__MACOSX/cam/._IMG_1.JPG", b"junk")
        z.writestr("cam/.hidden.jpg", b"junk")
        z.writestr("notes.txt", b"hello")
        link = zipfile.ZipInfo("link.jpg")
        link.external_attr = (0o120777 << 16)
        z.writestr(link, "/etc/passwd")
    items = list(iter_work(stage, parse_sources([str(zpath)], f"batch-{UUID}"), f"batch-{UUID}"))
    problems = {i.key: i.skip_reason for i in items}
    assert problems["cam/IMG_1.JPG"] is None
    assert problems["../escape.jpg"] and problems["/abs.jpg"] and problems["link.jpg"]
    assert problems["__MACOSX/cam/._IMG_1.JPG"] and problems["cam/.hidden.jpg"] and problems["notes.txt"]
    good = next(i for i in items if i.skip_reason is None)
    (out,) = ingestor(stage).process(good.store, good.key, batch=good.batch, delete_source=False)
    assert out.outcome == SERVED
    md = last_md(api_stub)
    assert md["batchId"] == f"batch-{UUID}" and md["Path"] == "cam/IMG_1.JPG"
    assert not (tmp_path / "escape.jpg").exists()


def test_dry_run_writes_nothing_and_calls_no_api(stage, s3, api_stub) -> None:  # noqa: ANN001
    put(s3, "a.jpg", camera_jpeg())
    put(s3, "b.jpg", camera_jpeg(None, seed=4))
    ing = ingestor(stage, dry_run=True)
    outs = [ing.process(stage.store("ingestion"), k, delete_source=True)[0] for k in ("a.jpg", "b.jpg")]
    assert [o.outcome for o in outs] == [SERVED, DEAD_LETTERED] and all(o.planned for o in outs)
    assert outs[1].reason == "Unknown Serial Number"
    assert keys_in(s3, "ingestion") == ["a.jpg", "b.jpg"] and keys_in(s3, "serving") == []
    assert api_stub.requests == []


def test_maintenance_parks_local_files_too_and_keeps_them(stage, s3, ssm, tmp_path) -> None:  # noqa: ANN001
    """An operator's ingest of a card during maintenance waits in the parking lot like any arrival;
    the card itself is only read."""
    from animl_ingest_cli.sources import iter_work, parse_sources

    ssm.put_parameter(Name=f"/images/maintenance-mode-{STAGE}", Value="true", Type="String")
    card = tmp_path / "card"
    (card / "DCIM").mkdir(parents=True)
    (card / "DCIM" / "IMG_1.JPG").write_bytes(camera_jpeg())
    ing = ingestor(stage)
    (item,) = iter_work(stage, parse_sources([str(card)]))
    (out,) = ing.process(item.store, item.key, delete_source=item.delete_source)
    assert out.outcome == PARKED
    assert keys_in(s3, "parkinglot") == ["DCIM/IMG_1.JPG"] and keys_in(s3, "serving") == []
    assert (card / "DCIM" / "IMG_1.JPG").is_file()


def test_the_api_is_made_once_however_many_workers_ask(monkeypatch, tmp_path) -> None:  # noqa: ANN001
    """Worker threads reach for the API together on the first images of a run."""
    import threading
    import time

    from animl_ingest_cli.context import StageContext

    made = []

    def slow_api(ctx, time_left=None):  # noqa: ANN001, ANN202
        made.append(threading.get_ident())
        time.sleep(0.05)
        return object()

    monkeypatch.setattr(StageContext, "api", slow_api)
    ing = Ingestor(open_stage("local", local_root=tmp_path))
    threads = [threading.Thread(target=lambda: ing.api) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1


# --- decode work (issue 15 item 7) ----------------------------------------------------------------

def test_progressive_jpeg_of_thousands_of_scans_is_dead_lettered_before_create_image(
        stage, s3, api_stub, monkeypatch) -> None:  # noqa: ANN001
    """Through the Lambda handler: 0.6 MB, 4900 scans, 64 MP. Before, it decoded for minutes after
    createImage and the function timed out on every retry. Now no API call, one dead letter with
    the reason, the source removed, and the handler answers at once."""
    import time

    from animl_ingest_cli import lambda_handler
    from tests.jpegscans import issue_file

    monkeypatch.setenv("STAGE", STAGE)
    monkeypatch.setattr(lambda_handler, "_ctx", None)
    data = issue_file()
    put(s3, "scans.jpg", data)
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": BUCKETS["ingestion"]}, "object": {"key": "scans.jpg"}}}]}
    start = time.perf_counter()
    (result,) = lambda_handler.handler(event, None)["results"]
    assert time.perf_counter() - start < 20, "no decode happened"
    assert result["outcome"] == DEAD_LETTERED and result["reason"] == "CORRUPTED_IMAGE_FILE"
    assert api_stub.calls("createImage") == [] and api_stub.calls("createImageError") == []
    (dead,) = keys_in(s3, "dead-letter")
    assert dead == f"CORRUPTED_IMAGE_FILE/{keys.UNKNOWN_ID}/scans.jpg"
    head = s3.head_object(Bucket=BUCKETS["dead-letter"], Key=dead)
    assert "too costly to decode" in urllib.parse.unquote(head["Metadata"]["error"])
    assert s3.get_object(Bucket=BUCKETS["dead-letter"], Key=dead)["Body"].read() == data
    assert keys_in(s3, "ingestion") == [] and keys_in(s3, "serving") == []


def test_dry_run_plans_the_costly_jpeg_as_the_real_run_does(stage, s3, api_stub) -> None:  # noqa: ANN001
    from tests.jpegscans import issue_file

    put(s3, "scans.jpg", issue_file())
    (out,) = ingestor(stage, dry_run=True).process(stage.store("ingestion"), "scans.jpg", delete_source=True)
    assert out.planned and out.outcome == DEAD_LETTERED and out.reason == "CORRUPTED_IMAGE_FILE"
    assert out.destinations == [f"CORRUPTED_IMAGE_FILE/{keys.UNKNOWN_ID}/scans.jpg"]
    assert api_stub.requests == [] and keys_in(s3, "ingestion") == ["scans.jpg"]
