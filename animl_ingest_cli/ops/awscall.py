"""AWS calls outside the stores (SQS, Batch, CloudFormation), botocore errors translated by
`aws.translate` into StoreError (with the AWS error code) or CredentialsError."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from animl_ingest_cli.aws import AWS_ERRORS, translate

DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                "AuthorizationError", "UnrecognizedClientException"}


def call(what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """`fn(**kwargs)`, with any botocore error raised as one of the project's errors."""
    try:
        return fn(**kwargs)
    except AWS_ERRORS as exc:
        raise translate(exc, what) from None


def pages(what: str, client: Any, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every page of a paginated operation, errors translated."""
    try:
        yield from client.get_paginator(operation).paginate(**kwargs)
    except AWS_ERRORS as exc:
        raise translate(exc, what) from None
