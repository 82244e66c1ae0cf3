"""The Lambda handler processes the records of one invocation side by side, within its memory."""

from __future__ import annotations

import urllib.parse
from typing import Any

import boto3
import pytest

from animl_ingest_cli import lambda_handler
from animl_ingest_cli.claims import PREFIX as CLAIMS
from animl_ingest_cli.config import BUCKET_KINDS, REGION, Names
from animl_ingest_cli.pool import MB
from tests.metadata.builders import camera_jpeg

STAGE = "dev"
NAMES = Names(STAGE)


def event(bucket: str, objects: dict[str, bytes]) -> dict[str, Any]:
    return {"Records": [
        {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "awsRegion": REGION,
         "s3": {"bucket": {"name": bucket},
                "object": {"key": urllib.parse.quote_plus(k, safe="/"), "size": len(body)}}}
        for k, body in objects.items()]}


@pytest.fixture
def dev(aws_mock: None, api_stub: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("STAGE", STAGE)
    monkeypatch.setenv("API_KEY", api_stub.api_key)
    s3 = boto3.client("s3", region_name=REGION)
    for kind in BUCKET_KINDS:
        s3.create_bucket(Bucket=NAMES.default_bucket(kind), CreateBucketConfiguration={
            "LocationConstraint": REGION})
    boto3.client("ssm", region_name=REGION).put_parameter(Name=NAMES.api_url_param, Value=api_stub.url,
                                                          Type="String")
    lambda_handler.reset()
    yield s3
    lambda_handler.reset()


def test_the_records_of_one_invocation_wait_on_the_api_together(dev: Any, api_stub: Any) -> None:
    api_stub.delays["createImage"] = 0.4
    ingestion = NAMES.default_bucket("ingestion")
    objects = {f"cam {i}/IMG_{i:04d}.JPG": camera_jpeg(serial=f"CAM-{i}", size=(320, 240), seed=i)
               for i in range(6)}
    for key, body in objects.items():
        dev.put_object(Bucket=ingestion, Key=key, Body=body)
    result = lambda_handler.handler(event(ingestion, objects))
    assert result["outcomes"]["served"] == 6
    assert sorted(r["key"] for r in result["results"]) == sorted(objects)
    assert api_stub.peak_in_flight["createImage"] >= 3  # one after another would be 1
    assert dev.list_objects_v2(Bucket=ingestion).get("KeyCount") == 0
    served = dev.list_objects_v2(Bucket=NAMES.default_bucket("serving"))["Contents"]
    assert len([o for o in served if not o["Key"].startswith(CLAIMS)]) == 18  # claims.py's are not images


def test_an_invocation_holds_at_most_a_quarter_of_the_functions_memory_in_source_bytes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
    small = lambda_handler.limits(3)
    assert (small.images, small.bytes) == (3, 128 * MB)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "10240")
    many = lambda_handler.limits(500)
    assert many.images == lambda_handler.MAX_RECORDS_AT_ONCE and many.bytes == 2560 * MB
    assert lambda_handler.limits(0).images == 1
