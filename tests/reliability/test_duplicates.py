"""DUPLICATE_IMAGE, tested hard: a record without serving copies is healed (docs/animl.md),
the same object coming back after its copies were made counts as served, and a true duplicate (the
same bytes under another key) is dead-lettered, never served and never counted served."""

from __future__ import annotations

import urllib.parse

import pytest

from animl_ingest_cli import keys
from animl_ingest_cli.ingest import DEAD_LETTERED, SERVED
from tests.reliability.conftest import BUCKETS, World, jpeg, md5


def serving_keys(world: World, data: bytes) -> dict[str, str]:
    return keys.serving_keys(f"default_project:{md5(data)}", "jpg")


@pytest.mark.parametrize("missing", [("original",), ("medium",), ("small",), ("original", "medium", "small"),
                                     ("medium", "small")])
def test_record_with_missing_serving_copies_is_healed(world: World, missing: tuple[str, ...]) -> None:
    data = jpeg(1)
    world.put("a.jpg", data)
    first = world.ingest()
    assert first["a.jpg"].outcome == SERVED
    targets = serving_keys(world, data)
    for size in missing:  # lost copies (a crash between the writes, a bucket cleaned by hand)
        world.s3.delete_object(Bucket=BUCKETS["serving"], Key=targets[size])
    world.put("a.jpg", data)  # it comes back (a redrive, a camera's resend)
    again = world.ingest()
    assert again["a.jpg"].outcome == SERVED and again["a.jpg"].healed, again
    assert again["a.jpg"].reason == "serving copies were missing: made them"
    assert sorted(world.keys("serving")) == sorted(targets.values())
    world.check(again)


def test_same_object_again_after_its_copies_were_made_counts_as_served(world: World) -> None:
    data = jpeg(2)
    world.put("cam/a b+c.jpg", data)
    world.ingest()
    world.put("cam/a b+c.jpg", data)  # a source that could not be deleted, processed again
    again = world.ingest()
    assert again["cam/a b+c.jpg"].outcome == SERVED and again["cam/a b+c.jpg"].reason == "already served"
    original = world.s3.head_object(Bucket=BUCKETS["serving"], Key=serving_keys(world, data)["original"])
    assert urllib.parse.unquote(original["Metadata"]["source-key"]) == "cam/a b+c.jpg"
    assert world.keys("dead-letter") == [] and world.keys("ingestion") == []
    world.check(again)


def test_true_duplicate_under_another_key_is_dead_lettered(world: World) -> None:
    data = jpeg(3)
    world.put("first.jpg", data)
    world.ingest()
    world.put("second.jpg", data)
    again = world.ingest()
    assert again["second.jpg"].outcome == DEAD_LETTERED and again["second.jpg"].reason == "DUPLICATE_IMAGE"
    (dl,) = world.keys("dead-letter")
    assert dl.startswith(f"DUPLICATE_IMAGE/default_project:{md5(data)}/")
    world.check(again)


def test_same_key_other_bucket_is_not_the_same_object(world: World) -> None:
    """`already served` needs the same bucket too: the same key in another bucket is a duplicate."""
    data = jpeg(4)
    world.put("x.jpg", data)
    world.ingest()
    world.s3.put_object(Bucket=BUCKETS["parkinglot"], Key="x.jpg", Body=data)
    from animl_ingest_cli.ingest import Ingestor

    ctx = world.ctx()
    (out,) = Ingestor(ctx, world.api()).process(ctx.store("parkinglot"), "x.jpg", delete_source=False)
    assert out.outcome == DEAD_LETTERED and out.reason == "DUPLICATE_IMAGE"


def test_duplicates_in_one_run_one_served_the_rest_dead_lettered(world: World) -> None:
    """The same photo under several keys in one run (a card copied twice): whatever the threads do,
    one key is served and every other one is a DUPLICATE_IMAGE dead letter."""
    groups = {n: jpeg(10 + n, size=(900, 600)) for n in range(4)}
    for n, data in groups.items():
        for copy in range(3):
            world.put(f"copy {copy}/IMG_{n}.jpg", data)
    results = world.ingest(concurrency=8)
    for n in groups:
        got = sorted(results[f"copy {c}/IMG_{n}.jpg"].outcome for c in range(3))
        assert got == [DEAD_LETTERED, DEAD_LETTERED, SERVED], (n, got)
    world.check(results)
