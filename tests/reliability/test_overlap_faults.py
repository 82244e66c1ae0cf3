"""The overlaps inside one image (ingest.py: thumbnails while createImage is asked, the three serving
writes side by side) under faults that hit only part of them: the medium or the small write alone,
both at once, the clean-up's DeleteObject, the thumbnail thread failing in ways that are not an
ImageError. In-process moto, the animl-api stand-in, the invariant checker after every run, then a
heal with the faults gone."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import animl_ingest_cli.ingest as ingest_module
from animl_ingest_cli import images
from animl_ingest_cli.api import GraphQLApi
from animl_ingest_cli.errors import ApiKeyRefused
from animl_ingest_cli.ingest import DEAD_LETTERED, FAILED, SERVED, Ingestor
from tests.reliability.conftest import BUCKETS, World, jpeg, md5

SERVING = BUCKETS["serving"]


def seed(world: World, n: int = 3, prefix: str = "cam/") -> list[str]:
    first = len(world.originals)
    return world.put_many((f"{prefix}IMG_{first + i:04d}.JPG", jpeg(first + i)) for i in range(n))


def served_everywhere(world: World) -> None:
    """With the faults gone, a heal serves every image, each in exactly one place."""
    healed = world.heal()
    world.check(healed)
    assert {k: p for k, p in world.check().places.items()} == {k: ["served"] for k in world.originals}


# --- faults in only part of the serving set ---------------------------------------------------------

@pytest.mark.parametrize("sizes,kind", [
    (("medium/",), "applied-drop"),          # the medium landed, its answer was lost, every retry too
    (("small/",), "error"),                  # the small never lands; original and medium do
    (("medium/", "small/"), "applied-error"),  # both thumbnails land and answer 500
    (("medium/", "small/"), "drop"),
])
def test_a_thumbnail_write_failing_alone_leaves_no_partial_set(world: World, sizes: tuple[str, ...],
                                                               kind: str) -> None:
    seed(world)
    ctx = world.ctx()
    ctx.buckets()
    rules = [world.faults.add("PutObject", kind, times=None, bucket=SERVING, key_prefix=size)
             for size in sizes]
    results = world.ingest(ctx)
    assert all(r.fired for r in rules)
    assert {o.outcome for o in results.values()} == {DEAD_LETTERED}
    assert {o.reason for o in results.values()} == {"STORAGE_ERROR"}
    assert world.keys("serving") == []  # the original and the other thumbnail were removed too
    world.check(results)
    served_everywhere(world)


def test_both_thumbnail_writes_retried_by_botocore_are_absorbed(world: World) -> None:
    seed(world)
    ctx = world.ctx()
    ctx.buckets()
    rules = [world.faults.add("PutObject", kind, times=2, bucket=SERVING, key_prefix=size)
             for size, kind in (("medium/", "applied-drop"), ("small/", "throttle"))]
    results = world.ingest(ctx, concurrency=1)
    assert [r.fired for r in rules] == [2, 2]
    assert {o.outcome for o in results.values()} == {SERVED} and all(o.complete for o in results.values())
    world.check(results)


def test_a_clean_up_that_cannot_delete_leaves_the_image_waiting_for_a_rerun(world: World) -> None:
    """The medium write fails, and so does every DeleteObject of the clean-up: the original and the
    small are public, and stay. The image must not be dead-lettered then (its source deleted): the
    partial set would be left public with nothing to complete it. It stays in the ingestion bucket,
    failed, and the rerun completes the set."""
    seed(world, 2)
    ctx = world.ctx()
    ctx.buckets()
    world.faults.add("PutObject", "error", times=None, bucket=SERVING, key_prefix="medium/")
    cleanup = world.faults.add("DeleteObject", "error", times=None, bucket=SERVING)
    results = world.ingest(ctx)
    assert cleanup.fired
    world.check(results)
    assert {o.outcome for o in results.values()} == {FAILED}
    assert not any(o.complete for o in results.values())
    assert all("left for a rerun" in (o.error or "") for o in results.values()), results
    assert world.keys("dead-letter") == [] and len(world.keys("ingestion")) == 2
    again = world.ingest(ctx)  # the rerun under the same faults: DUPLICATE_IMAGE, its heal fails alike
    world.check(again)
    assert {o.outcome for o in again.values()} == {FAILED} and world.keys("dead-letter") == []
    served_everywhere(world)


def test_a_clean_up_that_deletes_on_a_later_try_dead_letters_as_before(world: World) -> None:
    seed(world, 1)
    ctx = world.ctx()
    ctx.buckets()
    world.faults.add("PutObject", "error", times=None, bucket=SERVING, key_prefix="small/")
    world.faults.add("DeleteObject", "error", times=6, bucket=SERVING)  # more than one request's retries
    (out,) = world.ingest(ctx).values()
    assert out.outcome == DEAD_LETTERED and out.reason == "STORAGE_ERROR", out
    assert world.keys("serving") == []
    world.check({out.key: out})


# --- the thumbnail thread failing with something else than an ImageError ---------------------------------

class ApiAfterThumbnails:
    """createImage answers only once the thumbnail thread beside it has ended (joined), then as
    `api` does: the thread's failure is in hand before createImage's own outcome, deterministically."""

    def __init__(self, api: Any) -> None:
        self.api = api

    def create_image(self, md: dict[str, Any]) -> Any:
        for t in threading.enumerate():
            if t.name == "serve" and t is not threading.current_thread():
                t.join(10)
        return self.api.create_image(md)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)


def broken_thumbnails(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> list[int]:
    calls: list[int] = []

    def make(data: bytes) -> Any:
        calls.append(len(data))
        raise exc

    monkeypatch.setattr(ingest_module, "make_thumbnails", make)
    return calls


@pytest.mark.parametrize("exc", [MemoryError(), RuntimeError("a bug in the decoder")], ids=repr)
def test_a_thumbnail_thread_failure_after_the_record_is_raised_and_the_image_waits(
        world: World, monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    """Not an ImageError: not the image's fault, so not dead-lettered; surfaced (raised by process),
    the source left where it is, and a rerun without the fault serves it (heal)."""
    (key,) = seed(world, 1)
    calls = broken_thumbnails(monkeypatch, exc)
    ctx = world.ctx()
    with pytest.raises(type(exc)):
        Ingestor(ctx, ApiAfterThumbnails(world.api())).process(ctx.store("ingestion"), key,
                                                             delete_source=True)
    assert calls and world.keys("ingestion") == [key] and world.keys("serving") == []
    assert world.keys("dead-letter") == []
    world.check(final=False)
    monkeypatch.undo()
    served_everywhere(world)


def test_a_refused_key_stops_the_cli_even_when_the_thumbnail_thread_failed_first(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI stops at a refused key (ApiKeyRefused, exit 3); the speculative decode beside
    createImage failing first (here a bug) must not hide it: without the overlap it never ran."""
    (key,) = seed(world, 1)
    broken_thumbnails(monkeypatch, RuntimeError("a bug in the decoder"))
    ctx = world.ctx()
    ing = Ingestor(ctx, ApiAfterThumbnails(GraphQLApi(world.stub.url, "not-the-key", max_attempts=1,
                                                         backoff=0.01, timeout=2.0)),
                   stop_on_refused_key=True)
    with pytest.raises(ApiKeyRefused):
        ing.process(ctx.store("ingestion"), key, delete_source=True)
    assert world.keys("ingestion") == [key] and world.keys("dead-letter") == []


def test_an_api_failure_dead_letters_as_before_even_when_the_thumbnail_thread_failed_first(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Lambda dead-letters an image the API fails on (under the API's error, UNKNOWN_ID); a
    decode that was only made ahead of need and failed with a bug does not change that."""
    (key,) = seed(world, 1)
    broken_thumbnails(monkeypatch, RuntimeError("a bug in the decoder"))
    world.api_fault("fail", 500, times=3, mutation="createImage")
    ctx = world.ctx()
    (out,) = Ingestor(ctx, ApiAfterThumbnails(world.api(max_attempts=3))).process(
        ctx.store("ingestion"), key, delete_source=True)
    assert out.outcome == DEAD_LETTERED and out.reason == "Internal server error", out
    assert "/UNKNOWN_ID/" in out.destinations[0]
    world.check({key: out})


def test_a_decode_over_its_cpu_budget_in_the_thumbnail_thread_is_a_corrupt_image(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """DecodeTooCostly is measured on the decoding thread's own CPU clock (time.thread_time): in the
    thumbnail thread it must still stop the decode and dead-letter the image after createImage."""
    (key,) = seed(world, 1)
    monkeypatch.setattr(images, "DECODE_CPU_SECONDS", -1.0)  # over budget at the first read
    ctx = world.ctx()
    (out,) = Ingestor(ctx, world.api()).process(ctx.store("ingestion"), key, delete_source=True)
    assert out.outcome == DEAD_LETTERED and out.reason == "CORRUPTED_IMAGE_FILE", out
    assert "of CPU" in (out.error or "") and out.image_id
    assert world.stub.calls("createImageError")
    assert world.keys("serving") == [] and world.keys("ingestion") == []
    world.check({key: out})


# --- the Lambda: several records of the same bytes, redelivered ------------------------------------------

def test_lambda_records_of_the_same_bytes_and_redeliveries_end_in_one_place_each(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """One invocation holds the same image under two keys, one of them twice (a redelivery inside the
    batch), and another image; createImage is slow, so the thumbnails and serving writes of all of
    them overlap. Then the whole event again (Lambda's retry). Every object is accounted for, each
    in one place: one of the twins served, the other dead-lettered as DUPLICATE_IMAGE."""
    from animl_ingest_cli import lambda_handler

    monkeypatch.setenv("STAGE", "dev")
    lambda_handler.reset()
    twin, other = jpeg(1), jpeg(2)
    world.put("cam/a.jpg", twin)
    world.put("cam/b.jpg", twin)
    world.put("cam/c.jpg", other)
    world.stub.delays["createImage"] = 0.2

    def record(key: str, data: bytes) -> dict[str, Any]:
        return {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": BUCKETS["ingestion"]},
                       "object": {"key": key, "size": len(data), "eTag": md5(data)}}}

    event = {"Records": [record("cam/a.jpg", twin), record("cam/b.jpg", twin), record("cam/a.jpg", twin),
                         record("cam/c.jpg", other)]}
    for _ in range(2):  # the invocation, then its redelivery
        summary = lambda_handler.handler(event)
        results = summary["results"]
        assert len(results) == 4 and all(r["complete"] for r in results), results
        world.check()
        assert world.keys("ingestion") == []
    places = world.check().places
    assert sorted(places[k][0] for k in ("cam/a.jpg", "cam/b.jpg")) == ["dead-letter", "served"]
    assert places["cam/c.jpg"] == ["served"]
    assert [k.split("/")[0] for k in world.keys("dead-letter")] == ["DUPLICATE_IMAGE"]


# --- the local stage: its folders written side by side, by two actors at once -------------------------------

def local_run(root: Any, n: int, actors: int = 2, images_in_flight: int = 8,
              on_sample: Any = None) -> list[Any]:
    """`actors` threads, each its own context and ingestor, ingesting the local stage's ingestion
    bucket at the same moment; every outcome."""
    from animl_ingest_cli.context import open_stage
    from animl_ingest_cli.pool import Limits, process_all
    from animl_ingest_cli.sources import iter_work, parse_sources

    outcomes: list[Any] = []
    lock = threading.Lock()
    start = threading.Barrier(actors)

    def actor() -> None:
        ctx = open_stage("local", local_root=root)
        work = iter_work(ctx, parse_sources([f"s3://{ctx.bucket('ingestion')}/"]))
        start.wait()
        run = process_all(Ingestor(ctx), work, Limits.default(images=images_in_flight, cpu=2))
        got = list(run) + run.close()
        with lock:
            outcomes.extend(got)

    threads = [threading.Thread(target=actor, name=f"actor-{i}") for i in range(actors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return outcomes


def seed_local(root: Any, n: int) -> dict[str, str]:
    from animl_ingest_cli.context import open_stage

    ingestion = open_stage("local", local_root=root).store("ingestion")
    originals = {}
    for i in range(n):
        data = jpeg(i // 2 * 2 if i % 10 == 9 else i)  # every tenth image a twin of the one before
        key = f"cam {i % 3}/IMG_{i:04d}.JPG"
        ingestion.put(key, data, "image/jpeg")
        originals[key] = md5(data)
    return originals


def check_local(root: Any, originals: dict[str, str], outcomes: list[Any]) -> Any:
    from animl_ingest_cli.api_local import LocalApi
    from tests.reliability.invariants import LocalView, check

    views = {k: LocalView(root, f"animl-images-{k}-local")
             for k in ("ingestion", "serving", "dead-letter", "parkinglot")}
    catalog = LocalApi(root / "catalog.sqlite")
    try:
        return check(views, originals, catalog, unfinished={o.key for o in outcomes if not o.complete},
                     reported={o.key: o.outcome for o in outcomes if o.complete}).assert_ok()
    finally:
        catalog.close()


def test_two_actors_on_the_local_stage_write_its_folders_side_by_side(tmp_path: Any) -> None:
    root = tmp_path / "animl-local"
    originals = seed_local(root, 30)
    outcomes = local_run(root, 30)
    assert {o.key for o in outcomes} == set(originals)
    assert all(o.complete for o in outcomes), [o for o in outcomes if not o.complete]
    report = check_local(root, originals, outcomes)
    assert sorted({p for places in report.places.values() for p in places}) == ["dead-letter", "served"]
    assert len(report.where("dead-letter")) == 3  # the twins: DUPLICATE_IMAGE
    left = [t.name for t in threading.enumerate()
            if t.name in ("serve", "preflight") or t.name.startswith("ingest")]
    assert left == []  # every thread of the runs joined


# --- threads: bounded while a run goes, none left behind ---------------------------------------------------

def cli_threads_during(args: list[str], env: dict[str, str], tmp: Any) -> tuple[int, list[int], str]:
    """The installed CLI run with `args`; its exit code, its thread count (/proc/<pid>/task)
    sampled every few milliseconds, and its stderr."""
    import os
    import subprocess
    import time

    from tests.conftest import subprocess_env
    from tests.ops.helpers import installed_cli

    err = tmp / "threads.err"
    proc = subprocess.Popen([*installed_cli(), *args], stdout=subprocess.DEVNULL, stderr=err.open("wb"),
                            env=subprocess_env(env), stdin=subprocess.DEVNULL)
    samples: list[int] = []
    while proc.poll() is None:
        try:
            samples.append(len(os.listdir(f"/proc/{proc.pid}/task")))
        except FileNotFoundError:
            break
        time.sleep(0.005)
    return proc.wait(), samples, err.read_text()


def test_a_300_image_run_keeps_its_threads_bounded(tmp_path: Any) -> None:
    """Each image in flight has at most two threads beside its worker (createImage's thumbnails;
    two of the three serving writes), all joined: over 300 images at --concurrency 32 the count
    never passes 3 a worker plus the process's own few, and it does not grow along the run (the
    last third of the run peaks no higher than the bound either)."""
    folder = tmp_path / "card"
    folder.mkdir()
    for i in range(300):
        (folder / f"IMG_{i:04d}.JPG").write_bytes(jpeg(i))
    env = {"ANIML_LOCAL_DIR": str(tmp_path / "animl-local")}
    code, samples, err = cli_threads_during(["ingest", str(folder), "--json", "--concurrency", "32"],
                                            env, tmp_path)
    assert code == 0, err
    bound = 3 * 32 + 8
    assert samples and max(samples) <= bound, (max(samples), bound)
    assert max(samples[len(samples) * 2 // 3:]) <= bound
    print(f"threads: peak {max(samples)} (bound {bound}), {len(samples)} samples")
