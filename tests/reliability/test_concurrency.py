"""Two actors are normal: N actors (2 to 8) over the same objects at the same moment, against moto's
server on 127.0.0.1 (with S3's conditional-write rules, s3rules.py), as real threads each with its own
clients, contexts and ingestor, and as real separate processes (the installed CLI), every request
held for a seeded random time; then the invariant checker over every bucket, reruns until done, and
the invariants again. One test per case of docs/concurrency.md; each failed on the code before it.

The default run tries one seed of each race and one signal chain; `-m stress` runs the rest
(docs/concurrency.md has the figures of one such run).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from animl_ingest_cli import aws
from animl_ingest_cli.api import GraphQLApi
from animl_ingest_cli.context import StageContext, open_stage
from animl_ingest_cli.errors import RefusedError
from animl_ingest_cli.ingest import DEAD_LETTERED, Ingestor, Outcome
from animl_ingest_cli.limits import decode_meta
from tests.conftest import REPO
from tests.reliability import figures
from tests.reliability.conftest import BUCKETS, STAGE, World, jpeg
from tests.reliability.faults import FaultProxy, KillSwitch

CI_SEEDS = (1,)
STRESS_SEEDS = tuple(range(2, 41))  # 5 races x 39 seeds, + the default run: over 200 seeded runs
SEEDS = [*CI_SEEDS, *(pytest.param(s, marks=pytest.mark.stress) for s in STRESS_SEEDS)]
SIGNAL_SEEDS = [pytest.param(s, marks=pytest.mark.stress) for s in range(1, 5)]  # 12 chains of 12 runs
MAX_HOLD = 0.03  # the longest a request is held (seconds)


def count_run(actors: int) -> None:
    figures.add("races run")
    figures.add("actors", actors)


# --- actors -------------------------------------------------------------------------------------------

def held(rng: random.Random, lock: threading.Lock) -> Callable[[], float]:
    def hold() -> float:
        with lock:
            return rng.random() * MAX_HOLD
    return hold


def jittered_ctx(rng: random.Random) -> StageContext:
    """A dev-stage context of its own whose every AWS request is held a seeded random time."""
    lock = threading.Lock()
    hold = held(rng, lock)
    clients: dict[str, Any] = {}

    def factory(service: str) -> Any:
        if service not in clients:
            c = aws.client(service)
            c.meta.events.register_first(f"before-send.{c.meta.service_model.service_id.hyphenize()}",
                                         lambda **_: time.sleep(hold()))
            clients[service] = c
        return clients[service]

    return open_stage(STAGE, client_factory=factory)


@dataclass
class Race:
    """Actors started together (a barrier), joined, their outcomes and errors kept."""

    world: World
    rng: random.Random
    threads: list[threading.Thread] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _start: threading.Barrier = field(default_factory=lambda: threading.Barrier(1))

    def thread(self, fn: Callable[[StageContext, random.Random], list[Outcome] | None]) -> None:
        rng = random.Random(self.rng.random())

        def run() -> None:
            try:
                ctx = jittered_ctx(rng)
                self._start.wait()  # every actor starts at the same moment
                got = fn(ctx, rng)
                with self._lock:
                    self.outcomes.extend(got or [])
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                with self._lock:
                    self.errors.append(exc)
        self.threads.append(threading.Thread(target=run))

    def process(self, args: list[str], env: dict[str, str]) -> None:
        self.procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                           text=True, env={**os.environ, **env}, cwd=REPO))

    def run(self) -> Race:
        self._start = threading.Barrier(len(self.threads)) if self.threads else self._start
        for t in self.threads:
            t.start()
        for t in self.threads:
            t.join(timeout=180)
        for p in self.procs:
            out, err = p.communicate(timeout=180)
            assert "Traceback" not in err, err
            assert p.returncode in (0, 1), (p.returncode, err[-2000:])
        count_run(len(self.threads) + len(self.procs))
        assert not self.errors, self.errors
        return self


def ingest_actor(world: World, api: Callable[[], Any] | None = None,
                 concurrency: int = 2) -> Callable[[StageContext, random.Random], list[Outcome]]:
    def run(ctx: StageContext, rng: random.Random) -> list[Outcome]:
        return list(world.ingest(ctx, api() if api else world.api(), concurrency=concurrency).values())
    return run


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "animl_ingest_cli", *args, "--stage", STAGE]


@pytest.fixture
def proxied(served_world: World) -> Iterator[tuple[World, dict[str, str], FaultProxy, FaultProxy]]:
    """moto's server and the api stand-in behind proxies that hold each request a seeded random
    time: how the separate processes reach them."""
    switch = KillSwitch()
    aws_proxy = FaultProxy(served_world.endpoint or "", switch)
    api_proxy = FaultProxy(served_world.stub.url, switch)
    served_world.ssm.put_parameter(Name=f"/api/url-{STAGE}", Value=api_proxy.url, Type="String",
                                   Overwrite=True)
    env = {"AWS_ENDPOINT_URL": aws_proxy.url, "API_KEY": served_world.stub.api_key,
           "ANIML_MAINTENANCE_WAIT_SECONDS": "0"}
    yield served_world, env, aws_proxy, api_proxy
    aws_proxy.close()
    api_proxy.close()


def jitter_proxies(rng: random.Random, *proxies: FaultProxy) -> None:
    lock = threading.Lock()
    for p in proxies:
        p.jitter = held(random.Random(rng.random()), lock)


def finish(world: World, *, api: Callable[[], Any] | None = None, rounds: int = 6) -> dict[str, Outcome]:
    """Rerun the ingest until the ingestion bucket is empty (what an operator, or Lambda's retries,
    do); the invariants after each rerun. Returns each key's last outcome."""
    results: dict[str, Outcome] = {}
    for _ in range(rounds):
        if not world.keys("ingestion"):
            break
        results.update(world.ingest(api=api() if api else None))
        world.check(final=False)
    assert not world.keys("ingestion"), world.keys("ingestion")
    return results


def bad_key_api(world: World) -> GraphQLApi:
    """The API refusing the key: every image dead-lettered as `Forbidden` under UNKNOWN_ID."""
    return GraphQLApi(world.stub.url, "not-the-key", max_attempts=1)


# --- 1. dead-letter keys never collide -------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_dead_letters_of_same_named_images_never_overwrite_each_other(proxied: Any, seed: int) -> None:
    """Cameras all name files IMG_0001.JPG; with the API refusing, every one goes to
    `Forbidden/UNKNOWN_ID/IMG_0001.jpg`. Actors dead-lettering them at once each get a key of
    their own (If-None-Match), never one over another."""
    world = proxied[0]
    rng = random.Random(seed)
    n_images, n_threads = rng.randint(4, 8), rng.randint(2, 4)
    for i in range(n_images):
        world.put(f"cam {i}/IMG_0001.JPG", jpeg(1000 * seed + i))
    race = Race(world, rng)
    for _ in range(n_threads):  # (the CLI stops at a refused key: its processes race in the tests below)
        race.thread(ingest_actor(world, lambda: bad_key_api(world)))
    race.run()
    world.check(final=False)
    results = finish(world, api=lambda: bad_key_api(world))
    places = world.check(results).places
    assert all(p == ["dead-letter"] for p in places.values()), places
    dead = world.keys("dead-letter")
    assert len(dead) == n_images and all(k.startswith("Forbidden/UNKNOWN_ID/IMG_0001") for k in dead)


def test_a_later_image_under_the_same_key_never_replaces_the_first_dead_letter(world: World) -> None:
    """Not even a race: `cam/IMG_0001.JPG` dead-lettered, then a new image under the same key while
    the API still refuses it. Same original key, other bytes: a second dead letter, not over the
    first (the bytes are compared, not only the original key)."""
    first, second = jpeg(1), jpeg(2)
    for data in (first, second):
        world.s3.put_object(Bucket=BUCKETS["ingestion"], Key="cam/IMG_0001.JPG", Body=data)
        out = world.ingest(api=bad_key_api(world))["cam/IMG_0001.JPG"]
        assert out.outcome == DEAD_LETTERED and out.complete, out
    held_ = {}
    for key in world.keys("dead-letter"):
        r = world.s3.get_object(Bucket=BUCKETS["dead-letter"], Key=key)
        held_[hashlib.md5(r["Body"].read()).hexdigest()] = decode_meta(r["Metadata"]["original-key"])
    assert held_ == {hashlib.md5(first).hexdigest(): "cam/IMG_0001.JPG",
                     hashlib.md5(second).hexdigest(): "cam/IMG_0001.JPG"}


# --- 2. two ingests of the same objects --------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_actors_ingesting_the_same_objects_at_once(proxied: Any, seed: int) -> None:
    """A rerun beside a running one, a redelivered event handled at the same moment: 2 to 8 actors
    over the same objects. The loser never deletes what the winner wrote."""
    world, env, aws_proxy, api_proxy = proxied
    rng = random.Random(seed)
    want = {}
    for i in range(rng.randint(3, 6)):
        want[world.put(f"cam {i % 2}/IMG {i}.JPG", jpeg(2000 * seed + i))] = "served"
    want[world.put("cam 0/no serial.jpg", jpeg(2000 * seed + 99, serial=None))] = "dead-letter"
    race = Race(world, rng)
    for _ in range(rng.randint(2, 6)):
        race.thread(ingest_actor(world, concurrency=rng.randint(1, 3)))
    if seed % 2 == 1:
        jitter_proxies(rng, aws_proxy, api_proxy)
        for _ in range(rng.randint(1, 2)):
            race.process(cli("ingest", f"s3://{BUCKETS['ingestion']}/", "--json", "--concurrency", "2"), env)
    race.run()
    world.check(final=False)
    finish(world)
    places = world.check().places
    assert {k: p for k, p in places.items()} == {k: [v] for k, v in want.items()}


# --- 3. the same bytes under two keys, in two processes -------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_same_bytes_under_several_keys_at_once(proxied: Any, seed: int) -> None:
    """One image under 2 to 4 keys, each ingested by its own actor (its own ingestor, or its own
    process): exactly one is served, the others are DUPLICATE_IMAGE (CONTRACT.md), never two served
    or one counted served whose copies are another key's."""
    world, env, aws_proxy, api_proxy = proxied
    rng = random.Random(seed)
    data = jpeg(3000 + seed)
    copies = [world.put(f"dup {i}/IMG.jpg", data) for i in range(rng.randint(2, 4))]
    race = Race(world, rng)
    procs = seed % 2 == 0
    if procs:
        jitter_proxies(rng, aws_proxy, api_proxy)
    for i, key in enumerate(copies):
        prefix = key.rsplit("/", 1)[0] + "/"
        if procs and i % 2:
            race.process(cli("ingest", f"s3://{BUCKETS['ingestion']}/{prefix}", "--json"), env)
        else:
            race.thread(lambda ctx, rng, prefix=prefix: list(world.ingest(ctx, world.api(),
                                                                          prefix=prefix).values()))
    race.run()
    world.check(final=False)
    finish(world)
    places = world.check().places
    assert sorted(p[0] for p in places.values()) == ["dead-letter"] * (len(copies) - 1) + ["served"]
    dead = world.keys("dead-letter")
    assert len(dead) == len(copies) - 1 and all(k.startswith("DUPLICATE_IMAGE/") for k in dead), dead


# --- 4. a redelivered event ------------------------------------------------------------------------------

def s3_event(key: str, etag: str, bucket: str = BUCKETS["ingestion"]) -> dict[str, Any]:
    from urllib.parse import quote_plus

    return {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": bucket},
                                "object": {"key": quote_plus(key), "eTag": etag}}}]}


@pytest.fixture
def lambda_env(served_world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    from animl_ingest_cli import lambda_handler

    monkeypatch.setenv("STAGE", STAGE)
    lambda_handler.reset()
    return served_world


@pytest.mark.parametrize("seed", SEEDS)
def test_redelivered_event_for_an_ingested_object_is_done(lambda_env: World, seed: int) -> None:
    """S3 delivers events at least once: the same event handled 2 to 4 times, at once or after the
    object was ingested and deleted, is done each time (never UnaccountedObjects, which would send
    it to the failed-event queue), and the image is in exactly one place."""
    from animl_ingest_cli import lambda_handler

    world, rng = lambda_env, random.Random(seed)
    keys_ = [world.put(f"cam/IMG {i}.jpg", jpeg(4000 + 10 * seed + i)) for i in range(2)]
    keys_.append(world.put("cam/no serial.jpg", jpeg(4000 + 10 * seed + 9, serial=None)))
    events = [s3_event(k, world.originals[k]) for k in keys_]
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def invoke(event: dict[str, Any], pause: float) -> None:
        time.sleep(pause)
        try:
            r = lambda_handler.handler(event)
            with lock:
                results.append(r)
        except BaseException as exc:  # noqa: BLE001 - reported below
            with lock:
                errors.append(exc)

    deliveries = [(e, rng.random() * 0.3) for e in events for _ in range(rng.randint(2, 4))]
    threads = [threading.Thread(target=invoke, args=d) for d in deliveries]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    count_run(len(threads))
    for e in events:  # and once more, long after
        invoke(e, 0)
    assert not errors, errors
    got = [o for r in results for o in r["results"]]
    assert all(o["complete"] for o in got), [o for o in got if not o["complete"]]
    places = world.check().places
    assert places == {keys_[0]: ["served"], keys_[1]: ["served"], keys_[2]: ["dead-letter"]}


# --- 5. maintenance turned on while unpark runs ----------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_maintenance_turned_on_while_unpark_runs(served_world: World, seed: int) -> None:
    """The deployment's last step: unpark copies the parking lot back while the function ingests
    what arrives; then maintenance is turned on again at a seeded moment. The function parks again
    what unpark just copied back; unpark never deletes such a re-parked object. Then maintenance off,
    unpark and ingest rerun until done."""
    from animl_ingest_cli.ops.moves import MoveInterrupted
    from animl_ingest_cli.ops.unpark import unpark

    world, rng = served_world, random.Random(seed)
    os.environ["ANIML_MAINTENANCE_WAIT_SECONDS"] = "0"
    parked = [world.put(f"batch-x/IMG {i}.jpg", jpeg(5000 + 50 * seed + i), kind="parkinglot")
              for i in range(rng.randint(6, 14))]
    world.maintenance(False)
    stop = threading.Event()
    race = Race(world, rng)

    def function(ctx: StageContext, rng: random.Random) -> list[Outcome]:
        """The ingest function: everything that arrives, the flag read anew each pass."""
        seen: list[Outcome] = []
        while not stop.is_set():
            pass_ctx = jittered_ctx(random.Random(rng.random()))
            ing = Ingestor(pass_ctx, world.api())
            for info in pass_ctx.store("ingestion").list():
                seen.extend(ing.process(pass_ctx.store("ingestion"), info.key, delete_source=True,
                                       etag=info.etag))
            time.sleep(0.01)
        return seen

    def operator(ctx: StageContext, rng: random.Random) -> None:
        try:
            unpark(ctx, concurrency=rng.randint(1, 4), sleep=lambda s: None)
        except (MoveInterrupted, RefusedError):
            pass  # stopped by the flag turned on (refused, or failures for a rerun)
        finally:
            time.sleep(0.3)
            stop.set()

    def flip(ctx: StageContext, rng: random.Random) -> None:
        time.sleep(rng.random() * 0.6)
        world.maintenance(True)

    for fn in (function, function, operator, flip):
        race.thread(fn)
    race.run()
    world.check(final=False)
    world.maintenance(False)
    for _ in range(6):  # maintenance off: unpark and ingest again until nothing is left
        unpark(world.ctx(), concurrency=2, sleep=lambda s: None)
        finish(world)
        world.check(final=False)
        if not world.keys("parkinglot"):
            break
    places = world.check().places
    assert all(places[k] == ["served"] for k in parked), places


# --- 8. the Lambda handler deletes only from the stage's ingestion bucket --------------------------------

def test_lambda_ignores_events_of_other_buckets(lambda_env: World) -> None:
    from animl_ingest_cli import lambda_handler

    world = lambda_env
    world.s3.create_bucket(Bucket="someone-elses-bucket",
                           CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    data = jpeg(6000)
    world.s3.put_object(Bucket="someone-elses-bucket", Key="IMG.jpg", Body=data)
    world.s3.put_object(Bucket=BUCKETS["serving"], Key="IMG.jpg", Body=data)
    for bucket in ("someone-elses-bucket", BUCKETS["serving"]):
        r = lambda_handler.handler(s3_event("IMG.jpg", hashlib.md5(data).hexdigest(), bucket))
        assert r["ignored"] == 1 and r["total"] == 0, r
        assert world.s3.get_object(Bucket=bucket, Key="IMG.jpg")["Body"].read() == data
    assert world.keys("dead-letter") == [] and world.keys("parkinglot") == []


# --- signals: SIGINT (once, twice) and SIGTERM at random moments, reruns until done ------------------------

SIGNALS = {"sigint": (signal.SIGINT,), "sigint-twice": (signal.SIGINT, signal.SIGINT),
           "sigterm": (signal.SIGTERM,)}


def signalled(args: list[str], env: dict[str, str], sigs: tuple[int, ...], switch: KillSwitch,
              at: int) -> int:
    """Run `args`; once it has made `at` requests (through the proxies: it is at work, past its
    start-up), send it `sigs`, 50 ms apart. Returns its exit code."""
    switch.arm(None, "before")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env}, cwd=REPO)
    while sigs and proc.poll() is None and switch.seen < at:
        time.sleep(0.005)
    for s in sigs:
        if proc.poll() is None:
            proc.send_signal(s)
            time.sleep(0.05)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err[-2000:]
    return proc.returncode


@pytest.mark.parametrize("seed", SIGNAL_SEEDS)
@pytest.mark.parametrize("how", sorted(SIGNALS))
def test_signals_at_random_moments_then_reruns(proxied: Any, how: str, seed: int) -> None:
    """The installed CLI, interrupted at a seeded moment of ingest, unpark and redrive, by Ctrl-C
    once, twice, or SIGTERM; rerun (interrupted again, then to its end) until done; the invariants
    after every run."""
    world, env, aws_proxy, api_proxy = proxied
    switch = aws_proxy.switch
    rng = random.Random(seed * 31 + len(how))
    jitter_proxies(rng, aws_proxy, api_proxy)
    sigs = SIGNALS[how]
    world.put_many(((f"batch-y/IMG {i}.jpg", jpeg(7000 + 40 * seed + i)) for i in range(5)), "parkinglot")
    world.put_many((f"cam/IMG {i}.jpg", jpeg(7100 + 40 * seed + i)) for i in range(3))
    world.put("cam/no serial.jpg", jpeg(7190 + seed, serial=None))
    steps = [
        cli("unpark", "--json", "--concurrency", "2"),
        cli("ingest", f"s3://{BUCKETS['ingestion']}/", "--json", "--concurrency", "2"),
        cli("deadletter", "redrive", "--error", "Unknown Serial Number", "--json"),
        cli("ingest", f"s3://{BUCKETS['ingestion']}/", "--json", "--concurrency", "2"),
    ]
    signals = 0
    for args in steps:
        for attempt in range(3):
            if attempt and "redrive" in args and not world.keys("dead-letter"):
                break  # an interrupted redrive had moved everything: nothing left (a rerun exits 2)
            code = signalled(args, env, sigs if attempt < 2 else (), switch, rng.randint(1, 40))
            signals += code in (130, -signal.SIGTERM, -signal.SIGINT)
            world.check(final=False)
            if code in (0, 1):  # ended before its signal (a short step): done, nothing to rerun
                break
            assert attempt < 2, code  # the last run, never signalled, ends as a run does
    count_run(len(steps) * 3)
    places = world.check().places
    assert sorted({p[0] for p in places.values()}) == ["dead-letter", "served"], places
    assert world.keys("parkinglot") == [] and world.keys("ingestion") == []
    figures.add("crash points", signals)



def test_ctrl_c_twice_during_an_ingest_then_rerun(proxied: Any) -> None:
    """The default run's share of the signals: Ctrl-C twice at a seeded moment of an ingest of
    images in two places' worth of work, then the rerun to its end; the invariants after each."""
    world, env, aws_proxy, api_proxy = proxied
    rng = random.Random(5)
    jitter_proxies(rng, aws_proxy, api_proxy)
    world.put_many((f"cam/IMG {i}.jpg", jpeg(7500 + i)) for i in range(4))
    args = cli("ingest", f"s3://{BUCKETS['ingestion']}/", "--json", "--concurrency", "2")
    code = signalled(args, env, (signal.SIGINT, signal.SIGINT), aws_proxy.switch, rng.randint(4, 14))
    world.check(final=False)
    assert signalled(args, env, (), aws_proxy.switch, 0) in (0, 1)
    count_run(2)
    figures.add("crash points", code in (130, -signal.SIGINT))
    assert all(p == ["served"] for p in world.check().places.values())
