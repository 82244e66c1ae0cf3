"""The reliability suite's world: moto's server, the animl-api stand-in, the dev stage's buckets,
faults on every AWS client the code makes, and the invariant checker over all of it."""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from animl_ingest_cli import aws
from animl_ingest_cli.api import GraphQLApi
from animl_ingest_cli.claims import PREFIX as CLAIMS
from animl_ingest_cli.context import StageContext, open_stage
from animl_ingest_cli.ingest import Ingestor, Outcome
from tests.apistub import ApiStub
from tests.awsfixtures import BUCKETS, STAGE
from tests.metadata.builders import camera_jpeg
from tests.reliability import figures
from tests.reliability.faults import AwsFaults
from tests.reliability.invariants import Report, S3View, check

KINDS = tuple(BUCKETS)


def jpeg(n: int, serial: str | None = "CAM-1", date: str | None = "2024:05:06 07:08:09",
         size: tuple[int, int] = (48, 32)) -> bytes:
    """A small real JPEG with a camera trap's EXIF (serial, date), made unique by `n` (a comment)."""
    data = camera_jpeg(serial, date, size, seed=n)
    note = f"image {n}".encode()
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(note) + 2) + note + data[2:]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture(autouse=True)
def quick_botocore_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's standard retries wait up to 15 s for a throttled call; the faults here are the
    same, the waits a thousand times shorter (in this process; subprocesses wait for real)."""
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "_DEFAULT_BACKOFF_CONFIG",
                        {"throttling_base_scale": 0.001, "non_throttling_base_scale": 0.0005})


@pytest.fixture(autouse=True)
def seeded() -> None:
    random.seed(8)  # the API client's retry jitter


@dataclass
class World:
    """The dev stage on moto's server with the api stand-in. `originals` is what the test put in
    (key -> md5); `faults` reach every client the contexts from `ctx()` make."""

    endpoint: str | None  # moto's server, or None for moto in-process
    stub: ApiStub
    tmp: Path
    s3: Any = None
    ssm: Any = None
    faults: AwsFaults = field(default_factory=AwsFaults)
    originals: dict[str, str] = field(default_factory=dict)
    api_faults_queued: int = 0
    _clients: dict[str, Any] = field(default_factory=dict)
    _resets: int = 0
    _first_stub: ApiStub | None = None

    def __post_init__(self) -> None:
        self._first_stub = self.stub
        self.s3 = self.client("s3")
        self.ssm = self.client("ssm")
        for name in BUCKETS.values():
            self.s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        self.ssm.put_parameter(Name=f"/api/url-{STAGE}", Value=self.stub.url, Type="String")

    def client(self, service: str) -> Any:
        """A plain client of the test's own (no faults), from a session sharing the loaded models."""
        return boto3.session.Session().client(service, endpoint_url=self.endpoint)

    # --- contents -------------------------------------------------------------------------------
    def put(self, key: str, data: bytes, kind: str = "ingestion") -> str:
        self.s3.put_object(Bucket=BUCKETS[kind], Key=key, Body=data)
        self.originals[key] = md5(data)
        return key

    def put_many(self, items: Iterable[tuple[str, bytes]], kind: str = "ingestion") -> list[str]:
        return [self.put(k, d, kind) for k, d in items]

    def keys(self, kind: str, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKETS[kind], Prefix=prefix)
        return sorted(o["Key"] for p in pages for o in p.get("Contents", [])
                      if not o["Key"].startswith(CLAIMS))

    def maintenance(self, on: bool) -> None:
        self.ssm.put_parameter(Name=f"/images/maintenance-mode-{STAGE}", Value="true" if on else "false",
                               Type="String", Overwrite=True)

    def reset(self) -> None:
        """Empty buckets and a new api stand-in with an empty catalog (same key): a clean slate
        within one test, cheaper than a new test."""
        for kind, name in BUCKETS.items():
            for key in self.keys(kind):
                self.s3.delete_object(Bucket=name, Key=key)
        self.api_recovers()
        if self.stub is not self._first_stub:
            self.stub.stop()
        self._resets += 1
        self.stub = ApiStub(self.tmp / f"catalog-{self._resets}.sqlite", self.stub.api_key).start()
        self.ssm.put_parameter(Name=f"/api/url-{STAGE}", Value=self.stub.url, Type="String", Overwrite=True)
        self.originals.clear()

    def close(self) -> None:
        self.api_recovers()
        if self.stub is not self._first_stub:
            self.stub.stop()

    # --- the code under test --------------------------------------------------------------------
    def ctx(self) -> StageContext:
        """A fresh dev-stage context (names and the maintenance flag read anew) whose AWS clients
        carry `faults`; the clients themselves are made once per test (a client costs 20 ms)."""
        return open_stage(STAGE, client_factory=self._faulty_client)

    def _faulty_client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.faults.attach(aws.client(service))
        return self._clients[service]

    def api(self, **kw: Any) -> GraphQLApi:
        kw.setdefault("max_attempts", 3)
        kw.setdefault("timeout", 2.0)
        return self.stub.client(**kw)

    def ingest(self, ctx: StageContext | None = None, api: Any = None, concurrency: int = 4,
               prefix: str = "") -> dict[str, Outcome]:
        """`animl-ingest ingest s3://<ingestion>/<prefix>` in-process: the core's worker pool (what the CLI
        runs) over the CLI's own listing. Returns key -> outcome."""
        from animl_ingest_cli.pool import Limits, process_all
        from animl_ingest_cli.sources import iter_work, parse_sources

        ctx = ctx or self.ctx()
        results: dict[str, Outcome] = {}
        work = iter_work(ctx, parse_sources([f"s3://{BUCKETS['ingestion']}/{prefix}"]))
        run = process_all(Ingestor(ctx, api or self.api()), work, Limits.default(images=concurrency))
        try:
            for o in run:
                results[o.key] = o
        finally:
            for o in run.close():
                results[o.key] = o
        return results

    def redrive_all(self, ctx: StageContext | None = None) -> int:
        """Every dead-letter folder back to where it came from; returns the objects moved."""
        from animl_ingest_cli.ops.deadletter import list_errors, redrive

        ctx = ctx or self.ctx()
        moved = 0
        for folder in list_errors(ctx):
            s = redrive(ctx, folder.error, concurrency=4)
            moved += s.moved + s.already
        return moved

    def api_fault(self, kind: str, *args: Any, **kw: Any) -> None:
        """Queue a fault in the api stand-in (`fail`, `malformed`, `hang`, `record_then_fail`,
        `record_then_hang`), counted for the figures when the api recovers."""
        getattr(self.stub, kind)(*args, **kw)
        self.api_faults_queued += kw.get("times", 1)

    def api_recovers(self) -> None:
        """The api stand-in's queued faults are dropped: it answers normally from now on."""
        with self.stub._lock:  # noqa: SLF001 - the stand-in has no public way to forget its faults
            left = sum(f.times for f in self.stub._faults)  # noqa: SLF001
            self.stub._faults.clear()  # noqa: SLF001
        figures.add("faults injected", self.api_faults_queued - left)
        self.api_faults_queued = 0

    # --- the promise ----------------------------------------------------------------------------
    def check(self, results: dict[str, Outcome] | None = None, *, final: bool = True) -> Report:
        """The invariants after a run; `results` (the run's outcomes) name what it left unfinished
        and what it reported."""
        results = results or {}
        unfinished = {k for k, o in results.items() if not o.complete}
        reported = {k: o.outcome for k, o in results.items() if o.complete}
        views = {kind: S3View(self.s3, BUCKETS[kind]) for kind in KINDS}
        return check(views, self.originals, self.stub.catalog, final=final, unfinished=unfinished,
                     reported=reported).assert_ok()

    def heal(self, rounds: int = 3) -> dict[str, Outcome]:
        """With the faults gone: rerun the ingest, then redrive every dead letter and ingest again
        until the buckets stop changing (a redrive heals what the API recorded but could not be
        served; the image's own errors come back where they were). Returns each key's last outcome."""
        self.faults.clear()
        self.api_recovers()
        results = self.ingest()
        for _ in range(rounds):
            before = (self.keys("dead-letter"), self.keys("serving"), self.keys("ingestion"))
            self.redrive_all()
            results.update(self.ingest())
            if (self.keys("dead-letter"), self.keys("serving"), self.keys("ingestion")) == before:
                break
        return results


def _world(endpoint: str | None, stub: ApiStub, tmp: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("API_KEY", stub.api_key)
    w = World(endpoint, stub, tmp)
    yield w
    w.close()


@pytest.fixture
def world(aws_mock: None, api_stub: ApiStub, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """moto in-process: ten times faster than its server, for everything that runs in this process."""
    yield from _world(None, api_stub, tmp_path, monkeypatch)


@pytest.fixture
def served_world(moto_server: str, api_stub: ApiStub, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """moto's server on loopback, for the installed CLI in a subprocess."""
    yield from _world(moto_server, api_stub, tmp_path, monkeypatch)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    counts = figures.snapshot()
    if not any(counts.values()):
        return
    terminalreporter.write_line("reliability: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    target = os.environ.get("RELIABILITY_FIGURES")
    if target:
        Path(target).write_text(json.dumps(counts, indent=2) + "\n")
