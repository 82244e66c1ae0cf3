"""One translation of AWS's answers (aws.translate): the same answer gives the same error, message
shape and exit code from the S3 store, the parameter store, Secrets Manager and the ops calls.

The answers are real error responses (S3's XML, the JSON services' `__type`) handed to real botocore
clients on their `before-send` event, so botocore parses them as it would AWS's own; the requests
never leave the process."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.awsrequest import AWSResponse

from animl_ingest_cli import aws
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import (
    EXIT_INFRA,
    EXIT_USAGE,
    AccessDenied,
    AnimlError,
    ConfigError,
    CredentialsError,
    NotFound,
    StoreError,
)
from animl_ingest_cli.ops import queues
from animl_ingest_cli.params import SsmParams
from animl_ingest_cli.stores import S3Store


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def answering(client: Any, status: int, code: str, message: str = "refused by test") -> Any:
    """`client`, with every request answered by AWS's error response for `code`."""
    service = client.meta.service_model.service_name

    def send(request: Any, **_: Any) -> AWSResponse:
        if service == "s3":
            body = b"" if request.method == "HEAD" else (
                f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                f"<Message>{message}</Message></Error>").encode()
            return AWSResponse(request.url, status, {"content-type": "application/xml"}, _Body(body))
        body = json.dumps({"__type": code, "message": message}).encode()
        return AWSResponse(request.url, status, {"content-type": "application/x-amz-json-1.1"}, _Body(body))

    client.meta.events.register("before-send", send)
    return client


@pytest.fixture
def dev() -> StageContext:
    """A dev stage whose clients are given below; no request leaves the process (each is answered
    on `before-send`, which moto's in-process mock would answer first)."""
    return StageContext("dev")


def _calls(ctx: StageContext) -> dict[str, Callable[[], object]]:
    """One call of each kind, through the code that makes it."""
    return {
        "S3 GetObject": lambda: S3Store(ctx.client("s3"), "b").read("k.jpg"),
        "S3 ListObjectsV2": lambda: list(S3Store(ctx.client("s3"), "b").list("p/")),
        "SSM GetParameters": lambda: SsmParams(ctx.client("ssm")).get("/x"),
        "Secrets Manager": lambda: ctx.api_key(),
        "SQS ListQueues": lambda: queues.list_queues(ctx),
    }


def _raised(call: Callable[[], object]) -> AnimlError:
    with pytest.raises(AnimlError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("name", list(_calls(StageContext("dev"))))
def test_access_denied_is_one_error_with_one_exit_code_everywhere(dev: StageContext, name: str) -> None:
    for service in ("s3", "ssm", "secretsmanager", "sqs"):
        code = "AccessDenied" if service == "s3" else "AccessDeniedException"
        dev._clients[service] = answering(boto3.client(service), 403, code, "not allowed")
    err = _raised(_calls(dev)[name])
    assert type(err) is AccessDenied and err.exit_code == EXIT_USAGE
    assert err.code in ("AccessDenied", "AccessDeniedException")
    assert str(err).endswith(f": {err.code}: not allowed") and "\n" not in str(err)


@pytest.mark.parametrize("name", list(_calls(StageContext("dev"))))
def test_refused_credentials_read_the_same_everywhere(dev: StageContext, name: str) -> None:
    for service in ("s3", "ssm", "secretsmanager", "sqs"):
        dev._clients[service] = answering(boto3.client(service), 403, "ExpiredToken")
    err = _raised(_calls(dev)[name])
    assert type(err) is CredentialsError and err.exit_code == EXIT_USAGE
    assert str(err).startswith("AWS credentials missing or refused (") and "refused by test" not in str(err)


@pytest.mark.parametrize("name", list(_calls(StageContext("dev"))))
def test_an_unlisted_code_is_a_store_error_carrying_it(dev: StageContext, name: str) -> None:
    for service in ("s3", "ssm", "secretsmanager", "sqs"):
        dev._clients[service] = answering(boto3.client(service), 400, "SomethingNew", "odd")
    err = _raised(_calls(dev)[name])
    assert type(err) is StoreError and err.exit_code == EXIT_INFRA  # stopping a command: exit 5
    assert err.code == "SomethingNew" and str(err).endswith(": SomethingNew: odd")


def test_a_refused_head_is_access_denied_and_a_missing_one_is_none(dev: StageContext) -> None:
    refusing = S3Store(answering(boto3.client("s3"), 403, "AccessDenied"), "b")
    with pytest.raises(AccessDenied, match=r"^HeadObject s3://b/k\.jpg: 403: Forbidden$"):
        refusing.head("k.jpg")
    assert S3Store(answering(boto3.client("s3"), 404, "NoSuchKey"), "b").head("k.jpg") is None


def test_not_found_names_what_is_missing(aws_mock: None, dev: StageContext) -> None:
    boto3.client("s3").create_bucket(Bucket="bkt", CreateBucketConfiguration={
        "LocationConstraint": "us-west-2"})
    with pytest.raises(NotFound, match=r"^GetObject s3://bkt/nope\.jpg: no such object$"):
        S3Store(dev.client("s3"), "bkt").read("nope.jpg")
    with pytest.raises(NotFound, match=r"^GetObject s3://no-bucket/k: no such bucket$"):
        S3Store(dev.client("s3"), "no-bucket").read("k")
    # a missing secret is a missing setting, not a failed operation
    boto3.client("ssm").put_parameter(Name="/api/url-dev", Value="https://x", Type="String")
    with pytest.raises(ConfigError, match="^no API key: secret api-key-dev not found"):
        dev.api_key()


def test_transport_errors_and_missing_credentials() -> None:
    err = aws.translate(botocore.exceptions.EndpointConnectionError(endpoint_url="https://s3"), "GetObject x")
    assert type(err) is StoreError and err.code is None
    assert str(err) == 'GetObject x: EndpointConnectionError: Could not connect to the endpoint URL: "https://s3"'
    err = aws.translate(botocore.exceptions.NoCredentialsError(), "SSM GetParameters")
    assert type(err) is CredentialsError
    assert str(err) == "AWS credentials missing or refused (SSM GetParameters)"


def test_the_table_is_the_only_vocabulary() -> None:
    for code, (cls, _) in aws.ERROR_CODES.items():
        err = aws.translate(botocore.exceptions.ClientError({"Error": {"Code": code, "Message": "m"}}, "Op"),
                            "Op t")
        assert type(err) is cls, code
    assert not hasattr(StoreError("x", code="SlowDown"), "retryable")
