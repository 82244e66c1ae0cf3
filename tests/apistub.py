"""An animl-api stand-in: a real HTTP server on 127.0.0.1 speaking GraphQL-over-JSON.

It answers the four mutations the ingest uses, backed by the local stage's catalog (`LocalApi`), so
the validation rules are the ones in `animl_ingest_cli.api_local`. Like the real stack it answers
403 `{"message":"Forbidden"}` for a bad `x-api-key` (API Gateway), and HTTP 400 for input that
fails GraphQL variable coercion (animl-api runs Apollo Server 4 with
`status400ForVariableCoercionErrors`): a missing or null required field, an unknown field.

Faults are queued and consumed one request at a time: `fail(status, times)`, `malformed(times)`,
`hang(seconds, times)`, `record_then_fail(status)` and `record_then_hang(seconds)` (the record is
made, then the answer is lost: a replay must get the duplicate), and `odd_answer(kind, times)`: the
record is made, then createImage answers something animl-api should never say (ODD_ANSWERS: the
same `_id` for every image, `_id` null without errors, the id of another hash, an id with a `/`).
Every request is recorded.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from animl_ingest_cli.api import GraphQLApi
from animl_ingest_cli.api_local import LocalApi
from animl_ingest_cli.errors import ApiError

MUTATIONS = ("createImageError", "createImage", "updateBatch", "createBatchError")
_MUTATION = re.compile(r"\b(" + "|".join(MUTATIONS) + r")\s*\(")

# input type name, then field -> (GraphQL type, required): animl-api's type-defs/inputs/*.ts
INPUT_TYPES: dict[str, tuple[str, dict[str, tuple[str, bool]]]] = {
    "createImage": ("CreateImageInput", {"md": ("JSONObject", True)}),
    "createImageError": ("CreateImageErrorInput", {"error": ("String", True), "image": ("String", True),
                                                   "batch": ("String", True)}),
    "updateBatch": ("UpdateBatchInput", {
        "_id": ("String", True), "total": ("Int", False), "overrideSerial": ("String", False),
        "uploadComplete": ("Date", False), "ingestionComplete": ("Date", False),
        "processingEnd": ("Date", False), "processingStart": ("Date", False),
        "originalFile": ("String", False), "uploadedFile": ("String", False)}),
    "createBatchError": ("CreateBatchErrorInput", {"error": ("String", True), "batch": ("String", True)}),
}

DEFAULT_BODIES = {
    403: {"message": "Forbidden"},
    429: {"message": "Too Many Requests"},
    500: {"message": "Internal server error"},
    502: {"message": "Internal server error"},
    503: {"message": "Service Unavailable"},
    504: {"message": "Endpoint request timed out"},
}


SAME_ID = "default_project:" + "0" * 32


def _odd_id(kind: str, image_id: str) -> str | None:
    project, _, digest = image_id.rpartition(":")
    return {"same_id": SAME_ID, "null_id": None, "other_hash": f"{project}:{digest[::-1]}",
            "slash_id": f"{project}/../x:{digest}"}[kind]


ODD_ANSWERS = ("same_id", "null_id", "other_hash", "slash_id")


@dataclass
class Recorded:
    """One request as the stand-in saw it, and the status it answered."""

    mutation: str | None
    input: Any
    headers: dict[str, str]
    body: bytes
    status: int | None = None


@dataclass
class Fault:
    kind: str                    # status | malformed | hang | record_then_status | record_then_hang | odd
    times: int
    status: int = 500
    seconds: float = 0.0
    body: bytes | None = None
    mutation: str | None = None  # None: any mutation
    odd: str = ""                # kind "odd": one of ODD_ANSWERS


def _coercion_error(message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"errors": [{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}]}


def coerce_input(mutation: str, value: Any) -> tuple[int, dict[str, Any]] | None:
    """GraphQL variable coercion of `$input`, as graphql-js words its errors; None when valid."""
    type_name, fields = INPUT_TYPES[mutation]
    if value is None:
        return _coercion_error(f'Variable "$input" of required type "{type_name}!" was not provided.')
    shown = json.dumps(value)[:200]
    if not isinstance(value, dict):
        return _coercion_error(f'Variable "$input" got invalid value {shown}; '
                               f'Expected type "{type_name}" to be an object.')
    for name in value:
        if name not in fields:
            return _coercion_error(f'Variable "$input" got invalid value {shown}; '
                                   f'Field "{name}" is not defined by type "{type_name}".')
    for name, (kind, required) in fields.items():
        if name not in value:
            if required:
                return _coercion_error(f'Variable "$input" got invalid value {shown}; '
                                       f'Field "{name}" of required type "{kind}!" was not provided.')
            continue
        item = value[name]
        where = f'Variable "$input" got invalid value {json.dumps(item)[:100]} at "input.{name}"; '
        if item is None:
            if required:
                return _coercion_error(where + f'Expected non-nullable type "{kind}!" not to be null.')
            continue
        if kind in ("String", "Date") and not isinstance(item, str):
            return _coercion_error(where + f"{kind} cannot represent a non string value: {item}")
        if kind == "Int" and (isinstance(item, bool) or not isinstance(item, int)):
            return _coercion_error(where + f"Int cannot represent non-integer value: {item}")
        if kind == "JSONObject" and not isinstance(item, dict):
            return _coercion_error(where + f"JSONObject cannot represent non-object value: {item}")
    return None


class ApiStub:
    """The stand-in server. `url`, `api_key`, `catalog` (the LocalApi behind it), `requests`."""

    def __init__(self, db_path: Path, api_key: str | None = None) -> None:
        self.api_key = api_key or "stub-key-" + secrets.token_hex(12)
        self.catalog = LocalApi(db_path)
        self._faults: list[Fault] = []
        self._recorded: list[Recorded] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        # seconds each mutation takes to answer (animl-api at a distance: createImage is GraphQL +
        # MongoDB, hundreds of milliseconds), and the most answers of each under way at once
        self.delays: dict[str, float] = {}
        self.in_flight: dict[str, int] = {}
        self.peak_in_flight: dict[str, int] = {}

    # --- life cycle -----------------------------------------------------------------------------
    def start(self) -> ApiStub:
        stub = self

        class Handler(_Handler):
            owner = stub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}/internal"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="apistub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.catalog.close()

    def client(self, **kwargs: Any) -> GraphQLApi:
        """A GraphQLApi aimed at this stand-in with quick backoff (tests override what they need)."""
        kwargs.setdefault("backoff", 0.01)
        kwargs.setdefault("timeout", 5.0)
        return GraphQLApi(self.url, self.api_key, **kwargs)

    # --- faults ---------------------------------------------------------------------------------
    def _add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def fail(self, status: int, times: int = 1, body: bytes | str | dict | None = None,
             mutation: str | None = None) -> None:
        """Answer `times` requests with `status` (and `body`, default API Gateway's JSON), then recover."""
        self._add(Fault("status", times, status=status, body=_body(status, body), mutation=mutation))

    def malformed(self, times: int = 1, mutation: str | None = None) -> None:
        """Answer HTTP 200 with a body that is not JSON."""
        self._add(Fault("malformed", times, status=200, body=b'<html>{"data": half', mutation=mutation))

    def hang(self, seconds: float, times: int = 1, mutation: str | None = None) -> None:
        """Say nothing for `seconds` (nothing is recorded), then answer 504."""
        self._add(Fault("hang", times, status=504, seconds=seconds, body=_body(504, None),
                        mutation=mutation))

    def record_then_fail(self, status: int = 500, times: int = 1,
                         mutation: str | None = "createImage") -> None:
        """Do the work (the record is made), then answer `status` instead of the result."""
        self._add(Fault("record_then_status", times, status=status, body=_body(status, None),
                        mutation=mutation))

    def record_then_hang(self, seconds: float, times: int = 1,
                         mutation: str | None = "createImage") -> None:
        """Do the work, then say nothing for `seconds` before answering."""
        self._add(Fault("record_then_hang", times, seconds=seconds, mutation=mutation))

    def odd_answer(self, kind: str, times: int = 1) -> None:
        """createImage makes the record, then answers an image id of the `kind` in ODD_ANSWERS (and
        no errors) instead of the real one."""
        if kind not in ODD_ANSWERS:
            raise ValueError(f"odd answers are {ODD_ANSWERS}")
        self._add(Fault("odd", times, mutation="createImage", odd=kind))

    def _take_fault(self, mutation: str | None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.mutation in (None, mutation):
                    fault.times -= 1
                    return fault
        return None

    # --- what happened --------------------------------------------------------------------------
    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._recorded)

    def calls(self, mutation: str) -> list[Recorded]:
        return [r for r in self.requests if r.mutation == mutation]

    @contextmanager
    def _answering(self, mutation: str) -> Iterator[None]:
        with self._lock:
            now = self.in_flight[mutation] = self.in_flight.get(mutation, 0) + 1
            self.peak_in_flight[mutation] = max(self.peak_in_flight.get(mutation, 0), now)
        try:
            if self.delays.get(mutation):
                self._stopping.wait(self.delays[mutation])
            yield
        finally:
            with self._lock:
                self.in_flight[mutation] -= 1

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self._recorded.append(rec)

    # --- the GraphQL side -----------------------------------------------------------------------
    def execute(self, mutation: str, value: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Run one mutation against the catalog; a catalog ApiError is a GraphQL error (HTTP 200)."""
        try:
            if mutation == "createImage":
                rec = self.catalog.create_image_record(value["md"])
                data: Any = {"imageAttempt": {"_id": rec.image_id, "errors": rec.errors}}
            elif mutation == "createImageError":
                data = self.catalog.create_image_error_record(value["error"], value["image"],
                                                              value["batch"])
            elif mutation == "updateBatch":
                data = {"batch": self.catalog.update_batch_record(value)}
            else:
                data = self.catalog.create_batch_error_record(value["error"], value["batch"])
        except ApiError as exc:
            return 200, {"errors": [{"message": exc.message, "path": [mutation],
                                     "extensions": {"code": "INTERNAL_SERVER_ERROR"}}],
                         "data": {mutation: None}}
        return 200, {"data": {mutation: data}}


def _body(status: int, body: bytes | str | dict | None) -> bytes:
    if body is None:
        body = DEFAULT_BODIES.get(status, {"message": f"HTTP {status}"})
    if isinstance(body, dict):
        return json.dumps(body).encode()
    return body.encode() if isinstance(body, str) else body


class _Handler(BaseHTTPRequestHandler):
    owner: ApiStub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _send(self, rec: Recorded, status: int, body: bytes | dict[str, Any]) -> None:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        rec.status = status
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (a hang longer than its timeout)

    def _wait(self, seconds: float) -> None:
        self.owner._stopping.wait(seconds)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        stub = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        query = doc.get("query", "") if isinstance(doc, dict) else ""
        variables = doc.get("variables") if isinstance(doc, dict) else None
        found = _MUTATION.search(query) if isinstance(query, str) else None
        mutation = found.group(1) if found else None
        value = variables.get("input") if isinstance(variables, dict) else None
        rec = Recorded(mutation, value, {k.lower(): v for k, v in self.headers.items()}, raw)
        stub._record(rec)

        if self.headers.get("x-api-key") != stub.api_key:
            return self._send(rec, 403, {"message": "Forbidden"})
        fault = stub._take_fault(mutation)
        if fault is not None and fault.kind in ("status", "malformed"):
            return self._send(rec, fault.status, fault.body or b"")
        if fault is not None and fault.kind == "hang":
            self._wait(fault.seconds)
            return self._send(rec, fault.status, fault.body or b"")
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            return self._send(rec, 400, {"errors": [{"message": "This operation has been blocked as a "
                                                     "potential Cross-Site Request Forgery (CSRF)."}]})
        if not isinstance(doc, dict) or not query:
            return self._send(rec, 400, {"errors": [{"message": "POST body missing or invalid JSON."}]})
        if mutation is None:
            name = re.search(r"{\s*(\w+)", query)
            return self._send(rec, 400, {"errors": [{
                "message": f'Cannot query field "{name.group(1) if name else "?"}" on type "Mutation".',
                "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]})
        invalid = coerce_input(mutation, value)
        if invalid is not None:
            return self._send(rec, *invalid)
        with stub._answering(mutation):
            status, answer = stub.execute(mutation, value)
        if fault is not None and fault.kind == "record_then_status":
            return self._send(rec, fault.status, fault.body or b"")
        if fault is not None and fault.kind == "record_then_hang":
            self._wait(fault.seconds)
        attempt = (answer.get("data") or {}).get(mutation) or {}
        if fault is not None and fault.kind == "odd" and "imageAttempt" in attempt:
            real = attempt["imageAttempt"]
            attempt["imageAttempt"] = {"_id": _odd_id(fault.odd, real["_id"]), "errors": []}
        return self._send(rec, status, answer)


@pytest.fixture
def api_stub(tmp_path: Path) -> Iterator[ApiStub]:
    """A running animl-api stand-in (`.url`, `.api_key`, `.catalog`), stopped after the test."""
    stub = ApiStub(tmp_path / "apistub-catalog.sqlite").start()
    try:
        yield stub
    finally:
        stub.stop()


@dataclass
class Clock:
    """A `time_left` for tests: `seconds` from now, on the monotonic clock."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    def __call__(self) -> float:
        return self.seconds - (time.monotonic() - self.start)
