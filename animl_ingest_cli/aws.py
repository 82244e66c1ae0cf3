"""One place that builds AWS clients: region, standard retries, the `animl` profile, emulators.

`AWS_ENDPOINT_URL` (and the per-service variants) are honoured by botocore itself, so the tool can be
pointed at moto's server or another emulator without code changes.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from animl_ingest_cli.config import REGION
from animl_ingest_cli.errors import (
    AccessDenied,
    AnimlError,
    Conflict,
    CredentialsError,
    NotFound,
    StoreError,
)

if TYPE_CHECKING:
    import boto3

# boto3 is imported on first use: a quarter of a second of start-up the local stage never needs.
_lock = threading.Lock()
_sessions: dict[str | None, boto3.session.Session] = {}
REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")  # in this order; then config.REGION
RETRY_SETTINGS: dict[str, Any] = {"retries": {"mode": "standard", "max_attempts": 5},
                                  "max_pool_connections": 64, "connect_timeout": 10, "read_timeout": 60}


def _profile() -> str | None:
    if os.environ.get("AWS_PROFILE") or os.environ.get("AWS_ACCESS_KEY_ID"):
        return None  # boto3's own resolution
    import boto3

    try:
        available = boto3.session.Session().available_profiles
    except Exception:  # noqa: BLE001 - a broken config file is reported later by the client
        return None
    return "animl" if "animl" in available else None


def session() -> boto3.session.Session:
    import boto3

    profile = _profile()
    with _lock:
        if profile not in _sessions:
            region = next((os.environ[v] for v in REGION_ENV if os.environ.get(v)), REGION)
            try:
                _sessions[profile] = boto3.session.Session(profile_name=profile, region_name=region)
            except botocore.exceptions.ProfileNotFound as exc:
                raise CredentialsError(f"AWS profile not found: {exc}") from None
        return _sessions[profile]


def client(service: str, max_pool_connections: int | None = None) -> Any:
    """A boto3 client with standard retry mode. Clients are thread-safe; sessions are not.
    `max_pool_connections`: the HTTP connections it keeps (the default suits 32 threads); give the
    number of requests the caller has under way at once, or threads open and drop their own."""
    from botocore.config import Config

    settings = dict(RETRY_SETTINGS)
    if max_pool_connections is not None:
        settings["max_pool_connections"] = max(max_pool_connections, RETRY_SETTINGS["max_pool_connections"])
    sess = session()
    with _lock:
        return sess.client(service, config=Config(**settings))


def reset() -> None:
    """Forget cached sessions (tests change the environment between cases)."""
    with _lock:
        _sessions.clear()


def caller_identity() -> str | None:
    """The caller's ARN for the audit log, or None when STS cannot tell."""
    try:
        return client("sts").get_caller_identity().get("Arn")
    except Exception:  # noqa: BLE001 - identity is best effort, never blocks an operation
        return None


# --- one translation of botocore errors ----------------------------------------------------------
# Every AWS call in the package (S3 and the local stores' callers, SSM, Secrets Manager, SQS, Batch,
# CloudFormation, CloudFront) turns a botocore error into one of the project's errors here, so one AWS
# answer reads the same and exits with the same code wherever it comes from. The calls themselves stay
# written out where they are made (`with translated("SQS GetQueueAttributes"): sqs.get_queue_attributes(
# ...)`): the IAM policies are derived from those literal calls (tests/deploy/awscalls.py).
#
# AWS error code -> (the project's error, the words used instead of AWS's own message; None keeps it).
# Any code not listed, and a transport error (an endpoint that does not answer), is a StoreError
# carrying the code: per item a failed item (exit 1 for the run), and when it stops a whole command an
# infrastructure error, exit 5 (EXIT_INFRA), apart from "some items failed". botocore's standard retry
# mode has already retried what is worth retrying (throttling, 5xx) by the time an error gets here.
_CREDENTIALS = (CredentialsError, None)
_DENIED = (AccessDenied, None)
ERROR_CODES: dict[str, tuple[type[AnimlError], str | None]] = {
    # the caller's identity itself is missing or refused (exit 2)
    "InvalidClientTokenId": _CREDENTIALS,
    "UnrecognizedClientException": _CREDENTIALS,
    "ExpiredToken": _CREDENTIALS,
    "ExpiredTokenException": _CREDENTIALS,
    "InvalidAccessKeyId": _CREDENTIALS,
    "SignatureDoesNotMatch": _CREDENTIALS,
    # the identity is known but not allowed this call (exit 2, like missing credentials)
    "AccessDenied": _DENIED,
    "AccessDeniedException": _DENIED,
    "UnauthorizedOperation": _DENIED,
    "AuthorizationError": _DENIED,
    "403": _DENIED,  # S3's answer to a refused HEAD: no body, only the status
    # nothing there (stores turn it into None or a skipped object where that is expected; a missing
    # bucket or parameter that stops a command is an infrastructure error, exit 5)
    "NoSuchKey": (NotFound, "no such object"),
    "404": (NotFound, "no such object"),  # HEAD answers carry no body, only the status
    "NotFound": (NotFound, "no such object"),
    "NoSuchBucket": (NotFound, "no such bucket"),
    "ResourceNotFoundException": (NotFound, "not found"),
    "ParameterNotFound": (NotFound, "no such parameter"),
    # a conditional write or delete whose condition did not hold (stores.py, docs/concurrency.md)
    "PreconditionFailed": (Conflict, None),
    "412": (Conflict, "precondition failed"),
    "ConditionalRequestConflict": (Conflict, None),
    "409": (Conflict, "conflicting conditional request"),
}
AWS_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


def translate(exc: Exception, what: str) -> AnimlError:
    """A botocore error as the project's error for it (ERROR_CODES), with a one-line message that
    starts with `what` (the operation and its target, `GetObject s3://bucket/key`)."""
    code = error_code(exc)
    cls: type[AnimlError]
    words: str | None
    if isinstance(exc, (botocore.exceptions.NoCredentialsError,
                        botocore.exceptions.PartialCredentialsError)):
        code = "NoCredentials"
        cls, words = _CREDENTIALS
    elif isinstance(exc, botocore.exceptions.ClientError):
        cls, words = ERROR_CODES.get(code or "", (StoreError, None))
    else:  # a transport error (connection, timeout) botocore gave up retrying
        return StoreError(f"{what}: {type(exc).__name__}: {exc}")
    if cls is CredentialsError:
        return CredentialsError(f"AWS credentials missing or refused ({what})")
    if words is None:
        assert isinstance(exc, botocore.exceptions.ClientError)
        words = f"{code}: {exc.response.get('Error', {}).get('Message') or code}"
    assert issubclass(cls, StoreError)
    return cls(f"{what}: {words}", code=code)


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Any botocore error inside becomes one of the project's errors (`translate`), described by `what`."""
    try:
        yield
    except AWS_ERRORS as exc:
        raise translate(exc, what) from None


def pages(what: str, paginator: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every page of `paginator.paginate(**kwargs)`, errors translated."""
    with translated(what):
        yield from paginator.paginate(**kwargs)


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None
