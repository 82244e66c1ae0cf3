"""The core worker pool: many images in flight for the network, pixel work bounded, bytes bounded,
progress counts, and a stop that loses nothing. Real files, the local stage's buckets, and the
animl-api stand-in on loopback answering createImage after a delay (animl-api at a distance)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import animl_ingest_cli.ingest as ingest_module
from animl_ingest_cli.api import GraphQLApi
from animl_ingest_cli.context import open_stage
from animl_ingest_cli.ingest import SERVED, SKIPPED, Ingestor
from animl_ingest_cli.pool import Limits, held_bytes, process_all
from animl_ingest_cli.sources import WorkItem, iter_work, parse_sources
from tests.metadata.builders import camera_jpeg


@pytest.fixture
def local(tmp_path: Path) -> Any:
    return open_stage("local", local_root=tmp_path / "animl-local")


def folder_of(tmp_path: Path, n: int, size: tuple[int, int] = (320, 240)) -> Path:
    folder = tmp_path / "card"
    folder.mkdir()
    for i in range(n):
        (folder / f"IMG_{i:04d}.JPG").write_bytes(camera_jpeg(serial=f"CAM-{i}", size=size, seed=i))
    return folder


class PixelWatch:
    """Wraps make_thumbnails: how many run at the same moment (each holds its slot 30 ms)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = self.peak = self.calls = 0
        self._lock = threading.Lock()
        real = ingest_module.make_thumbnails

        def watched(data: bytes) -> Any:
            with self._lock:
                self.now += 1
                self.calls += 1
                self.peak = max(self.peak, self.now)
            try:
                threading.Event().wait(0.03)
                return real(data)
            finally:
                with self._lock:
                    self.now -= 1

        monkeypatch.setattr(ingest_module, "make_thumbnails", watched)


def test_images_wait_on_the_api_together_while_pixel_work_keeps_to_the_cpu_slots(
        tmp_path: Path, local: Any, api_stub: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    api_stub.delays["createImage"] = 0.4
    pixels = PixelWatch(monkeypatch)
    folder = folder_of(tmp_path, 16)
    ing = Ingestor(local, api_stub.client())
    run = process_all(ing, iter_work(local, parse_sources([str(folder)])), Limits(images=16, cpu=2,
                                                                                 bytes=1 << 30))
    outcomes = list(run)
    assert [o.outcome for o in outcomes] == [SERVED] * 16
    # 16 images in flight: their createImage calls overlap instead of queueing behind 2 workers
    assert api_stub.peak_in_flight["createImage"] >= 8
    assert pixels.calls == 16 and pixels.peak <= 2


def test_the_bytes_in_flight_stay_under_the_cap_and_a_larger_image_goes_alone(
        tmp_path: Path, local: Any, api_stub: Any) -> None:
    api_stub.delays["createImage"] = 0.05
    folder = folder_of(tmp_path, 9)
    items = list(iter_work(local, parse_sources([str(folder)])))
    size = max(held_bytes(i) for i in items)
    big = items[4]
    big.size = 10 * size  # listed larger than the whole cap: admitted, but only alone
    cap = 3 * size
    seen: list[tuple[int, int]] = []  # (bytes held, images in flight) at every change

    def watch(r: Any) -> None:
        seen.append((r.bytes_in_flight, len(r._sizes)))

    run = process_all(Ingestor(local, api_stub.client()), items, Limits(images=8, cpu=2, bytes=cap), watch)
    assert sorted(o.outcome for o in run) == [SERVED] * 9
    assert max(held for held, _ in seen) == 10 * size
    assert all(held <= cap or n == 1 for held, n in seen)
    assert max(n for _, n in seen) == 3  # the cap, not the 8 slots, bounded the small ones
    assert run.bytes_in_flight == 0


def test_progress_counts_reach_the_total_once_the_listing_is_complete(
        tmp_path: Path, local: Any, api_stub: Any) -> None:
    folder = folder_of(tmp_path, 5)
    (folder / "notes.txt").write_text("not an image")
    totals: list[int | None] = []
    run = process_all(Ingestor(local, api_stub.client()), iter_work(local, parse_sources([str(folder)])),
                      Limits(images=2, cpu=1, bytes=1 << 30), lambda r: totals.append(r.total))
    outcomes = list(run)
    assert sorted(o.outcome for o in outcomes) == [SERVED] * 5 + [SKIPPED]
    assert totals[0] is None and totals[-1] == 6
    assert run.listed == run.done == run.total == 6


def test_a_stopped_run_finishes_what_is_under_way_and_leaves_the_rest_in_the_source(
        tmp_path: Path, local: Any, api_stub: Any) -> None:
    """The consumer stops after the first outcome (what Ctrl-C does in the CLI): nothing new starts,
    the images under way finish and are reported by close(), the others stay in the ingestion bucket
    for a rerun; nothing is lost, nothing is reported twice."""
    api_stub.delays["createImage"] = 0.2
    ingestion = local.store("ingestion")
    for i in range(20):
        ingestion.put(f"cam/IMG_{i:04d}.JPG", camera_jpeg(serial="CAM-1", seed=i), "image/jpeg")
    run = process_all(Ingestor(local, api_stub.client()), iter_work(local, parse_sources(
        [f"s3://{local.bucket('ingestion')}/"])), Limits(images=4, cpu=2, bytes=1 << 30))
    first = []
    with pytest.raises(KeyboardInterrupt):
        for o in run:
            first.append(o)
            raise KeyboardInterrupt
    late = run.close()
    reported = [o.key for o in first + late]
    assert len(reported) == len(set(reported)) and all(o.outcome == SERVED for o in first + late)
    left = {i.key for i in ingestion.list()}
    assert len(reported) <= 1 + 4 and left.isdisjoint(reported)
    assert len(left) + len(reported) == 20  # every image either served (and reported) or still there
    # a rerun does the rest
    rest = list(process_all(Ingestor(local, api_stub.client()), iter_work(local, parse_sources(
        [f"s3://{local.bucket('ingestion')}/"])), Limits(images=4, cpu=2, bytes=1 << 30)))
    assert sorted(o.key for o in rest) == sorted(left) and not list(ingestion.list())


def test_a_bug_in_a_worker_stops_the_run_and_is_raised(tmp_path: Path, local: Any, api_stub: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    folder = folder_of(tmp_path, 4)

    def broken(self: Ingestor, *a: Any, **kw: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Ingestor, "process", broken)
    run = process_all(Ingestor(local, api_stub.client()), iter_work(local, parse_sources([str(folder)])),
                      Limits(images=2, cpu=1, bytes=1 << 30))
    with pytest.raises(RuntimeError, match="a bug"):
        list(run)
    assert run.stopped


def test_the_api_client_keeps_one_connection_per_thread_so_calls_do_not_queue(api_stub: Any) -> None:
    """requests' pool is per session, and the client keeps one session per thread: 24 threads have
    24 calls under way at the animl-api stand-in, none waits for another's connection."""
    api_stub.delays["createImageError"] = 0.5
    api: GraphQLApi = api_stub.client()
    threads = [threading.Thread(target=api.create_image_error, args=("boom", f"p:{i:032x}", None))
               for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert api_stub.peak_in_flight["createImageError"] >= 16
    assert len(api._sessions) == 24


def test_aws_clients_keep_a_connection_for_every_request_the_pool_has_under_way(aws_mock: Any) -> None:
    limits = Limits.default(images=100, cpu=2)
    assert limits.connections >= 3 * 100
    ctx = open_stage("dev", connections=limits.connections)
    assert ctx.client("s3").meta.config.max_pool_connections == limits.connections
    assert open_stage("dev").client("s3").meta.config.max_pool_connections >= 64


def test_defaults_keep_many_images_in_flight_on_a_small_machine() -> None:
    two = Limits.default(cpu=2)
    assert two.images >= 64 and two.cpu == 2 and two.bytes >= 128 << 20
    assert Limits.default(images=1).cpu == 1  # --concurrency 1: one image, one slot
    assert held_bytes(WorkItem(None, "k", False, size=None)) > 0  # type: ignore[arg-type]

