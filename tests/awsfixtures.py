"""The shared AWS fixtures, registered once for the whole suite by `pytest_plugins` in
tests/conftest.py: one botocore model loader for every session, the dev stage's bucket names, and
one set of stage and bucket fixtures (moto in-process, or moto's server for subprocess tests)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from animl_ingest_cli.config import BUCKET_KINDS, Names

STAGE = "dev"
BUCKETS = {kind: Names(STAGE).default_bucket(kind) for kind in BUCKET_KINDS}
_LOADER: Any = None


def bucket(kind: str, stage: str = STAGE) -> str:
    """The stage's default bucket of `kind` (what the code uses when no SSM parameter names one)."""
    return Names(stage).default_bucket(kind)


def make_buckets(stage: str = STAGE) -> Any:
    """The stage's four buckets in whatever S3 the environment points at; returns an S3 client."""
    import boto3

    s3 = boto3.client("s3")
    for kind in BUCKET_KINDS:
        s3.create_bucket(Bucket=bucket(kind, stage),
                         CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    return s3


@pytest.fixture(autouse=True)
def shared_model_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every boto3 session the code makes shares one botocore data loader. The root conftest forgets
    sessions before each test, and a new session reads every service model from disk again (a
    tenth of a second per client), which made up most of the AWS tests' time. The loader holds only
    the models shipped with botocore: credentials, region and endpoint stay per session."""
    import boto3.session

    global _LOADER
    if _LOADER is None:
        _LOADER = boto3.session.Session()._loader
    real = boto3.session.Session

    class SharedLoaderSession(real):  # type: ignore[misc, valid-type]
        def _setup_loader(self) -> None:
            self._session.register_component("data_loader", _LOADER)
            self._loader = _LOADER

    monkeypatch.setattr(boto3.session, "Session", SharedLoaderSession)
    # boto3.client() makes its default session with the name boto3 imported (moto's mock_aws drops
    # that session on entry, so every mocked test made one with a loader of its own)
    monkeypatch.setattr(boto3, "Session", SharedLoaderSession)


@pytest.fixture
def s3(aws_mock: None) -> Any:
    """moto in-process with the dev stage's four buckets; an S3 client."""
    return make_buckets()


@pytest.fixture
def s3_server(moto_server: str) -> Any:
    """moto's server on loopback with the dev stage's four buckets (for the installed CLI)."""
    return make_buckets()


@pytest.fixture
def ssm(aws_mock: None) -> Any:
    import boto3

    return boto3.client("ssm", region_name="us-west-2")


@pytest.fixture
def stage(s3: Any, ssm: Any, api_stub: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The dev stage opened for work: its buckets in moto, `/api/url-dev` naming the animl-api
    stand-in, and the stand-in's key in API_KEY."""
    from animl_ingest_cli.context import open_stage

    ssm.put_parameter(Name=f"/api/url-{STAGE}", Value=api_stub.url, Type="String")
    monkeypatch.setenv("API_KEY", api_stub.api_key)
    yield open_stage(STAGE)
