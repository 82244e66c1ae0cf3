"""animl-api faults during ingest: refused, failing, malformed, hanging past the timeout, and failing
after the record was made. Each image ends served or dead-lettered (never lost, never silently
dropped), and what the API recorded without serving copies is healed by a redrive (docs/animl.md)."""

from __future__ import annotations

import pytest

from animl_ingest_cli import keys
from animl_ingest_cli.ingest import DEAD_LETTERED, SERVED
from tests.reliability.conftest import World, jpeg

N = 4


def seed(world: World) -> list[str]:
    return world.put_many((f"site/IMG_{i:04d} +%.jpg", jpeg(i)) for i in range(N))


# (fault, args, kwargs), the answer the images get on a first run with 2 attempts per call
TRANSIENT = {
    "500 then recovers": ("fail", (500,), {"times": 1, "mutation": "createImage"}),
    "429 throttled": ("fail", (429,), {"times": 1}),
    "502 from the gateway": ("fail", (502,), {"times": 1}),
    "malformed JSON once": ("malformed", (), {"times": 1}),
    "hang past the timeout once": ("hang", (1.0,), {"times": 1}),
    "answer lost after the record (500)": ("record_then_fail", (500,), {"times": 1}),
    "answer lost after the record (hang)": ("record_then_hang", (1.0,), {"times": 1}),
}
PERSISTENT = {
    "403 Forbidden": ("fail", (403,), {"times": 99}, "Forbidden"),
    "500 every time": ("fail", (500,), {"times": 99}, "Internal server error"),
    "malformed JSON every time": ("malformed", (), {"times": 99}, "API_ERROR"),
    "hang every time": ("hang", (1.0,), {"times": 99}, "API_TIMEOUT"),
    "record made, answer always lost": ("record_then_fail", (500,), {"times": 99}, "Internal server error"),
    "record made, then hangs": ("record_then_hang", (1.0,), {"times": 99}, "API_TIMEOUT"),
}


@pytest.mark.parametrize("name", sorted(TRANSIENT))
def test_transient_api_fault_is_retried_and_served(world: World, name: str) -> None:
    kind, args, kw = TRANSIENT[name]
    seed(world)
    world.api_fault(kind, *args, **kw)
    results = world.ingest(api=world.api(max_attempts=2, timeout=0.4), concurrency=1)
    assert {o.outcome for o in results.values()} == {SERVED}, results
    if kind.startswith("record_then"):  # the retry met the record: a duplicate with nothing served
        assert sum(o.healed for o in results.values()) == 1
    world.check(results)


@pytest.mark.parametrize("name", sorted(PERSISTENT))
def test_persistent_api_fault_dead_letters_then_a_redrive_heals(world: World, name: str) -> None:
    kind, args, kw, folder = PERSISTENT[name]
    seed(world)
    world.api_fault(kind, *args, **kw)
    results = world.ingest(api=world.api(max_attempts=2, timeout=0.4))
    for o in results.values():
        assert o.outcome == DEAD_LETTERED and o.complete and o.reason == folder, o
        assert o.image_id is None  # the id was never heard: UNKNOWN_ID
    assert {k.split("/")[:2] == [folder, keys.UNKNOWN_ID] for k in world.keys("dead-letter")} == {True}
    recorded = len(world.stub.catalog.images())
    assert recorded == (N if kind.startswith("record_then") else 0)
    world.check(results)  # what the API recorded has a dead letter
    healed = world.heal()
    assert {o.outcome for o in healed.values()} == {SERVED}
    assert sum(o.healed for o in healed.values()) == recorded  # made the missing copies
    assert len(world.stub.catalog.images()) == N
    world.check(healed)


def test_error_report_refused_never_blocks_the_dead_letter(world: World) -> None:
    """createImageError answered 400 or 500 after a serving copy failed: still dead-lettered."""
    from tests.reliability.conftest import BUCKETS

    seed(world)
    world.faults.add("PutObject", "error", times=None, bucket=BUCKETS["serving"])
    world.api_fault("fail", 400, times=2, mutation="createImageError")
    world.api_fault("fail", 500, times=99, mutation="createImageError")
    results = world.ingest(api=world.api(max_attempts=2))
    assert {o.outcome for o in results.values()} == {DEAD_LETTERED}
    assert {o.image_id is not None for o in results.values()} == {True}
    world.check(results)
    healed = world.heal()
    assert {o.outcome for o in healed.values()} == {SERVED}
    world.check(healed)
