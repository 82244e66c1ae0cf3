"""Inside one image, what waits on the network overlaps (docs/performance.md, "At a distance"):
the thumbnails are made while createImage is asked, the three serving writes are under way at
once, and the pre-flight checks are asked side by side. Each overlap is proved with a barrier or an
event that only a real overlap can pass (one after the other, the first party waits out its
timeout and the test fails), not with timings. moto in-process, the animl-api stand-in on loopback."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import animl_ingest_cli.ingest as ingest_module
from animl_ingest_cli import preflight
from animl_ingest_cli.errors import InputError, StoreError
from animl_ingest_cli.ingest import DEAD_LETTERED, SERVED, Ingestor
from animl_ingest_cli.stores import S3Store
from tests.awsfixtures import BUCKETS
from tests.metadata.builders import camera_jpeg
from tests.test_ingest import ingestor, keys_in, put

WAIT = 10.0  # seconds a party waits for the others before the test counts it as no overlap


class CreateWaitsForThumbnails:
    """An Api whose createImage answers only once make_thumbnails has started (or WAIT has passed)."""

    def __init__(self, api: Any, started: threading.Event) -> None:
        self.api, self.started, self.overlapped = api, started, None

    def create_image(self, md: dict[str, Any]) -> Any:
        self.overlapped = self.started.wait(WAIT)
        return self.api.create_image(md)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)


def watch_thumbnails(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[float]]:
    started, calls = threading.Event(), []
    real = ingest_module.make_thumbnails

    def watched(data: bytes) -> Any:
        calls.append(time.monotonic())
        started.set()
        return real(data)

    monkeypatch.setattr(ingest_module, "make_thumbnails", watched)
    return started, calls


def test_the_thumbnails_are_made_while_create_image_is_asked(stage, s3, api_stub,  # noqa: ANN001
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    started, calls = watch_thumbnails(monkeypatch)
    api = CreateWaitsForThumbnails(ingestor(stage).api, started)
    put(s3, "cam/IMG_0001.JPG", camera_jpeg(serial="CAM-1"))
    (out,) = Ingestor(stage, api).process(stage.store("ingestion"), "cam/IMG_0001.JPG", delete_source=True)
    assert out.outcome == SERVED, out
    assert api.overlapped is True and len(calls) == 1  # decoded once, during createImage
    assert len([k for k in keys_in(s3, "serving")]) == 3 and keys_in(s3, "ingestion") == []


def test_an_image_the_api_will_refuse_is_not_decoded(stage, s3, api_stub,  # noqa: ANN001
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _, calls = watch_thumbnails(monkeypatch)
    put(s3, "cam/no-serial.jpg", camera_jpeg(serial=None))
    (out,) = ingestor(stage).process(stage.store("ingestion"), "cam/no-serial.jpg", delete_source=True)
    assert out.outcome == DEAD_LETTERED and out.reason == "Unknown Serial Number", out
    assert calls == []  # the API's own rules refuse it: no decode was spent on it


def test_an_undecodable_image_is_still_met_after_create_image(stage, s3, api_stub) -> None:  # noqa: ANN001
    data = bytearray(camera_jpeg(serial="CAM-2"))
    sof = data.index(b"\xff\xc0")
    data[sof + 9] = 7  # the header reads, the decoder refuses: found while createImage was asked
    put(s3, "cam/broken.jpg", bytes(data))
    (out,) = ingestor(stage).process(stage.store("ingestion"), "cam/broken.jpg", delete_source=True)
    assert out.outcome == DEAD_LETTERED and out.reason == "CORRUPTED_IMAGE_FILE", out
    assert out.image_id and api_stub.calls("createImage") and api_stub.calls("createImageError")
    assert keys_in(s3, "serving") == [] and keys_in(s3, "ingestion") == []


def serving_writes(monkeypatch: pytest.MonkeyPatch, hook: Any) -> None:
    """Calls `hook(what, key)` before each write to the serving bucket (put or server-side copy)."""
    real_put, real_copy = S3Store.put, S3Store.copy_from

    def put_(self: S3Store, key: str, *a: Any, **kw: Any) -> Any:
        if self.bucket == BUCKETS["serving"] and not key.startswith(".animl-claims/"):
            hook("put", key)
        return real_put(self, key, *a, **kw)

    def copy_(self: S3Store, src: Any, src_key: str, key: str, *a: Any, **kw: Any) -> Any:
        if self.bucket == BUCKETS["serving"]:
            hook("copy", key)
        return real_copy(self, src, src_key, key, *a, **kw)

    monkeypatch.setattr(S3Store, "put", put_)
    monkeypatch.setattr(S3Store, "copy_from", copy_)


def test_the_three_serving_writes_are_under_way_at_once(stage, s3, api_stub,  # noqa: ANN001
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    together = threading.Barrier(3, timeout=WAIT)
    seen: list[str] = []

    def hook(what: str, key: str) -> None:
        seen.append(f"{what} {key.split('/')[0]}")
        together.wait()  # one after the other, the first write would wait out WAIT and break it

    serving_writes(monkeypatch, hook)
    put(s3, "cam/IMG_0002.JPG", camera_jpeg(serial="CAM-3"))
    (out,) = ingestor(stage).process(stage.store("ingestion"), "cam/IMG_0002.JPG", delete_source=True)
    assert out.outcome == SERVED, out
    assert sorted(seen) == ["copy original", "put medium", "put small"] and not together.broken
    assert len(keys_in(s3, "serving")) == 3 and keys_in(s3, "ingestion") == []


def test_a_failed_serving_write_waits_for_the_others_then_removes_the_whole_set(
        stage, s3, api_stub, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """The original's copy fails at once while the medium is still being written: the clean-up
    comes only after the medium landed, so no copy is left public behind it."""
    def hook(what: str, key: str) -> None:
        if what == "copy":
            raise StoreError("SlowDown: injected", code="SlowDown")
        if key.startswith("medium/"):
            time.sleep(0.3)

    serving_writes(monkeypatch, hook)
    put(s3, "cam/IMG_0003.JPG", camera_jpeg(serial="CAM-4"))
    (out,) = ingestor(stage).process(stage.store("ingestion"), "cam/IMG_0003.JPG", delete_source=True)
    assert out.outcome == DEAD_LETTERED and out.reason == "STORAGE_ERROR", out
    time.sleep(0.4)  # a write left running would land now
    assert keys_in(s3, "serving") == []
    assert [k.split("/")[0] for k in keys_in(s3, "dead-letter")] == ["STORAGE_ERROR"]


def test_the_pre_flight_checks_are_asked_side_by_side(stage, s3, api_stub,  # noqa: ANN001
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    together = threading.Barrier(len(preflight.INGEST_BUCKETS), timeout=WAIT)
    real = preflight._bucket

    def bucket(ctx: Any, kind: str) -> str:
        together.wait()
        return real(ctx, kind)

    monkeypatch.setattr(preflight, "_bucket", bucket)
    checks = preflight.require(stage)
    assert [c.name for c in checks] == ["parameters", "ingestion-bucket", "serving-bucket",
                                        "dead-letter-bucket", "parkinglot-bucket", "api"]
    assert all(c.ok for c in checks) and not together.broken


def test_side_by_side_checks_keep_their_order_and_the_first_failure_wins(
        stage, s3, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    s3.delete_bucket(Bucket=BUCKETS["parkinglot"])
    s3.delete_bucket(Bucket=BUCKETS["dead-letter"])
    checks = preflight.run_checks(stage)
    assert [(c.name, c.ok) for c in checks] == [
        ("parameters", True), ("ingestion-bucket", True), ("serving-bucket", True),
        ("dead-letter-bucket", False), ("parkinglot-bucket", False), ("api", True)]
    with pytest.raises(Exception, match="the dead-letter bucket"):
        preflight.require(stage)


def test_the_source_check_is_asked_with_the_bucket_checks_and_named_first(
        stage, s3, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    together = threading.Barrier(len(preflight.INGEST_BUCKETS) + 1, timeout=WAIT)
    real = preflight._bucket

    def bucket(ctx: Any, kind: str) -> str:
        together.wait()
        return real(ctx, kind)

    def sources() -> None:
        together.wait()
        raise InputError("no bucket nowhere-bucket on dev (NoSuchBucket)")

    monkeypatch.setattr(preflight, "_bucket", bucket)
    checks = preflight.run_checks(stage, sources=sources)
    assert [c.name for c in checks][:2] == ["parameters", "sources"] and not together.broken
    assert [c.ok for c in checks] == [True, False, True, True, True, True, True]
    with pytest.raises(InputError, match="no bucket nowhere-bucket"):
        preflight.require(stage, sources=sources)


def test_read_ahead_asks_the_stage_parameters_side_by_side_and_keeps_them(
        stage, ssm, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from animl_ingest_cli.context import StageContext

    together = threading.Barrier(3, timeout=WAIT)
    asked: list[str] = []
    for name in ("buckets", "maintenance_on", "api_url"):
        real = getattr(StageContext, name)

        def waiting(self: StageContext, *a: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            if _name not in asked:  # the first read waits for the other two
                asked.append(_name)
                together.wait()
            return _real(self, *a, **kw)

        monkeypatch.setattr(StageContext, name, waiting)
    stage.read_ahead()
    assert sorted(asked) == ["api_url", "buckets", "maintenance_on"] and not together.broken
    ssm.delete_parameter(Name="/api/url-dev")  # kept: no second read
    assert stage.api_url().value and stage.bucket("serving") == BUCKETS["serving"]


def test_a_dry_run_decodes_nothing_though_its_images_would_be_served(stage, s3, api_stub,  # noqa: ANN001
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The thumbnails made during createImage are for a real run only: a dry run plans (it would be
    served) without a decode, a createImage or a write, and starts no thread beside its worker."""
    _, calls = watch_thumbnails(monkeypatch)
    put(s3, "cam/IMG_0004.JPG", camera_jpeg(serial="CAM-5"))
    before = {t.ident for t in threading.enumerate()}
    (out,) = ingestor(stage, dry_run=True).process(stage.store("ingestion"), "cam/IMG_0004.JPG",
                                                   delete_source=True)
    assert out.outcome == SERVED and out.planned, out
    assert calls == [] and api_stub.requests == []
    assert keys_in(s3, "serving") == [] and keys_in(s3, "ingestion") == ["cam/IMG_0004.JPG"]
    assert {t.ident for t in threading.enumerate()} <= before
