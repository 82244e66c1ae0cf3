"""Dead-letter triage and redrive: counts per error folder, objects back to where they came from."""

from __future__ import annotations

import pytest

from animl_ingest_cli.context import open_stage
from animl_ingest_cli.errors import InputError
from animl_ingest_cli.ops.deadletter import list_errors, original_location, redrive, warnings_for
from animl_ingest_cli.ops.moves import STAGING_PREFIX
from tests.awsfixtures import bucket
from tests.ops.helpers import dead_letter, keys

DL, INGEST = bucket("dead-letter"), bucket("ingestion")
BATCH = "batch-3b1c2f4e-8f1a-4c1e-9a7e-0d5c2b6a9e11"


def test_original_location_decodes_metadata_and_falls_back_to_the_file_name() -> None:
    md = {"original-bucket": "animl-images-ingestion-dev",
          "original-key": "batch-x%2Fdir%20%C3%A9t%C3%A9%2Fa%2Bb.JPG"}
    assert original_location("E/id/a+b.jpg", md, "ing") == ("animl-images-ingestion-dev",
                                                              "batch-x/dir été/a+b.JPG")
    assert original_location("Unknown Serial Number/UNKNOWN_ID/cam 1.jpg", {}, "ing") == ("ing", "cam 1.jpg")
    assert original_location("E/i/f.jpg", {"Original-Key": "k%20x"}, "ing") == ("ing", "k x")


def test_list_counts_per_error_folder_with_the_newest_time(s3) -> None:
    store = open_stage("dev").store("dead-letter")
    dead_letter(store, "Unknown Serial Number", "UNKNOWN_ID", "a.jpg", b"1",
                original_bucket=INGEST, original_key="a.jpg")
    dead_letter(store, "Unknown Serial Number", "p:abc", "b.jpg", b"22",
                original_bucket=INGEST, original_key="b.jpg")
    dead_letter(store, "DUPLICATE_IMAGE", "p:def", "c.jpg", b"333", original_bucket=INGEST,
                original_key="c.jpg")
    s3.put_object(Bucket=DL, Key=STAGING_PREFIX + "DUPLICATE_IMAGE/p:x/d.jpg", Body=b"4")
    folders = {f.error: f for f in list_errors(open_stage("dev"))}
    assert set(folders) == {"Unknown Serial Number", "DUPLICATE_IMAGE"}
    usn = folders["Unknown Serial Number"]
    assert (usn.objects, usn.bytes, usn.in_transit) == (2, 3, 0) and usn.newest is not None
    assert (folders["DUPLICATE_IMAGE"].objects, folders["DUPLICATE_IMAGE"].in_transit) == (1, 1)


def test_redrive_sends_each_back_to_its_original_key_and_empties_the_folder(s3) -> None:
    ctx = open_stage("dev")
    store = ctx.store("dead-letter")
    originals = {
        "cam 7+ été.jpg": dead_letter(store, "Unknown Serial Number", "UNKNOWN_ID", "cam 7+ été.jpg",
                                      b"w", original_bucket=INGEST, original_key="cam 7+ été.jpg"),
        f"{BATCH}/DCIM/100/IMG_1.JPG": dead_letter(
            store, "Unknown Serial Number", "p:1", "IMG_1.jpg", b"b", original_bucket=INGEST,
            original_key=f"{BATCH}/DCIM/100/IMG_1.JPG", batch=BATCH),
        "node era.JPG": "Unknown Serial Number/UNKNOWN_ID/node era.JPG",  # no metadata
    }
    s3.put_object(Bucket=DL, Key="Unknown Serial Number/UNKNOWN_ID/node era.JPG", Body=b"n")
    dead_letter(store, "DUPLICATE_IMAGE", "p:2", "other.jpg", b"o", original_bucket=INGEST,
                original_key="other.jpg")
    outcomes = []
    summary = redrive(ctx, "Unknown Serial Number", on_outcome=outcomes.append)
    assert summary.moved == 3 and summary.failed == 0, outcomes
    # the Node-era object goes to the root under its file name, as is
    assert set(keys(s3, INGEST)) == {"cam 7+ été.jpg", f"{BATCH}/DCIM/100/IMG_1.JPG", "node era.JPG"}
    assert set(keys(s3, DL)) == {"DUPLICATE_IMAGE/p:2/other.jpg"}  # other folders untouched
    head = s3.head_object(Bucket=INGEST, Key=f"{BATCH}/DCIM/100/IMG_1.JPG")
    assert head["Metadata"]["batch-id"] == BATCH  # the object as it is (MetadataDirective=COPY)
    assert {o.key for o in outcomes} == set(originals.values())


def test_an_image_dead_lettered_again_during_the_redrive_is_kept(s3) -> None:
    """The ingest function may dead-letter a redriven image again under the same key before the
    redrive deletes it: that new object must survive (the redrive deletes its staged copy only)."""
    ctx = open_stage("dev")
    store = ctx.store("dead-letter")
    key = dead_letter(store, "Unknown Serial Number", "UNKNOWN_ID", "x.jpg", b"x",
                      original_bucket=INGEST, original_key="x.jpg")

    def remember(params, context, **_) -> None:
        context["test-params"] = params

    def ingest_fails_again(model, context, **_) -> None:
        params = context.get("test-params", {})
        if model.name == "CopyObject" and params.get("Bucket") == INGEST:
            s3.copy_object(Bucket=DL, Key=key, CopySource={"Bucket": INGEST, "Key": "x.jpg"})
            s3.delete_object(Bucket=INGEST, Key="x.jpg")

    events = ctx.client("s3").meta.events
    events.register("before-parameter-build.s3", remember)
    events.register("after-call.s3", ingest_fails_again)
    summary = redrive(ctx, "Unknown Serial Number")
    assert summary.moved == 1
    assert set(keys(s3, DL)) == {key}  # dead-lettered again, not deleted by the redrive


def test_dry_run_lists_each_planned_move_and_changes_nothing(s3) -> None:
    store = open_stage("dev").store("dead-letter")
    dead_letter(store, "Image Size Exceed 8 MB", "p:9", "big.jpg", b"b", original_bucket=INGEST,
                original_key="big one.jpg")
    before = keys(s3, DL)
    outcomes = []
    summary = redrive(open_stage("dev"), "Image Size Exceed 8 MB", dry_run=True, on_outcome=outcomes.append)
    assert keys(s3, DL) == before and keys(s3, INGEST) == {}
    [o] = outcomes
    assert o.status == "planned" and o.to == f"s3://{INGEST}/big one.jpg" and summary.planned == 1


def test_prefix_inside_the_folder_and_a_bad_original_bucket(s3) -> None:
    ctx = open_stage("dev")
    store = ctx.store("dead-letter")
    dead_letter(store, "E", "p:1", "a.jpg", b"a", original_bucket=INGEST, original_key="a.jpg")
    dead_letter(store, "E", "p:2", "b.jpg", b"b", original_bucket="Not_A/Bucket", original_key="b.jpg")
    assert redrive(ctx, "E", prefix="p:1/").moved == 1
    outcomes = []
    summary = redrive(ctx, "E", on_outcome=outcomes.append)
    assert summary.failed == 1 and "not a bucket name" in outcomes[0].detail
    assert set(keys(s3, DL)) == {"E/p:2/b.jpg"}
    with pytest.raises(InputError):
        redrive(ctx, "/")


def test_a_redrive_interrupted_after_staging_is_finished_by_a_rerun(s3) -> None:
    ctx = open_stage("dev")
    store = ctx.store("dead-letter")
    key = dead_letter(store, "E", "p:1", "a.jpg", b"a", original_bucket=INGEST, original_key="orig/a.jpg")
    s3.copy_object(Bucket=DL, Key=STAGING_PREFIX + key, CopySource={"Bucket": DL, "Key": key})
    s3.delete_object(Bucket=DL, Key=key)  # as the run left it: staged, original deleted
    summary = redrive(ctx, "E")
    assert summary.moved == 1 and keys(s3, DL) == {} and set(keys(s3, INGEST)) == {"orig/a.jpg"}


def test_duplicate_image_warns() -> None:
    assert warnings_for("DUPLICATE_IMAGE") and not warnings_for("Unknown Serial Number")


def test_local_stage_redrive_round_trip(tmp_path) -> None:
    ctx = open_stage("local")
    store = ctx.store("dead-letter")
    ingestion = ctx.bucket("ingestion")
    dead_letter(store, "Unknown Serial Number", "UNKNOWN_ID", "x y.jpg", b"img",
                original_bucket=ingestion, original_key="sub dir/x y.JPG")
    assert [f.error for f in list_errors(ctx)] == ["Unknown Serial Number"]
    assert redrive(ctx, "Unknown Serial Number").moved == 1
    assert ctx.store("ingestion").read("sub dir/x y.JPG").data == b"img"
    assert list(store.list()) == []


@pytest.mark.parametrize("when", ["before-call", "after-call"])
def test_a_failed_delete_of_originals_never_loses_the_staged_copy(s3, when: str) -> None:
    """DeleteObjects of the originals fails: before it ran (the originals stay, their staged copies
    are dropped), or after it ran with the answer lost (the staged copies are the only ones left and
    are moved on)."""
    import botocore.exceptions

    ctx = open_stage("dev")
    key = dead_letter(ctx.store("dead-letter"), "E", "p:1", "a.jpg", b"a", original_bucket=INGEST,
                      original_key="a.jpg")
    calls = []

    def lose(**_) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise botocore.exceptions.ConnectTimeoutError(endpoint_url="s3")

    ctx.client("s3").meta.events.register(f"{when}.s3.DeleteObjects", lose)
    outcomes = []
    summary = redrive(ctx, "E", on_outcome=outcomes.append)
    if when == "before-call":
        assert summary.failed == 1 and set(keys(s3, DL)) == {key} and keys(s3, INGEST) == {}
    else:
        assert summary.moved == 1 and keys(s3, DL) == {} and set(keys(s3, INGEST)) == {"a.jpg"}
