"""The project's exceptions. The CLI turns each into a one-line message and an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_TIMEOUT = 4
EXIT_INFRA = 5  # the command stopped: AWS or the local stage's folders failed (not an item's fault)
EXIT_INTERRUPTED = 130


class AnimlError(Exception):
    """Base class: a message fit for one line, and the exit code the CLI should use."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(AnimlError):
    """Bad input from the user: a missing path, a wrong stage, a bad option value."""

    exit_code = EXIT_USAGE


class ConfigError(AnimlError):
    """A name or a secret could not be resolved for the stage."""

    exit_code = EXIT_USAGE


class InfraError(AnimlError):
    """The stage's infrastructure is not there or not reachable: a missing bucket or parameter, an
    endpoint that does not answer. Nothing about the items: the command stopped (exit 5)."""

    exit_code = EXIT_INFRA


class ApiKeyRefused(AnimlError):
    """animl-api refused the API key (HTTP 401/403): every image would fail the same way."""

    exit_code = EXIT_USAGE


class CredentialsError(AnimlError):
    """No AWS credentials, or they were refused."""

    exit_code = EXIT_USAGE


class RefusedError(AnimlError):
    """The operator declined, or a precondition was not met."""

    exit_code = EXIT_REFUSED


class Interrupted(AnimlError):
    """Ctrl-C, after the command said what state it leaves (printed as is, without `error:`)."""

    exit_code = EXIT_INTERRUPTED


class WaitTimeout(AnimlError):
    """A wait (queues draining, ...) ran out of time."""

    exit_code = EXIT_TIMEOUT


class StoreError(AnimlError):
    """A storage operation (S3 or the local stage's folders) failed.

    `code` is the AWS error code when there is one (NoSuchKey, SlowDown, AccessDenied...).
    AWS's answers become these in one place, `aws.translate`. Per item it is counted as a failed
    item; when it stops a whole command it is an infrastructure error (exit 5).
    """

    exit_code = EXIT_INFRA

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class NotFound(StoreError):
    """The object or bucket does not exist."""


class Conflict(StoreError):
    """A conditional request's condition did not hold: the key is taken (`If-None-Match: *`), or the
    object is not the one named by its ETag (`If-Match`, copy source); S3 answers 412, or 409 when
    another conditional write to the key was under way. Nothing was written."""


class AccessDenied(StoreError):
    """AWS refused the call: the identity is known but lacks the permission (AccessDenied and its
    spellings). It exits like missing credentials (2): the caller's setup, not the data, is wrong.
    Where one object among many is refused, the command reports that object and goes on."""

    exit_code = EXIT_USAGE


class ApiError(AnimlError):
    """animl-api answered with an error, or could not be reached.

    `transient` is True for errors worth retrying (transport errors, timeouts, 5xx).
    """

    exit_code = EXIT_SOME_FAILED

    def __init__(self, message: str, transient: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


class ImageError(AnimlError):
    """An image could not be decoded or resized (corrupt, truncated header, pixel bomb)."""

    exit_code = EXIT_SOME_FAILED
