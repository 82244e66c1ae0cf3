"""A counting HTTP proxy on loopback, in front of moto's server.

moto's server keeps no request log, so the honest way to count what a command asks of S3 is to sit
between the two: every request is forwarded unchanged (moto does not check signatures) and counted
by its S3 (or other AWS) operation, named from the method, the query and the headers.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
              "upgrade", "proxy-authenticate", "proxy-authorization"}


def operation(method: str, path: str, headers) -> str:  # noqa: ANN001 - http.client.HTTPMessage
    """The AWS operation a request stands for (path-style S3 addressing, as moto's endpoint gets)."""
    target = headers.get("X-Amz-Target")
    if target:
        return target.split(".")[-1]
    parts = urlsplit(path)
    query = parse_qs(parts.query, keep_blank_values=True)
    segments = [s for s in unquote(parts.path).split("/", 2)[1:] if s]
    on_object = len(segments) >= 2
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    if method == "POST" and not segments:
        return "POST"  # a query-protocol call (STS, SQS): the proxy names it from its body
    if "uploads" in query or "uploadId" in query:
        return f"Multipart:{method}"
    if method == "PUT":
        if on_object:
            return "CopyObject" if headers.get("x-amz-copy-source") else "PutObject"
        return "PutBucket" + ("" if not query else ":" + ",".join(sorted(query)))
    if method == "GET":
        if on_object:
            return "GetObject"
        if not segments:
            return "ListBuckets"
        if query.get("list-type") == ["2"]:
            return "ListObjectsV2"
        if "versions" in query:
            return "ListObjectVersions"
        if not query or set(query) <= {"prefix", "marker", "max-keys", "delimiter", "encoding-type"}:
            return "ListObjects"
        return "GetBucket:" + ",".join(sorted(query))
    if method == "HEAD":
        return "HeadObject" if on_object else "HeadBucket"
    if method == "DELETE":
        return "DeleteObject" if on_object else "DeleteBucket"
    return method


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """A request's body, sent with Content-Length or in chunks (botocore streams some uploads)."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


class CountingProxy:
    """`with CountingProxy(upstream) as proxy:` then point AWS_ENDPOINT_URL at `proxy.url`.

    `delay`: seconds added to every request before it is forwarded (the latency mode: a client far
    from the region). Each connection has its own thread, so delayed requests overlap as they do
    over a real network; only the client's own parallelism decides how many wait at once."""

    def __init__(self, upstream: str, delay: float = 0.0) -> None:
        self.delay = delay
        up = urlsplit(upstream)
        self.upstream_host, self.upstream_port = up.hostname or "127.0.0.1", up.port or 80
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.trace: list[tuple[float, float, str, str]] = []  # (start, end, operation, path): monotonic
        self._lock = threading.Lock()
        self._local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # noqa: ANN002 - quiet
                pass

            def _forward(self) -> None:
                body = read_body(self)
                started = time.monotonic()
                if proxy.delay > 0:
                    time.sleep(proxy.delay)
                op = operation(self.command, self.path, self.headers)
                if op == "POST" and body:  # query-protocol services (STS, SQS) name it in the body
                    action = parse_qs(body.decode("latin-1")).get("Action")
                    op = action[0] if action else op
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                conn = proxy._conn()
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException):
                    proxy._drop_conn()
                    conn = proxy._conn()
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                with proxy._lock:
                    proxy.trace.append((started, time.monotonic(), op, self.path))
                    proxy.counts[op] += 1
                    if resp.status >= 300:
                        proxy.errors[f"{op}:{resp.status}"] += 1
                self.send_response_only(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
            self._local.conn = conn
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.errors.clear()
            self.trace.clear()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.server.shutdown()
        self.server.server_close()
