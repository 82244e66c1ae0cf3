"""The animl-api GraphQL client (`StageContext.api` decides which API a stage uses).

Errors are mapped the way the Node ingest did (docs/animl.md, animl-api), so the text of an `ApiError`
can become a dead-letter folder name: a non-2xx JSON `message` (API Gateway's 403 `Forbidden`), else
the body text, a 2xx `errors[0].message`. Transport errors, timeouts, 5xx and malformed answers are
retried with backoff, but never beyond the time the caller has left (a Lambda must keep enough time
to dead-letter the image). The API key is registered with `redact` and never appears in an error.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import requests
import urllib3

from animl_ingest_cli import keys, redact
from animl_ingest_cli.errors import ApiError, ApiKeyRefused, ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")

# The batch value sent by createImageError for an image that has no batch (a wireless image).
# animl-api declares `CreateImageErrorInput { error: String!, image: String!, batch: String! }` and
# runs Apollo Server 4 with `status400ForVariableCoercionErrors: true`: a missing or null `batch`
# fails variable coercion and is answered with HTTP 400 (what the Node ingest hit). GraphQL's
# non-null only rejects null, so the empty string is accepted; the ImageError model stores it as
# given (`batch` is an optional String in the Mongo schema). The empty string can never collide
# with a real batch id (`batch-<uuid>`), and it is what "no batch" means in a required String.
NO_BATCH = ""

CREATE_IMAGE = """
mutation CreateImageRecord($input: CreateImageInput!) {
  createImage(input: $input) {
    imageAttempt { _id errors { _id error } }
  }
}"""
CREATE_IMAGE_ERROR = """
mutation CreateImageError($input: CreateImageErrorInput!) {
  createImageError(input: $input) { _id batch error created }
}"""
UPDATE_BATCH = """
mutation UpdateBatch($input: UpdateBatchInput!) {
  updateBatch(input: $input) { batch { _id total } }
}"""
CREATE_BATCH_ERROR = """
mutation CreateBatchError($input: CreateBatchErrorInput!) {
  createBatchError(input: $input) { _id batch error created }
}"""

MAX_ERROR_TEXT = 300        # an error body is cut to this many characters (it may name a folder)
CONNECT_TIMEOUT = 3.05      # the connect part of an attempt's budget; the rest waits for the answer
MIN_ATTEMPT_SECONDS = 0.2   # an attempt with less time than this is not started


class PerThread(Generic[T]):
    """One resource per thread (requests sessions and SQLite connections must not be shared),
    all of them remembered so `close_all` can end them once no thread uses them any more."""

    def __init__(self, make: Callable[[], T], close: Callable[[T], None]) -> None:
        self._make, self._close = make, close
        self._local = threading.local()
        self._all: list[T] = []
        self._lock = threading.Lock()

    def get(self) -> T:
        item = getattr(self._local, "item", None)
        if item is None:
            item = self._local.item = self._make()
            with self._lock:
                self._all.append(item)
        return item

    def close_all(self) -> None:
        with self._lock:
            items, self._all = self._all, []
        for item in items:
            self._close(item)
        self._local = threading.local()

    def __len__(self) -> int:
        with self._lock:
            return len(self._all)


@dataclass
class ImageAttempt:
    """What createImage answered: the image id (when the API gave one) and its validation errors."""

    image_id: str | None      # imageAttempt._id ("<projectId>:<md5>") when the API returned one
    errors: list[str]         # imageAttempt.errors[].error; empty = success

    @property
    def ok(self) -> bool:
        return not self.errors


class Api(Protocol):
    def create_image(self, md: dict[str, Any]) -> ImageAttempt: ...

    def create_image_error(self, error: str, image: str, batch: str | None) -> None: ...

    def update_batch(self, fields: dict[str, Any]) -> None: ...

    def create_batch_error(self, error: str, batch: str) -> None: ...


def one_line(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """Whitespace collapsed, cut to `limit` characters, secrets scrubbed: fit for a one-line error."""
    flat = " ".join(redact.redact(text).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def _error_text(body: bytes, status: int) -> str:
    """A non-2xx body's error text: JSON `message`, else GraphQL `errors[0].message`, else the text."""
    text = body.decode("utf-8", errors="replace")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        if isinstance(doc.get("message"), str) and doc["message"]:
            return one_line(doc["message"])
        first = _first_graphql_error(doc)
        if first:
            return first
    return one_line(text) or f"HTTP {status}"


def _first_graphql_error(doc: dict[str, Any]) -> str | None:
    errors = doc.get("errors")
    if not isinstance(errors, list) or not errors:
        return None
    first = errors[0]
    message = first.get("message") if isinstance(first, dict) else first
    return one_line(str(message)) if message else "animl-api error without a message"


_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")


def _transport_text(exc: requests.RequestException) -> str:
    """A stable text for a transport error (no object addresses: it may name a dead-letter folder)."""
    if isinstance(exc, requests.Timeout):
        return keys.API_TIMEOUT_TEXT
    found = _ERRNO.search(str(exc))
    reason = found.group(0).strip() if found else type(exc).__name__
    return one_line(f"{keys.API_UNREACHABLE_TEXT}: {reason}")


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class GraphQLApi:
    """animl-api over HTTP: POST `{query, variables}` with the `x-api-key` header.

    `time_left` (seconds the caller still has, e.g. a Lambda's remaining time) bounds every attempt
    and every pause; `margin` seconds are always left to the caller. Each attempt takes at most
    min(timeout, time left - margin), connecting and waiting for the answer together (the connect
    part is capped at CONNECT_TIMEOUT). HTTP 429 (API Gateway throttling) is retried like a 5xx; other 4xx and
    GraphQL errors are answers, not failures of transport, and are raised at once.
    """

    def __init__(self, url: str, api_key: str, timeout: float = 15.0,
                 time_left: Callable[[], float] | None = None,
                 max_attempts: int = 4, backoff: float = 0.5, session: requests.Session | None = None,
                 margin: float = 1.0) -> None:
        if not url:
            raise ConfigError("no API URL given")
        if not api_key:
            raise ConfigError("no API key given")
        self.url = url
        self._api_key = redact.usable_api_key(api_key, "given")
        self.timeout = timeout
        self.time_left = time_left
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.margin = margin
        self._session = session
        self._sessions = PerThread(requests.Session, lambda s: s.close())

    def __repr__(self) -> str:  # never show the key
        return f"GraphQLApi(url={self.url!r})"

    # --- the four mutations ----------------------------------------------------------------------
    def create_image(self, md: dict[str, Any]) -> ImageAttempt:
        answer = self._call("createImage", CREATE_IMAGE, {"md": md})
        attempt = answer.get("imageAttempt") if isinstance(answer, dict) else None
        if not isinstance(attempt, dict) or not isinstance(attempt.get("errors", []), list):
            raise ApiError("malformed answer from animl-api: createImage without imageAttempt",
                           transient=True, status=200)
        errors = [str(e.get("error") if isinstance(e, dict) else e) for e in attempt.get("errors") or []]
        image_id = attempt.get("_id")
        return ImageAttempt(str(image_id) if image_id else None, errors)

    def create_image_error(self, error: str, image: str, batch: str | None) -> None:
        """Report a failure after createImage succeeded. `batch=None` (a wireless image) is sent
        as NO_BATCH: the API requires a non-null String there (see NO_BATCH)."""
        self._call("createImageError", CREATE_IMAGE_ERROR,
                   {"error": error, "image": image, "batch": batch if batch else NO_BATCH})

    def update_batch(self, fields: dict[str, Any]) -> None:
        if not fields.get("_id"):
            raise ApiError("updateBatch needs the batch _id")
        self._call("updateBatch", UPDATE_BATCH, dict(fields))

    def create_batch_error(self, error: str, batch: str) -> None:
        self._call("createBatchError", CREATE_BATCH_ERROR, {"error": error, "batch": batch})

    def probe(self) -> None:
        """Ask animl-api whether it accepts the key, creating nothing (`query { __typename }`).

        ApiKeyRefused on HTTP 401/403; ApiError when it cannot be reached. Any other answer, even a
        GraphQL error, means the key got through."""
        budget = self._budget() or MIN_ATTEMPT_SECONDS
        limit = urllib3.Timeout(total=budget, connect=min(CONNECT_TIMEOUT, budget))
        headers = {"Content-Type": "application/json", "x-api-key": self._api_key}
        try:
            resp = self._http().post(self.url, data=b'{"query":"query { __typename }"}', headers=headers,
                                     timeout=limit)  # type: ignore[arg-type]  # a urllib3 Timeout, as above
            content = resp.content
        except requests.RequestException as exc:
            raise ApiError(_transport_text(exc), transient=True) from None
        if resp.status_code in (401, 403):
            raise ApiKeyRefused(f"animl-api refused the API key (HTTP {resp.status_code}: "
                                f"{_error_text(content, resp.status_code)}): check API_KEY, ANIML_API_KEY "
                                f"or the secret")

    # --- transport -------------------------------------------------------------------------------
    def _http(self) -> requests.Session:
        return self._session if self._session is not None else self._sessions.get()

    def close(self) -> None:
        """Close the connection pools this client opened (not a session it was given)."""
        self._sessions.close_all()

    def _budget(self) -> float | None:
        """Seconds the next attempt may take, or None when there is no time for one."""
        budget = self.timeout
        if self.time_left is not None:
            budget = min(budget, self.time_left() - self.margin)
        return budget if budget >= MIN_ATTEMPT_SECONDS else None

    def _call(self, name: str, query: str, payload: dict[str, Any]) -> Any:
        try:
            body = json.dumps({"query": query, "variables": {"input": payload}},
                              default=_json_default, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ApiError(one_line(f"cannot encode {name} input as JSON: {exc}")) from None
        last: ApiError | None = None
        for attempt in range(1, self.max_attempts + 1):
            budget = self._budget()
            if budget is None:
                break
            try:
                return self._attempt(name, body, budget)
            except ApiError as exc:
                if not exc.transient:
                    raise
                last = exc
            if attempt == self.max_attempts:
                break
            delay = self.backoff * (2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
            if self.time_left is not None and \
                    self.time_left() - self.margin - delay < MIN_ATTEMPT_SECONDS:
                break  # no time to pause and try again
            log.warning("%s failed (%s), attempt %d of %d, retrying in %.2f s",
                        name, last.message, attempt, self.max_attempts, delay)
            time.sleep(delay)
        if last is None:
            raise ApiError(f"animl-api not called: no time left for {name}", transient=True)
        raise last

    def _attempt(self, name: str, body: bytes, budget: float) -> Any:
        # `total` bounds connect + wait for the answer together (requests passes it to urllib3)
        limit = urllib3.Timeout(total=budget, connect=min(CONNECT_TIMEOUT, budget))
        headers = {"Content-Type": "application/json", "x-api-key": self._api_key}
        try:
            # requests hands a urllib3 Timeout to urllib3 as it is; its stubs only know numbers
            resp = self._http().post(self.url, data=body, headers=headers,
                                     timeout=limit)  # type: ignore[arg-type]
            content = resp.content
        except requests.RequestException as exc:
            raise ApiError(_transport_text(exc), transient=True) from None
        status = resp.status_code
        if not 200 <= status < 300:
            raise ApiError(_error_text(content, status), transient=status >= 500 or status == 429,
                           status=status)
        try:
            doc = json.loads(content)
        except ValueError:
            raise ApiError(f"malformed answer from animl-api (HTTP {status}): not JSON",
                           transient=True, status=status) from None
        if not isinstance(doc, dict):
            raise ApiError(f"malformed answer from animl-api (HTTP {status}): not a JSON object",
                           transient=True, status=status)
        first = _first_graphql_error(doc)
        if first:
            raise ApiError(first, transient=False, status=status)
        data = doc.get("data")
        if not isinstance(data, dict) or data.get(name) is None:
            raise ApiError(f"malformed answer from animl-api (HTTP {status}): no data.{name}",
                           transient=True, status=status)
        return data[name]
