"""Unpark through the verified-move engine: S3 (moto) and the local stage's folders."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from animl_ingest_cli import audit
from animl_ingest_cli.context import open_stage
from animl_ingest_cli.errors import InputError, RefusedError
from animl_ingest_cli.ops import maintenance
from animl_ingest_cli.ops.moves import STAGING_PREFIX, Journal
from animl_ingest_cli.ops.unpark import unpark
from tests.awsfixtures import bucket
from tests.ops.helpers import awkward_keys, keys, seed

PARK, INGEST = bucket("parkinglot"), bucket("ingestion")


def park(s3, names: list[str], body=lambda k: k.encode()) -> dict[str, str]:
    for k in names:
        s3.put_object(Bucket=PARK, Key=k, Body=body(k), ContentType="image/jpeg",
                      Metadata={"camera": "x 1"})
    return keys(s3, PARK)


def test_thousands_of_awkward_keys_all_moved_verified_and_kept_as_they_are(s3) -> None:
    names = awkward_keys(1010)
    seed(PARK, names[15:])
    park(s3, names[:15])  # one of each shape with a content type and user metadata
    parked = keys(s3, PARK)
    assert len(parked) == 1010
    outcomes = []
    summary = unpark(open_stage("dev"), on_outcome=outcomes.append)
    assert keys(s3, PARK) == {}
    assert keys(s3, INGEST) == parked  # same keys, same ETags
    assert summary.moved == 1010 and summary.failed == 0 and summary.selected == 1010
    assert sorted(o.key for o in outcomes) == sorted(parked)
    for k in names[:15]:
        head = s3.head_object(Bucket=INGEST, Key=k)
        assert head["ContentType"] == "image/jpeg" and head["Metadata"] == {"camera": "x 1"}, k
    # a COPY per object, one DeleteObjects per 1000, list pages (moto: 1000 per page) of the parking
    # lot and one of the (empty) ingestion bucket; no HEAD: the destination's listing showed it free
    r = summary.requests
    assert r["CopyObject"] == 1010 and r.get("HeadObject", 0) == 0 and r["DeleteObjects"] == 2
    assert summary.to_dict()["requests_per_object"] < 1.01


def test_refused_while_maintenance_is_on_and_forced_moves_are_staged(s3) -> None:
    ctx = open_stage("dev")
    parked = park(s3, ["a.jpg", "b c.jpg"])
    maintenance.set_maintenance(ctx, True, wait=False)
    with pytest.raises(RefusedError, match="maintenance is on"):
        unpark(ctx)
    assert keys(s3, PARK) == parked
    # forced: an ingest function that obeys the flag parks each object again as soon as it
    # arrives, before unpark deletes it. Simulate that on every copy into the ingestion bucket.
    def remember(params, context, **_) -> None:
        context["test-params"] = params

    def repark(model, context, **_) -> None:
        params = context.get("test-params", {})
        if model.name == "CopyObject" and params["Bucket"] == INGEST:
            key = params["Key"]
            s3.copy_object(Bucket=PARK, Key=key, CopySource={"Bucket": INGEST, "Key": key})
            s3.delete_object(Bucket=INGEST, Key=key)

    ctx.client("s3").meta.events.register("before-parameter-build.s3", remember)
    ctx.client("s3").meta.events.register("after-call.s3", repark)
    outcomes = []
    summary = unpark(ctx, force=True, on_outcome=outcomes.append)
    assert summary.moved == 2, outcomes
    assert keys(s3, PARK) == parked  # re-parked, not lost: the staged copy was deleted, not these
    assert keys(s3, INGEST) == {}


def test_waits_out_a_recent_off(s3, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(maintenance.WAIT_ENV, "100")
    ctx = open_stage("dev")
    maintenance.set_maintenance(ctx, False, wait=False)  # created moments ago
    waits: list[float] = []
    unpark(ctx, on_wait=waits.append, sleep=waits.append)
    assert len(waits) == 2 and 95 < waits[0] <= 100


def test_dry_run_plans_each_move_and_changes_nothing(s3) -> None:
    parked = park(s3, ["one.jpg", "two.jpg", "three.jpg"])
    s3.put_object(Bucket=INGEST, Key="two.jpg", Body=b"two.jpg")  # the same object already there
    s3.put_object(Bucket=INGEST, Key="three.jpg", Body=b"other")  # a different one
    outcomes = []
    summary = unpark(open_stage("dev"), dry_run=True, on_outcome=outcomes.append)
    assert keys(s3, PARK) == parked
    plans = {o.key: (o.status, o.detail) for o in outcomes}
    assert plans["one.jpg"] == ("planned", "copy, verify, delete from the source")
    assert plans["two.jpg"][1].startswith("delete from the source only")
    assert plans["three.jpg"][0] == "failed" and "different object" in plans["three.jpg"][1]
    assert summary.planned == 2 and summary.failed == 1
    assert not audit.audit_path().exists()  # nothing changed, nothing to audit


def test_a_different_object_at_the_destination_is_never_overwritten(s3) -> None:
    park(s3, ["x.jpg", "y.jpg"])
    s3.put_object(Bucket=INGEST, Key="x.jpg", Body=b"someone else's")
    summary = unpark(open_stage("dev"))
    assert summary.failed == 1 and summary.moved == 1
    assert set(keys(s3, PARK)) == {"x.jpg"}
    assert s3.get_object(Bucket=INGEST, Key="x.jpg")["Body"].read() == b"someone else's"


def test_already_copied_by_an_interrupted_run_is_not_copied_again(s3) -> None:
    ctx = open_stage("dev")
    parked = park(s3, ["done.jpg", "todo.jpg"])
    # an earlier run copied done.jpg and was killed before deleting it; the ingest function has
    # consumed the copy since, so only the journal knows
    with Journal.for_source("dev", ctx.store("parkinglot")) as j:
        j.add("done.jpg", parked["done.jpg"])
        j.add("todo.jpg", "0" * 32)  # a stale entry for another object: ignored
    summary = unpark(ctx)
    assert summary.already == 1 and summary.moved == 1
    assert set(keys(s3, INGEST)) == {"todo.jpg"}  # done.jpg was not ingested twice
    assert keys(s3, PARK) == {}
    assert summary.requests["CopyObject"] == 1
    assert not Journal.for_source("dev", ctx.store("parkinglot")).path.exists()  # nothing pending


def test_same_object_already_at_destination_is_only_deleted(s3) -> None:
    park(s3, ["same.jpg"])
    s3.put_object(Bucket=INGEST, Key="same.jpg", Body=b"same.jpg")
    summary = unpark(open_stage("dev"))
    assert summary.already == 1 and summary.requests["CopyObject"] == 0
    assert keys(s3, PARK) == {}


def test_prefix_and_max_delete(s3) -> None:
    park(s3, [f"batch-1/{i}.jpg" for i in range(5)] + ["root.jpg"])
    ctx = open_stage("dev")
    summary = unpark(ctx, prefix="batch-1/", max_delete=3)
    assert summary.moved == 3 and summary.limited
    assert len(keys(s3, INGEST)) == 3 and "root.jpg" in keys(s3, PARK)
    summary = unpark(ctx, prefix="batch-1/")
    assert summary.moved == 2 and not summary.limited
    assert set(keys(s3, PARK)) == {"root.jpg"}
    with pytest.raises(InputError):
        unpark(ctx, prefix=STAGING_PREFIX)
    with pytest.raises(InputError):
        unpark(ctx, concurrency=0)


def test_leftovers_of_an_interrupted_forced_run_are_finished(s3) -> None:
    s3.put_object(Bucket=PARK, Key=STAGING_PREFIX + "staged one.jpg", Body=b"s")
    park(s3, ["plain.jpg"])
    summary = unpark(open_stage("dev"))
    assert summary.moved == 2
    assert set(keys(s3, INGEST)) == {"staged one.jpg", "plain.jpg"} and keys(s3, PARK) == {}


MB = 1024 * 1024
PARTS = [b"a" * (5 * MB), b"b" * (5 * MB), b"c" * 123]


def park_multipart(s3, key: str) -> str:
    """A bulk-upload zip as the frontend uploads it: in parts. Returns its ETag."""
    up = s3.create_multipart_upload(Bucket=PARK, Key=key, ContentType="application/zip",
                                    Metadata={"origin": "frontend"})
    parts = []
    for n, data in enumerate(PARTS, start=1):
        r = s3.upload_part(Bucket=PARK, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=data)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(Bucket=PARK, Key=key, UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": parts})
    return keys(s3, PARK)[key]


def test_multipart_object_copied_part_by_part_keeps_its_etag(s3) -> None:
    parts_data = PARTS
    etag = park_multipart(s3, "batch-9.zip")
    assert etag.endswith("-3")
    summary = unpark(open_stage("dev"))
    assert summary.moved == 1, summary
    assert keys(s3, INGEST) == {"batch-9.zip": etag}
    got = s3.get_object(Bucket=INGEST, Key="batch-9.zip")
    assert hashlib.md5(got["Body"].read()).hexdigest() == hashlib.md5(b"".join(parts_data)).hexdigest()
    assert got["ContentType"] == "application/zip" and got["Metadata"] == {"origin": "frontend"}
    assert summary.requests["UploadPartCopy"] == 3


def test_audit_records_start_and_end_with_counts(s3) -> None:
    park(s3, ["a.jpg"])
    unpark(open_stage("dev"))
    entries = [json.loads(x) for x in audit.audit_path().read_text().splitlines()]
    assert [e["phase"] for e in entries] == ["start", "end"]
    assert entries[1]["moved"] == 1 and entries[1]["command"] == "unpark"
    assert entries[1]["from"] == f"s3://{PARK}/" and entries[1]["caller"].startswith("arn:aws:")


def test_local_stage_folders(tmp_path) -> None:
    ctx = open_stage("local")
    park_store, ingest_store = ctx.store("parkinglot"), ctx.store("ingestion")
    names = awkward_keys(60)
    for k in names:
        park_store.put(k, k.encode(), "image/jpeg", {"camera": "c"})
    summary = unpark(ctx)
    assert summary.moved == 60 and summary.failed == 0
    assert list(park_store.list()) == []
    moved = {i.key: i for i in ingest_store.list()}
    assert set(moved) == set(names)
    assert moved[names[0]].metadata == {"camera": "c"} and moved[names[0]].content_type == "image/jpeg"
    assert not (ctx.local_root / "buckets" / PARK.replace("dev", "local")).exists() or not any(
        (ctx.local_root / "buckets" / PARK.replace("dev", "local")).iterdir())


def test_a_second_run_at_the_same_time_is_refused(s3) -> None:
    ctx = open_stage("dev")
    with Journal.for_source("dev", ctx.store("parkinglot")):
        with pytest.raises(RefusedError, match="another move"):
            unpark(ctx)


def test_ctrl_c_lets_copies_finish_deletes_them_and_a_rerun_finishes(s3, monkeypatch) -> None:
    """KeyboardInterrupt in the main thread mid-chunk: nothing is in neither bucket."""
    import _thread
    import threading

    from animl_ingest_cli.ops.moves import MoveInterrupted

    parked = park(s3, [f"k{i}.jpg" for i in range(150)])
    ctx = open_stage("dev")
    copies = []

    def interrupt(model, **_) -> None:
        if model.name == "CopyObject":
            copies.append(1)
            if len(copies) == 30:
                threading.Timer(0, _thread.interrupt_main).start()
            time.sleep(0.002)

    ctx.client("s3").meta.events.register("before-call.s3", interrupt)
    with pytest.raises(MoveInterrupted) as info:
        unpark(ctx, concurrency=4)
    s = info.value.summary
    assert s.interrupted and 0 < s.moved < 150
    left, there = keys(s3, PARK), keys(s3, INGEST)
    assert set(left) | set(there) == set(parked)
    assert len(there) == s.moved  # what was copied was also deleted: nothing in both
    summary = unpark(open_stage("dev"))
    assert summary.moved == 150 - s.moved and keys(s3, INGEST) == parked


def test_an_object_appearing_at_the_destination_meanwhile_is_not_overwritten(s3) -> None:
    """Between the look at the destination and the copy, someone writes the same key: the copy is
    conditional (If-None-Match), so it fails and both objects stay."""
    etag = park_multipart(s3, "batch-5.zip")
    ctx = open_stage("dev")

    def upload_arrives(**_) -> None:
        s3.put_object(Bucket=INGEST, Key="batch-5.zip", Body=b"a new upload")

    ctx.client("s3").meta.events.register("before-call.s3.CreateMultipartUpload", upload_arrives)
    outcomes = []
    summary = unpark(ctx, on_outcome=outcomes.append)
    assert summary.failed == 1 and "PreconditionFailed" in outcomes[0].detail
    assert keys(s3, PARK) == {"batch-5.zip": etag}
    assert s3.get_object(Bucket=INGEST, Key="batch-5.zip")["Body"].read() == b"a new upload"
