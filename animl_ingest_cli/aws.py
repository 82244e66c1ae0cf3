"""One place that builds AWS clients: region, standard retries, the `animl` profile, emulators.

`AWS_ENDPOINT_URL` (and the per-service variants) are honoured by botocore itself, so the tool can be
pointed at moto's server or another emulator without code changes.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from animl_ingest_cli.config import REGION
from animl_ingest_cli.errors import CredentialsError

if TYPE_CHECKING:
    import boto3

# boto3 is imported on first use: a quarter of a second of start-up the local stage never needs.
_lock = threading.Lock()
_sessions: dict[str | None, boto3.session.Session] = {}
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
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or REGION
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


def translate(exc: Exception, what: str) -> Exception:
    """A botocore error as one of the project's exceptions, with a one-line message."""
    from animl_ingest_cli.errors import StoreError

    if is_credentials_error(exc):
        return CredentialsError(f"AWS credentials missing or refused ({what})")
    code = error_code(exc)
    if isinstance(exc, botocore.exceptions.ClientError):
        msg = exc.response.get("Error", {}).get("Message") or code
        return StoreError(f"{what}: {code}: {msg}", code=code)
    return StoreError(f"{what}: {type(exc).__name__}: {exc}", retryable=True)


AWS_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def is_credentials_error(exc: BaseException) -> bool:
    if isinstance(exc, (botocore.exceptions.NoCredentialsError,
                        botocore.exceptions.PartialCredentialsError)):
        return True
    return error_code(exc) in {"InvalidClientTokenId", "UnrecognizedClientException",
                               "ExpiredToken", "ExpiredTokenException", "InvalidAccessKeyId",
                               "SignatureDoesNotMatch"}
