"""S3, SSM and SQS faults during ingest, unpark and redrive (in-process, botocore's send hook).

Each fault sits inside botocore's standard retry loop: a transient one (a few failures) must be
absorbed, a persistent one must leave every image accounted for, and a run with the faults gone
must heal what is left. The invariants are checked after every run.
"""

from __future__ import annotations

import random

import pytest

from animl_ingest_cli.errors import AnimlError
from animl_ingest_cli.ingest import DEAD_LETTERED, FAILED, SERVED
from tests.reliability.conftest import BUCKETS, World, jpeg
from tests.reliability.faults import KINDS

# HeadObject is no longer on an image's way (conditional writes replaced look-then-write); the looks
# left (a taken key, a heal) are reached by the faults on the writes before them.
OPS = ("GetObject", "CopyObject", "PutObject", "DeleteObject", "ListObjectsV2", "GetParameters")


def seed_images(world: World, good: int = 3, bad: int = 1, prefix: str = "cam 1/") -> None:
    """`good` images that are served, `bad` without a serial (dead-lettered by the API); bytes never
    seen before in this test."""
    n = len(world.originals)
    world.put_many((f"{prefix}IMG {i}+é.JPG", jpeg(n + i)) for i in range(good))
    world.put_many((f"{prefix}noserial {i}.jpg", jpeg(n + good + i, serial=None)) for i in range(bad))


def outcomes(results: dict) -> dict[str, str]:  # noqa: ANN001
    return {k: o.outcome for k, o in results.items()}


def expected(world: World) -> dict[str, str]:
    return {k: DEAD_LETTERED if "noserial" in k else SERVED for k in world.originals}


# --- transient faults: botocore retries them, nothing shows ---------------------------------------------

@pytest.mark.parametrize("op", OPS)
def test_transient_faults_are_absorbed(world: World, op: str) -> None:
    """Two failures in a row of one operation, of each kind: botocore's retries absorb them."""
    for kind in sorted(KINDS):
        ctx = world.ctx()
        ctx.buckets()  # resolved before the faults: a GetParameters fault hits the maintenance flag
        seed_images(world, prefix=f"{kind}/")
        rule = world.faults.add(op, kind, times=2)
        results = world.ingest(ctx, prefix=f"{kind}/")
        assert rule.fired == 2, f"the {op} {kind} fault was never reached"
        assert outcomes(results) == {k: v for k, v in expected(world).items() if k.startswith(kind)}
        assert all(o.complete for o in results.values())
        world.check(results)


# --- persistent faults: every image accounted for, then healed -------------------------------------------

@pytest.mark.parametrize("kind", ["drop", "applied-error"])
@pytest.mark.parametrize("op,bucket", [
    ("GetObject", None), ("CopyObject", "serving"), ("CopyObject", None), ("PutObject", "serving"),
    ("DeleteObject", "ingestion"), ("GetParameters", None),
])
def test_persistent_fault_loses_nothing_and_heals(world: World, op: str, bucket: str | None,
                                                  kind: str) -> None:
    seed_images(world)
    ctx = world.ctx()
    ctx.buckets()
    rule = world.faults.add(op, kind, times=None, bucket=BUCKETS[bucket] if bucket else None)
    results = world.ingest(ctx)
    assert rule.fired, f"the {op} fault was never reached"
    assert results.keys() == world.originals.keys()
    for o in results.values():
        # a failure is reported as one: unfinished, with a one-line reason
        if o.outcome == FAILED or not o.complete:
            assert o.error and "\n" not in o.error
    world.check(results)
    healed = world.heal()
    world.check(healed)
    report = world.check()
    assert {k for k, places in report.places.items() if places == ["served"]} == \
        {k for k, v in expected(world).items() if v == SERVED}


def test_fault_storm_with_seeded_random_faults_then_heal(world: World) -> None:
    """Every AWS request has a 1 in 5 chance of a random fault, over several runs and redrives;
    after each, nothing is lost; with the storm over, everything heals."""
    rng = random.Random(20240508)
    seed_images(world, good=8, bad=2)
    world.put("cam 2/copy of IMG 0.jpg", jpeg(0))  # a true duplicate: dead-lettered, never served
    for round_ in range(3):
        world.faults.clear()
        for op in OPS + ("DeleteObjects",):
            for kind in KINDS:
                world.faults.add(op, kind, times=rng.randint(0, 3), skip=rng.randint(0, 6))
        try:
            results = world.ingest(concurrency=1 + round_ * 3)
        except AnimlError as exc:  # the listing itself failed: the run ends with one line, no change
            assert "\n" not in exc.message
        else:
            world.check(results)
        try:
            world.redrive_all()
        except AnimlError as exc:
            assert "\n" not in exc.message
        world.check(final=False)
    healed = world.heal()
    world.check(healed)
    places = world.check().places
    twins = ["cam 1/IMG 0+é.JPG", "cam 2/copy of IMG 0.jpg"]  # whichever came first is served
    assert sorted(places[k][0] for k in twins) == ["dead-letter", "served"]
    assert all(places[k] == ["served"] for k, v in expected(world).items() if v == SERVED and k not in twins)


# --- unpark and redrive ------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["ListObjectsV2", "CopyObject", "DeleteObjects"])
def test_unpark_under_faults_then_ingest(world: World, op: str) -> None:
    """Images parked during maintenance, unparked under three failures in a row of one operation
    (each kind in turn), then a plain rerun: nothing lost on the way, all ingested in the end."""
    from animl_ingest_cli.ops.unpark import unpark

    ctx = world.ctx()
    for kind in ("throttle", "drop", "applied-error", "applied-drop"):
        world.maintenance(True)
        seed_images(world, good=3, bad=1, prefix=f"{kind}/")
        parked = world.ingest(prefix=f"{kind}/")
        assert {o.outcome for o in parked.values()} == {"parked"}
        world.check(parked)
        world.maintenance(False)
        rule = world.faults.add(op, kind, times=3)
        for _ in range(2):  # under the faults, then a plain rerun
            try:
                unpark(ctx, concurrency=2, sleep=lambda s: None)
            except AnimlError as exc:  # a failed listing ends the run: one line, rerun
                assert "\n" not in exc.message
            world.check(final=False)
            world.faults.clear()
        assert rule.fired, f"the {op} {kind} fault was never reached"
        assert world.keys("parkinglot") == []
        world.check(world.ingest())


@pytest.mark.parametrize("kind", ["throttle", "applied-error", "applied-drop"])
def test_redrive_under_faults_heals_a_lost_api_answer(world: World, kind: str) -> None:
    """The API records the images but its answers are lost: dead-lettered with UNKNOWN_ID. A redrive
    under S3 faults, then an ingest, makes their serving copies (DUPLICATE_IMAGE with nothing
    served means: make them)."""
    seed_images(world, good=4, bad=0)
    world.api_fault("record_then_fail", 500, times=99)
    first = world.ingest(api=world.api(max_attempts=1))
    assert {o.outcome for o in first.values()} == {DEAD_LETTERED}
    assert len(world.stub.catalog.images()) == 4
    world.check(first)
    world.api_recovers()
    ctx = world.ctx()
    world.faults.add("CopyObject", kind, times=2)
    world.faults.add("DeleteObjects", kind, times=1)
    world.redrive_all(ctx)
    world.check(final=False)
    results = world.heal()
    assert all(o.outcome == SERVED and o.healed for o in results.values()), results
    world.check(results)


# --- SQS: the queue counts the deployment waits on ---------------------------------------------------------

def test_sqs_faults_on_queue_counts(world: World) -> None:
    from animl_ingest_cli.errors import StoreError
    from animl_ingest_cli.ops.queues import list_queues

    sqs = world.client("sqs")
    url = sqs.create_queue(QueueName="inferenceQueue-dev")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    ctx = world.ctx()
    world.faults.add("GetQueueAttributes", "throttle", times=2)
    world.faults.add("ListQueues", "drop", times=1)
    (queue,) = [q for q in list_queues(ctx) if q.name == "inferenceQueue-dev"]
    assert queue.visible == 1  # retried: the right count, not a zero that would end a drain
    world.faults.add("GetQueueAttributes", "error", times=None)
    with pytest.raises(StoreError) as err:
        list_queues(ctx)
    assert "InternalError" in err.value.message and "\n" not in err.value.message


@pytest.mark.parametrize("command", ["unpark", "redrive"])
def test_a_copy_whose_answer_was_lost_is_not_a_failure(world: World, command: str) -> None:
    """S3 made the copy, the answer was a 500, botocore retried: the conditional copy (only to a free
    key) now meets its own first attempt, 412. That is the copy having landed, not a failure."""
    from animl_ingest_cli.ops.deadletter import redrive
    from animl_ingest_cli.ops.unpark import unpark

    if command == "unpark":
        world.put_many(((f"cam/{i} +é.jpg", jpeg(i)) for i in range(3)), kind="parkinglot")
    else:
        world.api_fault("fail", 403, times=3)  # dead-lettered under Forbidden, then redriven
        seed_images(world, good=3, bad=0)
        world.ingest()
    ctx = world.ctx()
    rule = world.faults.add("CopyObject", "applied-error", times=1, bucket=BUCKETS["ingestion"])
    summary = unpark(ctx, concurrency=1, sleep=lambda s: None) if command == "unpark" else \
        redrive(ctx, "Forbidden", concurrency=1)
    assert rule.fired == 1
    assert summary.failed == 0 and summary.moved == 3, summary.to_dict()
    world.check(final=False)
    assert outcomes(world.ingest()) == expected(world)
    world.check()
