"""Crashes: the ingest and unpark stopped dead at any point, then run again; nothing is lost, and
the rerun heals what the crash left half-done (a record without serving copies, copies without
the source deleted, a dead letter with its source still there).

Two ways to die:
- in-process, exhaustively: `Crash` (a BaseException no code catches) raised at the N-th request
  to S3, SSM or animl-api, before it is sent or after it was applied, for every N of a small run
  (the default run: every state a crash can leave; -m stress: before and after every request);
- the installed CLI in a subprocess, SIGKILLed by a counting proxy at seeded request numbers
  (tests/reliability/faults.py), again and again, until a run completes (-m stress: more kills).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from animl_ingest_cli.api import GraphQLApi
from animl_ingest_cli.ingest import DEAD_LETTERED, SERVED
from tests.conftest import REPO
from tests.reliability.conftest import BUCKETS, STAGE, World, jpeg
from tests.reliability.faults import AFTER, BEFORE, Crash, FaultProxy, KillSwitch

PLACE = {SERVED: "served", DEAD_LETTERED: "dead-letter"}


def seed_small_run(world: World) -> dict[str, str]:
    """Four objects, one of each path: served (a wireless image, a batch image), dead-lettered by
    the API (no serial), and a file that is not an image at all."""
    world.put("cam 1/IMG 1+é.jpg", jpeg(1))
    world.put("batch-0d6c4d5e-1b8a-4c4e-9f55-2a1b3c4d5e6f/site A/IMG 2.JPG", jpeg(2))
    world.put("cam 1/no serial.jpg", jpeg(3, serial=None))
    world.put("cam 1/notes.jpg", b"<html>not a photo</html>")
    return {k: "served" if "IMG" in k else "dead-letter" for k in world.originals}


def crash_run(world: World, at: int | None, when: str) -> bool:
    """One ingest, at concurrency 1, that dies at request `at`; True when it did."""
    world.faults.crash_at, world.faults.crash_when = at, when
    try:
        world.ingest(api=world.faults.crashing_api(world.api()), concurrency=1)
    except Crash:
        return True
    finally:
        world.faults.crash_at = None
    return False


def crash_points(total: int, both: bool) -> list[tuple[int, str]]:
    """Where the sweep crashes a run of `total` requests. Nothing but its requests leaves the process,
    so a crash after request N leaves the buckets and the catalog as a crash before request N+1
    does: after every request, and before the first, is every state a crash can leave, once each
    (the default run). `both`: before and after every request (-m stress)."""
    if both:
        return [(at, when) for at in range(1, total + 1) for when in (BEFORE, AFTER)]
    return [(1, BEFORE)] + [(at, AFTER) for at in range(1, total + 1)]


@pytest.mark.parametrize("both", [False, pytest.param(True, marks=pytest.mark.stress)],
                         ids=["every-state", "before-and-after-each"])
def test_ingest_crashed_at_every_request_then_rerun(world: World, both: bool) -> None:
    world.faults.requests = 0
    want = seed_small_run(world)
    assert not crash_run(world, None, BEFORE)
    total = world.faults.requests  # the requests of one whole run
    assert total >= 20
    tried = 0
    for at, when in crash_points(total, both):
        world.reset()
        seed_small_run(world)
        world.faults.requests = 0
        assert crash_run(world, at, when), f"no crash at request {at} of {total}"
        tried += 1
        world.check(final=False)  # mid-way: nothing lost
        results = world.ingest()
        places = world.check(results).places  # the rerun finished it: each in exactly one place
        assert {k: p[0] for k, p in places.items()} == want, (at, when)
    assert tried == (2 * total if both else total + 1)


# --- the installed CLI, SIGKILLed ------------------------------------------------------------------------

def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "animl_ingest_cli", *args, "--stage", STAGE]


def run_killed(world: World, switch: KillSwitch, args: list[str], at: int | None, when: str,
               env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command, SIGKILLed by the proxy at request `at` (None: runs to its end)."""
    switch.arm(at, when)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env}, cwd=REPO)
    switch.pid = proc.pid
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.fixture
def proxied(served_world: World, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """moto's server and the api stand-in behind one kill switch; the CLI talks to the proxies."""
    switch = KillSwitch()
    aws, api = FaultProxy(served_world.endpoint or "", switch), FaultProxy(served_world.stub.url, switch)
    served_world.ssm.put_parameter(Name=f"/api/url-{STAGE}", Value=api.url, Type="String", Overwrite=True)
    env = {"AWS_ENDPOINT_URL": aws.url, "API_KEY": served_world.stub.api_key,
           "ANIML_MAINTENANCE_WAIT_SECONDS": "0"}
    yield served_world, switch, env, (aws, api)
    aws.close()
    api.close()


def kill_chain(world: World, switch: KillSwitch, args: list[str], env: dict[str, str], rng: random.Random,
               kills: int, source: str, per_object: int) -> subprocess.CompletedProcess[str]:
    """Run `args` killed at a seeded random request (about `per_object` requests per object left in
    the `source` bucket), `kills` times, each a rerun of the last, with the invariants checked
    after each kill; then once to its end, which is returned."""
    done = 0
    for _ in range(kills * 3):
        if done == kills or not world.keys(source):
            break
        at = rng.randint(1, 4 + per_object * len(world.keys(source)))
        r = run_killed(world, switch, args, at, rng.choice((BEFORE, AFTER)), env)
        done += r.returncode == -9
        world.check(final=False)
    assert done, "no run was killed"
    final = run_killed(world, switch, args, None, BEFORE, env)
    assert final.returncode in (0, 1), final.stderr
    return final


def reported(r: subprocess.CompletedProcess[str]) -> dict:
    """key -> outcome (complete ones) from a run's JSON Lines."""
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    return {x["key"]: x for x in lines if "key" in x and "outcome" in x}


# The kill chains: the default run kills each command about half as often as -m stress does.
MORE_KILLS = pytest.mark.parametrize("more", [False, pytest.param(True, marks=pytest.mark.stress)],
                                     ids=["kills", "more-kills"])


@MORE_KILLS
def test_ingest_killed_again_and_again_then_finishes(proxied, more: bool) -> None:  # noqa: ANN001
    """Killed at seeded points (twice, four times under stress), through S3 and API failures the CLI
    retries itself."""
    world, switch, env, (aws, api) = proxied
    aws.fail = {"CopyObject": [500, 503], "PutObject": [500], "GetObject": [503], "DeleteObject": [500]}
    api.fail = {"api:createImage": [502]}
    rng = random.Random(8)
    want = {}
    for i in range(6):
        world.put(f"cam {i % 2}/IMG {i} +%.JPG", jpeg(i))
        want[f"cam {i % 2}/IMG {i} +%.JPG"] = SERVED
    world.put("cam 0/no serial.jpg", jpeg(50, serial=None))
    want["cam 0/no serial.jpg"] = DEAD_LETTERED
    args = cli("ingest", f"s3://{BUCKETS['ingestion']}/", "--json", "--concurrency", "2")
    final = kill_chain(world, switch, args, env, rng, kills=4 if more else 2, source="ingestion",
                       per_object=7)
    places = world.check().places  # final: each in exactly one place
    assert {k: p[0] for k, p in places.items()} == {k: PLACE[v] for k, v in want.items()}
    for key, item in reported(final).items():
        assert item["outcome"] == want[key] and item["complete"], item
    assert not any(aws.fail.values()) and not any(api.fail.values())  # every fault was met


@MORE_KILLS
def test_unpark_then_ingest_killed_again_and_again(proxied, more: bool) -> None:  # noqa: ANN001
    """The deployment's last step under kill -9: the parking lot back to the ingestion bucket,
    then the ingest of it, each killed at seeded points and rerun (2 and 1 kills, 3 and 2 under stress)."""
    world, switch, env, _ = proxied
    rng = random.Random(88)
    world.put_many(((f"batch-1/IMG {i}.jpg", jpeg(200 + i)) for i in range(8)), kind="parkinglot")
    unpark = cli("unpark", "--json", "--concurrency", "2")
    kill_chain(world, switch, unpark, env, rng, kills=3 if more else 2, source="parkinglot", per_object=3)
    places = world.check(final=False).places
    assert all(p == ["ingestion"] for p in places.values()), places
    assert world.keys("parkinglot") == []
    ingest = cli("ingest", f"s3://{BUCKETS['ingestion']}/", "--json", "--concurrency", "2")
    kill_chain(world, switch, ingest, env, rng, kills=2 if more else 1, source="ingestion", per_object=7)
    assert all(p == ["served"] for p in world.check().places.values())


@MORE_KILLS
def test_redrive_then_ingest_killed_again_and_again(proxied, more: bool) -> None:  # noqa: ANN001
    """Images dead-lettered because the API refused the key, then redriven and ingested with the
    right key, both killed at seeded points (once each, twice under stress)."""
    world, switch, env, _ = proxied
    rng = random.Random(888)
    world.put_many((f"cam/IMG {i}.jpg", jpeg(300 + i)) for i in range(6))
    first = world.ingest(api=GraphQLApi(world.stub.url, "not-the-key", max_attempts=1))
    assert {o.reason for o in first.values()} == {"Forbidden"}
    redrive = cli("deadletter", "redrive", "--error", "Forbidden", "--json", "--concurrency", "2")
    kill_chain(world, switch, redrive, env, rng, kills=2 if more else 1, source="dead-letter", per_object=4)
    assert world.keys("dead-letter") == []
    ingest = cli("ingest", f"s3://{BUCKETS['ingestion']}/", "--json", "--concurrency", "2")
    kill_chain(world, switch, ingest, env, rng, kills=2 if more else 1, source="ingestion", per_object=7)
    assert all(p == ["served"] for p in world.check().places.values())


@pytest.mark.parametrize("when", [BEFORE, pytest.param(AFTER, marks=pytest.mark.stress)])
def test_ingest_killed_between_its_serving_writes_then_rerun(proxied, when: str) -> None:  # noqa: ANN001
    """kill -9 while the three serving writes are under way together (at the second of them: one
    may have landed, one is cut, one may not have started): the rerun finds the record
    (DUPLICATE_IMAGE), completes the set and deletes the source; each image in one place."""
    world, switch, env, _ = proxied
    args = cli("ingest", f"s3://{BUCKETS['ingestion']}/", "--json", "--concurrency", "1")
    world.put("cam/IMG_0000.JPG", jpeg(0))
    learn = run_killed(world, switch, args, None, BEFORE, env)  # the run's requests, in order
    assert learn.returncode == 0, learn.stderr
    second_write = switch.ops.index("api:createImage") + 3  # 1-based: createImage, then two writes
    assert sorted(switch.ops[second_write - 2:second_write + 1]) == ["CopyObject", "PutObject", "PutObject"]
    world.reset()
    key = world.put("cam/IMG_0001.JPG", jpeg(1))  # other bytes: the first run's claim is no concern
    killed = run_killed(world, switch, args, second_write, when, env)
    assert killed.returncode == -9 and switch.ops[-1] in ("CopyObject", "PutObject"), switch.ops
    world.check(final=False)
    assert world.keys("ingestion") == [key]
    if when == BEFORE:  # the second write never got through: a partial set at most
        assert len(world.keys("serving")) < 3
    final = run_killed(world, switch, args, None, BEFORE, env)
    assert final.returncode == 0, final.stderr
    assert world.check().places == {key: ["served"]}
    assert reported(final)[key]["outcome"] == SERVED
