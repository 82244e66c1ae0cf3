"""Faults and crashes, injected where the code meets AWS and animl-api.

Three tools, one per way the code under test runs:
- `AwsFaults`: in-process, on a boto3 client's `before-send` event, so the fault sits inside
  botocore's retry loop exactly where a real network or S3 failure would (standard retry mode sees
  it and retries). A fault is either *before* the change (S3 never saw the request) or *after* it
  (the request reached moto and was applied, then the answer is lost or turned into a 500). S3's
  answers that moto does not give (a conditional copy to a taken key: 412, which a retried copy whose
  first answer was lost meets; the key and metadata limits) come from s3rules.py, inside moto.
- `FaultProxy`: a loopback HTTP proxy in front of moto's server or the animl-api stand-in, for the
  installed CLI in a subprocess. It counts every request it forwards and can SIGKILL the process at
  the N-th one, before forwarding it (never applied) or after (applied, answer never delivered).
- `Crash`: a BaseException raised at a chosen request in-process, which nothing in the code catches,
  so the ingest stops dead at that point (a cheap stand-in for kill -9, used for exhaustive sweeps).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import botocore.exceptions
from botocore.awsrequest import AWSResponse
from botocore.httpsession import URLLib3Session

from bench.s3proxy import HOP_BY_HOP, operation, read_body
from tests.apistub import _MUTATION
from tests.reliability import figures

BEFORE, AFTER = "before", "after"
# kind -> (when, HTTP status or None for a dropped connection, error code)
KINDS: dict[str, tuple[str, int | None, str]] = {
    "throttle": (BEFORE, 503, "SlowDown"),             # S3 throttling; SSM/SQS get ThrottlingException
    "error": (BEFORE, 500, "InternalError"),
    "drop": (BEFORE, None, ""),                          # connection closed before the request got through
    "applied-error": (AFTER, 500, "InternalError"),      # the change was made, then a 500
    "applied-drop": (AFTER, None, ""),                   # the change was made, the answer never came
}


class Crash(BaseException):  # noqa: N818 - it stands for a kill, not an error
    """A process dying at this point: a BaseException nothing in the code under test catches."""


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def _error_response(request: Any, service: str, status: int, code: str) -> AWSResponse:
    """The error answer AWS would give: S3's XML (no body for HEAD), JSON for SSM, SQS and the rest."""
    if service == "s3":
        body = b"" if request.method == "HEAD" else (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>injected fault</Message><RequestId>fault</RequestId></Error>").encode()
        return AWSResponse(request.url, status, {"content-type": "application/xml"}, _Raw(body))
    if code == "SlowDown":
        code = "ThrottlingException"
    body = json.dumps({"__type": code, "message": "injected fault"}).encode()
    return AWSResponse(request.url, status, {"content-type": "application/x-amz-json-1.1"}, _Raw(body))


def _bucket_and_key(url: str) -> tuple[str, str]:
    """The bucket and key of an S3 URL: virtual-hosted (AWS's own endpoint, moto in-process) or path
    style (an endpoint that is an IP address, moto's server)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    path = unquote(parts.path)
    if ".s3." in host:
        return host.split(".s3.", 1)[0], path[1:]
    _, bucket, key = (path.split("/", 2) + ["", ""])[:3]
    return bucket, key


@dataclass
class Rule:
    """Fail `times` matching requests (None: every one) after letting `skip` of them through."""

    operation: str            # botocore operation name, or "*"
    kind: str                 # a key of KINDS
    times: int | None = 1
    skip: int = 0
    bucket: str | None = None
    key_prefix: str | None = None  # only requests for keys starting so (S3; the claims' keys are others)
    seen: int = 0
    fired: int = 0

    def matches(self, op: str, bucket: str, key: str = "") -> bool:
        return self.operation in ("*", op) and self.bucket in (None, bucket) and \
            (self.key_prefix is None or key.startswith(self.key_prefix))

    def take(self) -> bool:
        self.seen += 1
        if self.seen <= self.skip or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True


@dataclass
class AwsFaults:
    """Faults for boto3 clients in this process. `attach(client)` then `add(...)` rules; `crash_at`
    makes the N-th request (counted over every attached client) raise `Crash` before or after it
    reaches the server."""

    rules: list[Rule] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    crash_at: int | None = None
    crash_when: str = BEFORE
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _http: URLLib3Session = field(default_factory=URLLib3Session)

    def attach(self, client: Any) -> Any:
        service = client.meta.service_model.service_name
        client.meta.events.register_first(f"before-send.{client.meta.service_model.service_id.hyphenize()}",
                                          lambda request, event_name, **_: self._on_send(
                                              service, event_name, request))
        return client

    def add(self, operation: str, kind: str, times: int | None = 1, *, skip: int = 0,
            bucket: str | None = None, key_prefix: str | None = None) -> Rule:
        assert kind in KINDS, kind
        rule = Rule(operation, kind, times, skip, bucket, key_prefix)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.crash_at = None

    def _on_send(self, service: str, event_name: str, request: Any) -> AWSResponse | None:
        op = event_name.rsplit(".", 1)[-1]
        bucket, key = _bucket_and_key(request.url) if service == "s3" else ("", "")
        with self._lock:
            rule = next((r for r in self.rules if r.matches(op, bucket, key) and r.take()), None)
        self.crash_point(op, lambda: self._apply(event_name, request))
        if rule is None:
            return None
        when, status, code = KINDS[rule.kind]
        with self._lock:
            self.injected[f"{service}:{op}:{rule.kind}"] += 1
        figures.add("faults injected")
        if when == AFTER:
            self._apply(event_name, request)
        if status is None:
            cls = botocore.exceptions.ReadTimeoutError if when == AFTER else \
                botocore.exceptions.ConnectionClosedError
            raise cls(endpoint_url=request.url)
        response = _error_response(request, service, status, code)
        _bypass_moto(request)
        return response

    def crash_point(self, what: str, send: Any) -> None:
        """Count one request; at the `crash_at`-th, die (`send()` first when crashing after it)."""
        with self._lock:
            self.requests += 1
            if self.crash_at is not None and self.requests > self.crash_at:
                raise Crash("dead")  # the process is gone: nothing more goes out, from any thread
            crash = self.crash_at is not None and self.requests == self.crash_at
        if crash:
            figures.add("crash points")
            if self.crash_when == AFTER:
                send()
            raise Crash(f"crash {self.crash_when} request {self.crash_at} ({what})")

    def crashing_api(self, api: Any) -> Any:
        """`api` whose calls count as requests for `crash_at` (the answer lost with the process)."""
        faults = self

        class CrashingApi:
            def __getattr__(self, name: str) -> Any:
                method = getattr(api, name)

                def call(*args: Any, **kw: Any) -> Any:
                    result: list[Any] = []
                    faults.crash_point(f"api:{name}", lambda: result.append(method(*args, **kw)))
                    return result[0] if result else method(*args, **kw)
                return call

        return CrashingApi()

    def _apply(self, event_name: str, request: Any) -> None:
        """Let the request reach S3 (moto in-process, or moto's server) and drop its answer."""
        from moto.core.models import botocore_stubber

        if botocore_stubber.enabled:
            botocore_stubber(event_name, request)
        else:
            self._http.send(request).content  # noqa: B018 - read the answer, then forget it


def _bypass_moto(request: Any) -> None:
    """In-process moto answers from a `before-send` handler that runs after ours (every handler
    runs); pointed at an address no AWS service matches, it lets our answer stand. botocore builds
    a new request for each retry, so only this attempt is affected."""
    request.url = "http://fault.invalid/"


# --- a proxy for subprocesses ---------------------------------------------------------------------------

@dataclass
class KillSwitch:
    """Shared by several proxies: SIGKILL `pid` at the `at`-th request any of them sees."""

    at: int | None = None
    when: str = BEFORE
    pid: int | None = None
    seen: int = 0
    killed: bool = False
    ops: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self, at: int | None, when: str, pid: int | None = None) -> None:
        with self._lock:
            self.at, self.when, self.pid, self.seen, self.killed = at, when, pid, 0, False
            self.ops = []

    def count(self, op: str) -> tuple[bool, bool]:
        """(kill before forwarding, kill after forwarding) for the request now arriving; once the
        process is killed, nothing more is forwarded."""
        with self._lock:
            if self.killed:
                return True, False
            self.seen += 1
            self.ops.append(op)
            hit = self.at is not None and self.seen == self.at
            return hit and self.when == BEFORE, hit and self.when == AFTER

    def kill(self) -> None:
        with self._lock:
            if self.killed or self.pid is None:
                return
            self.killed = True
            pid = self.pid
        figures.add("kill -9")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class FaultProxy:
    """A loopback HTTP proxy to `upstream` (moto's server, the api stand-in) with a kill switch and
    optional faults by operation: `fail[op] = [status, ...]` answers the next requests of `op` with
    those statuses without forwarding them (throttling that botocore retries)."""

    def __init__(self, upstream: str, switch: KillSwitch) -> None:
        up = urlsplit(upstream)
        self.host, self.port = up.hostname or "127.0.0.1", up.port or 80
        self.prefix = up.path.rstrip("/")
        self.switch = switch
        self.fail: dict[str, list[int]] = {}
        self.jitter: Callable[[], float] | None = None  # seconds to hold each request (seeded timing)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                proxy._handle(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{self.prefix}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = read_body(h)
        op = _operation(h, body)
        before, after = self.switch.count(op)
        if self.jitter is not None:
            time.sleep(self.jitter())
        if before:
            self.switch.kill()
            h.close_connection = True
            return
        with self._lock:
            statuses = self.fail.get(op)
            status = statuses.pop(0) if statuses else None
        if status is not None:  # answered here, never forwarded
            figures.add("faults injected")
            data = (f"<Error><Code>{'SlowDown' if status == 503 else 'InternalError'}</Code>"
                    f"<Message>injected fault</Message></Error>").encode()
            headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(data)))]
        else:
            status, headers, data = self._forward(h, body)
        if after:
            self.switch.kill()  # done upstream (or refused here); the caller never hears of it
            h.close_connection = True
            return
        _answer(h, status, headers, data)

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP}
        if body or h.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(h.command, h.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
        if h.command != "HEAD":  # a HEAD answer keeps the object's own Content-Length
            kept = [(k, v) for k, v in kept if k.lower() != "content-length"]
            kept.append(("Content-Length", str(len(data))))
        return resp.status, kept, data


def _operation(h: BaseHTTPRequestHandler, body: bytes) -> str:
    """The AWS operation, or `api:<mutation>` for a GraphQL call to the api stand-in."""
    op = operation(h.command, h.path, h.headers)
    if op == "POST" and body:
        if body.startswith(b"{"):
            found = _MUTATION.search(body.decode("utf-8", errors="replace"))
            return f"api:{found.group(1) if found else '?'}"
        action = parse_qs(body.decode("latin-1")).get("Action")
        return action[0] if action else op
    return op


def _answer(h: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
    try:
        h.send_response_only(status)
        for k, v in headers:
            h.send_header(k, v)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)
    except OSError:
        pass  # the client is gone (killed)
