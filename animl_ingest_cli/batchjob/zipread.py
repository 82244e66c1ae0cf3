"""A zip in S3 read in place: a seekable file over ranged GETs, under Python's `zipfile`.

`zipfile` reads the end of the file first (the end-of-central-directory record, the zip64 locator),
then the central directory, then each entry's local header and data where the directory says. That
is exactly what a ranged reader serves well:

- the last `TAIL_BYTES` of the object (EOCD, zip64 records, usually the whole central directory) are
  fetched once, in one GET, and every reader of the same zip shares them (`Pinned`);
- any other read opens a GET from the position to the end of the current *window* (an entry's
  extent, which the job sets before it opens the entry) or `readahead` bytes, and streams it in
  `block`-sized pieces: one GET per entry, and memory is one block per reader whatever the zip's
  size;
- a short forward seek reads through; any other seek drops the stream and opens a new one.

Every GET carries `IfMatch` with the zip's ETag: a zip replaced while it is read fails loudly
instead of mixing two uploads.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from animl_ingest_cli.aws import AWS_ERRORS, error_code
from animl_ingest_cli.errors import NotFound, StoreError

TAIL_BYTES = 1 << 20          # EOCD + zip64 records + (most) central directories in one GET
BLOCK_BYTES = 256 << 10       # one read from a GET's stream
READAHEAD_BYTES = 8 << 20     # a GET with no window reaches this far
SKIP_BYTES = 256 << 10        # a forward seek shorter than this reads through the open stream


@dataclass
class Pinned:
    """Bytes of the object kept in memory and shared by every reader of one zip (thread-safe)."""

    start: int = 0
    data: bytes = b""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def covers(self, pos: int) -> bool:
        return self.start <= pos < self.start + len(self.data)


@dataclass
class ReadStats:
    gets: int = 0
    bytes: int = 0


class S3RangeReader(io.RawIOBase):
    """A read-only, seekable binary file over one S3 object (`size` and `etag` from its HEAD)."""

    def __init__(self, s3: Any, bucket: str, key: str, size: int, etag: str, *,
                 pinned: Pinned | None = None, block: int = BLOCK_BYTES,
                 readahead: int = READAHEAD_BYTES, stats: ReadStats | None = None) -> None:
        super().__init__()
        self.s3, self.bucket, self.key, self.size, self.etag = s3, bucket, key, size, etag
        self.pinned = pinned if pinned is not None else Pinned()
        self.block, self.readahead = block, readahead
        self.stats = stats if stats is not None else ReadStats()
        self._pos = 0
        self._buf = b""          # bytes at [_buf_start, _buf_start + len(_buf))
        self._buf_start = 0
        self._body: Any = None   # the open GET's stream, positioned at _body_pos, ending at _body_end
        self._body_pos = 0
        self._body_end = 0
        self._window: tuple[int, int] | None = None

    # --- io.RawIOBase -------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        pos = base + offset
        if pos < 0:
            raise OSError(22, "negative seek position")
        self._pos = pos
        return pos

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self._pos
        out = bytearray()
        while n > 0 and self._pos < self.size:
            piece = self._from_memory(n)
            if not piece:
                piece = self._from_stream(n)
            out += piece
            self._pos += len(piece)
            n -= len(piece)
        return bytes(out)

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        self._drop_stream()
        self._buf = b""
        super().close()

    # --- windows --------------------------------------------------------------------------------
    def set_window(self, start: int, end: int) -> None:
        """Reads from `start` on stream up to `end` in one GET (an entry's extent in the zip)."""
        self._window = (max(0, start), min(self.size, end))

    # --- the work -------------------------------------------------------------------------------
    def _from_memory(self, n: int) -> bytes:
        pos = self._pos
        if self._buf_start <= pos < self._buf_start + len(self._buf):
            at = pos - self._buf_start
            return self._buf[at: at + n]
        if pos >= self.size - TAIL_BYTES:
            self._pin_tail()
        p = self.pinned
        if p.covers(pos):
            at = pos - p.start
            return p.data[at: at + n]
        return b""

    def _pin_tail(self) -> None:
        p = self.pinned
        with p.lock:
            if p.data and p.start <= max(0, self.size - TAIL_BYTES):
                return
            start = max(0, self.size - TAIL_BYTES)
            p.data, p.start = self._get(start, self.size).read(), start
            self.stats.bytes += len(p.data)

    def _from_stream(self, n: int) -> bytes:
        pos = self._pos
        body_ok = self._body is not None and self._body_pos <= pos < self._body_end
        if body_ok and pos - self._body_pos > SKIP_BYTES:
            body_ok = False
        if not body_ok:
            self._drop_stream()
            end = min(self.size, pos + max(self.readahead, n))
            if self._window and self._window[0] <= pos < self._window[1]:
                end = max(self._window[1], min(self.size, pos + n))
            self._body, self._body_pos, self._body_end = self._get(pos, end), pos, end
        while self._body_pos < pos:  # read through a short forward seek
            skipped = self._read_body(min(self.block, pos - self._body_pos))
            self._body_pos += len(skipped)
        chunk = self._read_body(min(max(self.block, n), self._body_end - pos))
        self._buf, self._buf_start = chunk, pos
        self._body_pos += len(chunk)
        if self._body_pos >= self._body_end:
            self._drop_stream()
        return chunk[:n]

    def _read_body(self, k: int) -> bytes:
        try:
            data: bytes = self._body.read(k)
        except AWS_ERRORS as exc:
            self._drop_stream()
            raise StoreError(f"reading s3://{self.bucket}/{self.key}: {exc}") from None
        if not data:
            self._drop_stream()
            raise StoreError(f"reading s3://{self.bucket}/{self.key}: the stream ended early")
        self.stats.bytes += len(data)
        return data

    def _get(self, start: int, end: int) -> Any:
        try:
            r = self.s3.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{end - 1}",
                                   IfMatch=f'"{self.etag}"')
        except AWS_ERRORS as exc:
            code = error_code(exc)
            if code in ("PreconditionFailed", "412"):
                raise StoreError(f"s3://{self.bucket}/{self.key} changed while it was read "
                                 f"(its ETag is no longer {self.etag})", code=code) from None
            if code in ("NoSuchKey", "404"):
                raise NotFound(f"s3://{self.bucket}/{self.key} is gone", code=code) from None
            raise StoreError(f"GetObject s3://{self.bucket}/{self.key} bytes {start}-{end - 1}: "
                             f"{code or type(exc).__name__}", code=code) from None
        self.stats.gets += 1
        return r["Body"]

    def _drop_stream(self) -> None:
        if self._body is not None:
            try:
                self._body.close()
            except Exception:  # noqa: BLE001 - closing a half-read stream is best effort
                pass
        self._body = None


Opener = Callable[[], Any]  # a fresh seekable binary file object over the zip, one per thread
