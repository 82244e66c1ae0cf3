"""AWS calls outside the stores (SQS, Batch, CloudFormation), botocore errors translated by
`aws.translate` into StoreError (with the AWS error code) or CredentialsError.

Callers write the boto3 call itself (`sqs.get_queue_attributes(...)`,
`sqs.get_paginator("list_queues")`) so that the calls stay visible where they are made."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from animl_ingest_cli.aws import AWS_ERRORS, translate

DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                "AuthorizationError", "UnrecognizedClientException"}


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Any botocore error inside becomes one of the project's errors, described by `what`."""
    try:
        yield
    except AWS_ERRORS as exc:
        raise translate(exc, what) from None


def pages(what: str, paginator: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every page of `paginator.paginate(**kwargs)`, errors translated."""
    with translated(what):
        yield from paginator.paginate(**kwargs)
