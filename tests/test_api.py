"""The GraphQL client against the animl-api stand-in on loopback, and how a stage finds its API."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
import requests

from animl_ingest_cli import redact
from animl_ingest_cli.api import NO_BATCH, GraphQLApi
from animl_ingest_cli.api_local import LocalApi
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import AccessDenied, ApiError, ConfigError
from tests.apistub import ApiStub, Clock


def md_for(content: bytes = b"image bytes", **extra: object) -> dict:
    md = {"Bucket": "animl-images-ingestion-dev", "Key": "cam1.jpg", "FileName": "cam1.jpg",
          "batchId": None, "errors": [], "FileTypeExtension": "jpg", "MIMEType": "image/jpeg",
          "DateTimeOriginal": "2024-05-01T10:11:12.000Z", "Make": "RECONYX", "Model": "HF2",
          "SerialNumber": "H500ABC", "ProdBucket": "animl-images-serving-dev",
          "Hash": hashlib.md5(content).hexdigest(), "ImageBytes": len(content), "Path": None,
          "ImageWidth": 2048, "ImageHeight": 1536}
    md.update(extra)
    return md


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- answers ---------------------------------------------------------------------------------------
def test_create_image_success_sends_the_documented_request(api_stub: ApiStub) -> None:
    md = md_for()
    attempt = api_stub.client().create_image(md)
    assert attempt.image_id == f"default_project:{md['Hash']}"
    assert attempt.errors == [] and attempt.ok
    (rec,) = api_stub.calls("createImage")
    assert rec.headers["content-type"] == "application/json"
    assert rec.headers["x-api-key"] == api_stub.api_key
    assert rec.input == {"md": md}
    query = json.loads(rec.body)["query"]
    assert "imageAttempt" in query and "errors" in query and "_id" in query
    assert [i["_id"] for i in api_stub.catalog.images()] == [attempt.image_id]


def test_validation_errors_come_back_with_the_image_id(api_stub: ApiStub) -> None:
    md = md_for(SerialNumber="unknown", ImageBytes=9_000_000)
    del md["DateTimeOriginal"]
    attempt = api_stub.client().create_image(md)
    assert attempt.image_id == f"default_project:{md['Hash']}"
    assert attempt.errors == ["Unknown Serial Number", "Unknown DateTimeOriginal", "Image Size Exceed 8 MB"]


def test_duplicate_is_an_e11000_error_with_the_image_id(api_stub: ApiStub) -> None:
    api = api_stub.client()
    first = api.create_image(md_for())
    second = api.create_image(md_for())
    assert second.image_id == first.image_id
    assert second.errors == [f'E11000 duplicate key error collection: animl.images index: _id_ dup key: '
                             f'{{ _id: "{first.image_id}" }}']


def test_graphql_error_is_raised_and_not_retried(api_stub: ApiStub) -> None:
    md = md_for()
    del md["SerialNumber"]
    with pytest.raises(ApiError) as info:
        api_stub.client().create_image(md)
    assert "serialNumber" in info.value.message
    assert info.value.transient is False and info.value.status == 200
    assert len(api_stub.calls("createImage")) == 1


def test_bad_key_is_forbidden_and_not_retried(api_stub: ApiStub) -> None:
    api = GraphQLApi(api_stub.url, "not-the-key-1234", backoff=0.01)
    with pytest.raises(ApiError) as info:
        api.create_image(md_for())
    assert info.value.message == "Forbidden"
    assert info.value.status == 403 and info.value.transient is False
    assert len(api_stub.requests) == 1


def test_403_answer_is_not_retried(api_stub: ApiStub) -> None:
    api_stub.fail(403, times=3)
    with pytest.raises(ApiError, match="^Forbidden$"):
        api_stub.client().update_batch({"_id": "batch-1", "total": 3})
    assert len(api_stub.requests) == 1


def test_non_json_error_body_is_the_error_text_on_one_bounded_line(api_stub: ApiStub) -> None:
    api_stub.fail(400, body="bad request\n  from the gateway\n" + "x" * 1000)
    with pytest.raises(ApiError) as info:
        api_stub.client().create_batch_error("boom", "batch-1")
    text = info.value.message
    assert text.startswith("bad request from the gateway xxx")
    assert "\n" not in text and len(text) <= 300
    assert info.value.status == 400 and not info.value.transient


def test_empty_error_body_still_gives_a_text(api_stub: ApiStub) -> None:
    api_stub.fail(418, body=b"")
    with pytest.raises(ApiError, match="^HTTP 418$"):
        api_stub.client().create_batch_error("boom", "batch-1")


def test_json_error_body_without_message_uses_the_graphql_error(api_stub: ApiStub) -> None:
    """Apollo's 400 for a coercion error has `errors`, not `message`."""
    resp = requests.post(api_stub.url, json={"query": "mutation M($input: CreateImageErrorInput!) "
                                                      "{ createImageError(input: $input) { _id } }",
                                             "variables": {"input": {"error": "e", "image": "p:1"}}},
                         headers={"x-api-key": api_stub.api_key}, timeout=5)
    assert resp.status_code == 400  # what the Node ingest got for a wireless image
    api_stub.fail(400, body=resp.content)
    with pytest.raises(ApiError, match='Field "batch" of required type "String!" was not provided'):
        api_stub.client().create_batch_error("boom", "batch-1")


def test_malformed_answer_is_transient_and_retried(api_stub: ApiStub) -> None:
    api_stub.malformed(times=10)
    with pytest.raises(ApiError) as info:
        api_stub.client(max_attempts=3).create_image(md_for())
    assert info.value.message.startswith("malformed answer from animl-api")
    assert info.value.transient is True
    assert len(api_stub.requests) == 3
    assert api_stub.catalog.images() == []


def test_answer_without_data_is_malformed(api_stub: ApiStub) -> None:
    api_stub.fail(200, body={"data": None}, times=1)
    attempt = api_stub.client().create_image(md_for())  # the retry gets the real answer
    assert attempt.ok and len(api_stub.requests) == 2


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retried_then_succeeds(api_stub: ApiStub, status: int) -> None:
    api_stub.fail(status, times=2)
    attempt = api_stub.client(max_attempts=4).create_image(md_for())
    assert attempt.ok
    assert [r.status for r in api_stub.requests] == [status, status, 200]


def test_retries_exhausted_raise_the_last_error_as_transient(api_stub: ApiStub) -> None:
    api_stub.fail(503, times=10)
    with pytest.raises(ApiError) as info:
        api_stub.client(max_attempts=3).create_image(md_for())
    assert info.value.message == "Service Unavailable"
    assert info.value.transient is True and info.value.status == 503
    assert len(api_stub.requests) == 3


def test_backoff_grows_between_attempts(api_stub: ApiStub) -> None:
    api_stub.fail(500, times=10)
    start = time.monotonic()
    with pytest.raises(ApiError):
        api_stub.client(max_attempts=3, backoff=0.1).create_image(md_for())
    # pauses of 0.1 and 0.2 s, each with jitter in [0.5, 1.5)
    assert 0.15 <= time.monotonic() - start < 2.0


def test_unreachable_api_is_transient_with_a_stable_text() -> None:
    api = GraphQLApi(f"http://127.0.0.1:{free_port()}/internal", "some-key-123", backoff=0.01,
                     max_attempts=2)
    with pytest.raises(ApiError) as info:
        api.create_image(md_for())
    assert info.value.transient is True
    assert info.value.message.startswith("animl-api unreachable: ")
    assert "0x" not in info.value.message  # no object addresses: the text may name a folder


# --- time ------------------------------------------------------------------------------------------
def test_hang_times_out_after_the_timeout(api_stub: ApiStub) -> None:
    api_stub.hang(10)
    start = time.monotonic()
    with pytest.raises(ApiError) as info:
        api_stub.client(timeout=0.6, max_attempts=1).create_image(md_for())
    elapsed = time.monotonic() - start
    assert info.value.message == "animl-api timed out" and info.value.transient
    assert 0.3 < elapsed < 1.5


def test_hang_never_runs_past_the_time_left(api_stub: ApiStub) -> None:
    api_stub.hang(10, times=10)
    clock = Clock(2.0)
    with pytest.raises(ApiError, match="timed out"):
        api_stub.client(timeout=15, max_attempts=5, time_left=clock, margin=0.5).create_image(md_for())
    assert clock() > 0.4  # the margin was left to the caller
    assert len(api_stub.requests) == 1  # no time for a second attempt after a 1.5 s wait


def test_no_time_left_means_no_call(api_stub: ApiStub) -> None:
    with pytest.raises(ApiError, match="no time left") as info:
        api_stub.client(time_left=lambda: 0.5, margin=1.0).create_image(md_for())
    assert info.value.transient is True
    assert api_stub.requests == []


def test_pauses_stop_when_time_runs_short(api_stub: ApiStub) -> None:
    api_stub.fail(502, times=10)
    clock = Clock(1.5)
    with pytest.raises(ApiError, match="Internal server error"):
        api_stub.client(max_attempts=10, backoff=0.2, time_left=clock, margin=0.5).create_image(md_for())
    assert clock() > 0.5 - 0.05
    assert 1 < len(api_stub.requests) < 10


def test_record_then_fail_gives_the_duplicate_on_replay(api_stub: ApiStub) -> None:
    api_stub.record_then_fail(500)
    md = md_for()
    attempt = api_stub.client().create_image(md)
    assert attempt.image_id == f"default_project:{md['Hash']}"
    assert len(attempt.errors) == 1 and "E11000" in attempt.errors[0]
    assert len(api_stub.catalog.images()) == 1


def test_record_then_hang_gives_the_duplicate_on_replay(api_stub: ApiStub) -> None:
    api_stub.record_then_hang(10)
    attempt = api_stub.client(timeout=0.6).create_image(md_for())
    assert "E11000" in attempt.errors[0]
    assert [r.status for r in api_stub.requests][1] == 200


# --- the other mutations ---------------------------------------------------------------------------
def test_create_image_error_without_batch_sends_the_accepted_value(api_stub: ApiStub) -> None:
    api = api_stub.client()
    api.create_image_error("resize failed", "default_project:abc", None)
    api.create_image_error("copy failed", "p1:def", "batch-0f0e")
    first, second = api_stub.calls("createImageError")
    assert first.input == {"error": "resize failed", "image": "default_project:abc", "batch": NO_BATCH}
    assert second.input["batch"] == "batch-0f0e"
    assert [r.status for r in api_stub.requests] == [200, 200]
    assert [(e["error"], e["batch"]) for e in api_stub.catalog.image_errors()] == [
        ("resize failed", NO_BATCH), ("copy failed", "batch-0f0e")]


def test_update_batch_and_batch_errors(api_stub: ApiStub) -> None:
    api = api_stub.client()
    api.update_batch({"_id": "batch-1", "processingStart": "2024-05-01T00:00:00.000Z", "total": 4})
    api.update_batch({"_id": "batch-1", "ingestionComplete": "2024-05-01T00:10:00.000Z"})
    api.create_batch_error("unzip failed", "batch-1")
    (batch,) = api_stub.catalog.batches()
    assert batch["fields"] == {"processingStart": "2024-05-01T00:00:00.000Z", "total": 4,
                               "ingestionComplete": "2024-05-01T00:10:00.000Z"}
    errors = [(e["batch"], e["error"]) for e in api_stub.catalog.batch_errors()]
    assert errors == [("batch-1", "unzip failed")]


def test_unknown_batch_field_is_a_400_from_coercion(api_stub: ApiStub) -> None:
    with pytest.raises(ApiError, match='Field "projectId" is not defined by type "UpdateBatchInput"') as info:
        api_stub.client().update_batch({"_id": "batch-1", "projectId": "p"})
    assert info.value.status == 400 and not info.value.transient


def test_dates_in_md_are_sent_as_iso_text_and_bad_values_refused_before_sending(api_stub: ApiStub) -> None:
    import datetime as dt

    api = api_stub.client()
    api.update_batch({"_id": "batch-2", "uploadComplete": dt.datetime(2024, 5, 1, tzinfo=dt.UTC)})
    assert api_stub.calls("updateBatch")[0].input["uploadComplete"] == "2024-05-01T00:00:00+00:00"
    with pytest.raises(ApiError, match="cannot encode createImage input"):
        api.create_image(md_for(ImageBytes=float("nan")))
    assert len(api_stub.requests) == 1


def test_threads_share_one_client(api_stub: ApiStub) -> None:
    api = api_stub.client()
    with ThreadPoolExecutor(8) as pool:
        attempts = list(pool.map(lambda i: api.create_image(md_for(f"img {i}".encode())), range(24)))
    assert all(a.ok for a in attempts)
    assert len({a.image_id for a in attempts}) == 24
    assert 1 <= len(api._sessions) <= 8  # one connection pool per thread
    api.close()
    assert len(api._sessions) == 0


# --- the key never shows ---------------------------------------------------------------------------
def test_key_never_in_errors_or_logs(api_stub: ApiStub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = api_stub.api_key
    api = api_stub.client(max_attempts=2)
    api_stub.fail(500, times=1, body=f"upstream said: bad x-api-key {key}")
    api_stub.fail(400, times=1, body={"message": f"key {key} rejected"})
    with pytest.raises(ApiError) as info:
        api.create_image(md_for())
    for text in (str(info.value), repr(info.value), info.value.message, repr(api), caplog.text):
        assert key not in text
    assert "***" in info.value.message
    assert "upstream said" in caplog.text  # the retry was logged, scrubbed


# --- finding the API -------------------------------------------------------------------------------
def test_local_stage_gets_the_embedded_catalog(tmp_path: Path) -> None:
    api = StageContext("local", local_root=tmp_path).api()
    assert isinstance(api, LocalApi)
    assert api.path == tmp_path / "catalog.sqlite"
    assert api.create_image(md_for()).ok
    api.close()


@pytest.fixture
def dev_ctx(aws_mock: None) -> StageContext:
    from animl_ingest_cli import aws

    return StageContext("dev", client_factory=aws.client)


def test_missing_url_parameter_is_a_config_error(dev_ctx: StageContext) -> None:
    with pytest.raises(ConfigError) as info:
        dev_ctx.api()
    assert info.value.message == "no API URL: SSM parameter /api/url-dev is missing"


def test_key_comes_from_env_first(dev_ctx: StageContext, monkeypatch: pytest.MonkeyPatch) -> None:
    boto3.client("ssm").put_parameter(Name="/api/url-dev", Value="https://api.example/internal",
                                      Type="String")
    monkeypatch.setenv("ANIML_API_KEY", "env-key-from-animl")
    api = dev_ctx.api()
    assert isinstance(api, GraphQLApi) and api.url == "https://api.example/internal"
    monkeypatch.setenv("API_KEY", "env-key-from-lambda")
    assert dev_ctx.api()._api_key == "env-key-from-lambda"
    assert redact.redact("x env-key-from-lambda y") == "x *** y"


def test_key_from_secrets_manager(dev_ctx: StageContext) -> None:
    boto3.client("ssm").put_parameter(Name="/api/url-dev", Value="https://api.example/internal",
                                      Type="String")
    sm = boto3.client("secretsmanager")
    with pytest.raises(ConfigError, match="^no API key: secret api-key-dev not found"):
        dev_ctx.api()
    sm.create_secret(Name="api-key-dev", SecretString=json.dumps({"other": 1}))
    with pytest.raises(ConfigError, match="^secret api-key-dev has no field apikey$"):
        dev_ctx.api()
    sm.put_secret_value(SecretId="api-key-dev", SecretString=json.dumps({"apikey": "sm-key-4567"}))
    api = dev_ctx.api(time_left=lambda: 30.0)
    assert api._api_key == "sm-key-4567" and api.time_left is not None
    assert redact.redact("sm-key-4567") == "***"
    sm.delete_secret(SecretId="api-key-dev", ForceDeleteWithoutRecovery=True)
    assert dev_ctx.api()._api_key == "sm-key-4567"  # read once: the run's client asks no second time
    assert "sm-key-4567" not in repr(dev_ctx)


def test_refused_secret_is_access_denied_as_from_any_aws_call(dev_ctx: StageContext) -> None:
    import botocore.exceptions

    boto3.client("ssm").put_parameter(Name="/api/url-dev", Value="https://x/internal", Type="String")

    class Refusing:
        def get_secret_value(self, **_: object) -> None:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetSecretValue")

    dev_ctx._clients["secretsmanager"] = Refusing()
    with pytest.raises(AccessDenied, match="^Secrets Manager GetSecretValue api-key-dev: "
                       "AccessDeniedException: no$") as refused:
        dev_ctx.api()
    assert refused.value.exit_code == 2  # as for S3, SSM and the rest: aws.translate


# --- the stand-in answers like animl-api -----------------------------------------------------------
@pytest.mark.parametrize("body,headers,status,text", [
    ({"query": "mutation { createImageError(input: $input) { _id } }",
      "variables": {"input": {"error": "e", "image": "p:1", "batch": None}}}, {}, 400,
     'Expected non-nullable type "String!" not to be null'),
    ({"query": "mutation { createImageError(input: $input) { _id } }",
      "variables": {"input": {"error": "e", "image": "p:1", "batch": "", "path": "a.jpg"}}}, {}, 400,
     'Field "path" is not defined by type "CreateImageErrorInput"'),  # the Node code also sent `path`
    ({"query": "mutation { createImage(input: $input) { imageAttempt { _id } } }",
      "variables": {"input": {"md": "not an object"}}}, {}, 400, "JSONObject cannot represent"),
    ({"query": "mutation { deleteImages(input: $input) { isOk } }", "variables": {}}, {}, 400,
     'Cannot query field "deleteImages" on type "Mutation"'),
    ({"query": "mutation { createBatchError(input: $input) { _id } }",
      "variables": {"input": {"error": "e", "batch": "b"}}}, {"Content-Type": "text/plain"}, 400, "CSRF"),
    ({"query": "mutation { createBatchError(input: $input) { _id } }",
      "variables": {"input": {"error": "e", "batch": "b"}}}, {}, 200, ""),
])
def test_stand_in_coerces_input_like_apollo(api_stub: ApiStub, body: dict, headers: dict, status: int,
                                            text: str) -> None:
    resp = requests.post(api_stub.url, data=json.dumps(body),
                         headers={"Content-Type": "application/json", "x-api-key": api_stub.api_key,
                                  **headers}, timeout=5)
    assert resp.status_code == status
    if status == 200:
        assert resp.json()["data"]["createBatchError"]["batch"] == "b"
    else:
        assert text in resp.json()["errors"][0]["message"]
