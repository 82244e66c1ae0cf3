"""Shared fixtures: a test can never reach a real AWS account or the user's own state."""

from __future__ import annotations

import gc
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

# Fixtures shared by the whole suite, registered once: the animl-api stand-in (`api_stub`) and the
# AWS ones (one botocore model loader, the dev stage's buckets, `s3`, `s3_server`, `ssm`, `stage`).
pytest_plugins = ["tests.apistub", "tests.awsfixtures"]


def pytest_collection_finish(session: pytest.Session) -> None:
    """The collector's garbage out, what is left (modules, the collected tests) kept out of every
    later collection, and the youngest generation collected every 20,000 allocations instead of
    700: the suite builds botocore models, moto's state and thousands of requests, and Python's
    full collections over that heap had taken about a tenth of the suite's CPU. Objects are freed
    as before, only in larger batches."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
CORPUS_IMAGES = CORPUS / "images"
CORPUS_EXPECTED = CORPUS / "expected"
EXAMPLES = REPO / "examples" / "images"

needs_corpus = pytest.mark.skipif(not CORPUS_IMAGES.is_dir(),
                                  reason="../shared/corpus is absent: corpus tests need it in place")


def corpus_files() -> list[Path]:
    if not CORPUS_IMAGES.is_dir():
        return []
    return sorted(CORPUS_IMAGES.iterdir())


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Fake credentials, no profile, no endpoint override, state and local data in tmp."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN",
                "AWS_SECURITY_TOKEN", "API_KEY", "ANIML_API_KEY", "ANIML_STAGE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("ANIML_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ANIML_LOCAL_DIR", str(tmp_path / "animl-local"))
    from animl_ingest_cli import aws, lambda_handler

    aws.reset()
    lambda_handler.reset()
    yield
    aws.reset()
    lambda_handler.reset()


@pytest.fixture(autouse=True)
def s3_as_s3() -> Iterator[None]:
    """moto answers as S3 would where it does not by itself (tests/reliability/s3rules.py):
    CopyObject conditions, atomic check-then-write, the key and metadata limits. For every test,
    in-process moto and the moto server alike."""
    from tests.reliability import s3rules

    with s3rules.installed():
        yield


@pytest.fixture
def aws_mock() -> Iterator[None]:
    """moto in-process: every boto3 client made inside talks to moto's fresh state."""
    from moto import mock_aws

    with mock_aws():
        yield


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def _moto_server_session() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def moto_server(_moto_server_session: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's server mode on loopback, reset for each test; AWS_ENDPOINT_URL points at it so both
    this process and subprocesses (the installed CLI) talk to it."""
    import requests

    requests.post(f"{_moto_server_session}/moto-api/reset", timeout=10)
    monkeypatch.setenv("AWS_ENDPOINT_URL", _moto_server_session)
    from animl_ingest_cli import aws

    aws.reset()
    yield _moto_server_session


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for running the installed CLI as a subprocess (inherits the test's fakes)."""
    env = dict(os.environ)
    env.update(extra or {})
    return env
