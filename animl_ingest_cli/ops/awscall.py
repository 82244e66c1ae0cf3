"""AWS calls outside the stores (SQS, Batch, CloudFormation), with botocore errors translated here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import botocore.exceptions

from animl_ingest_cli.aws import error_code, is_credentials_error
from animl_ingest_cli.errors import CredentialsError, StoreError

_BOTO_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                "AuthorizationError", "UnrecognizedClientException"}


class AwsError(StoreError):
    """An AWS service call failed after botocore's retries; `code` is the AWS error code."""


def translate(exc: Exception, what: str) -> StoreError | CredentialsError:
    if is_credentials_error(exc):
        return CredentialsError(f"AWS credentials missing or refused ({what})")
    code = error_code(exc)
    if isinstance(exc, botocore.exceptions.ClientError):
        message = exc.response.get("Error", {}).get("Message") or ""
        return AwsError(f"{what}: {code}: {message}".rstrip(": "), code=code)
    return AwsError(f"{what}: {type(exc).__name__}: {exc}", code=type(exc).__name__, retryable=True)


def call(what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """`fn(**kwargs)`, with any botocore error raised as `AwsError` / `CredentialsError`."""
    try:
        return fn(**kwargs)
    except _BOTO_ERRORS as exc:
        raise translate(exc, what) from None


def pages(what: str, client: Any, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every page of a paginated operation, errors translated."""
    try:
        yield from client.get_paginator(operation).paginate(**kwargs)
    except _BOTO_ERRORS as exc:
        raise translate(exc, what) from None
