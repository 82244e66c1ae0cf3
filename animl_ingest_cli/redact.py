"""Secrets never reach output: every secret the process learns is registered and scrubbed from text.

Logging too, whoever configures it: once a secret is registered, every log record is made through a
record factory that scrubs it from the message and from the traceback. A secret read from AWS is
logged by botocore (its DEBUG records print every response body) before anyone can register it, so
the debug records made by the thread that reads it, while it reads it, are blanked (`reading_secret`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_secrets: set[str] = set()
_local = threading.local()
_installed = False
HIDDEN = "(debug record hidden: a secret was being read)"


def register(secret: str | None) -> None:
    if secret and len(secret) >= 4:
        with _lock:
            _secrets.add(secret)
        _install()


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        text = text.replace(s, "***")
    return text


@contextmanager
def reading_secret() -> Iterator[None]:
    """While this thread reads a secret, its log records below INFO say nothing."""
    _install()
    _local.reading = True
    try:
        yield
    finally:
        _local.reading = False


def _install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if getattr(_local, "reading", False) and record.levelno < logging.INFO:
            record.msg, record.args, record.exc_info = HIDDEN, None, None
            return record
        if _secrets:
            _scrub(record)
        return record

    logging.setLogRecordFactory(factory)


def _scrub(record: logging.LogRecord) -> None:
    try:
        text = record.getMessage()
    except Exception:  # noqa: BLE001 - a record whose arguments do not format is left to logging
        return
    clean = redact(text)
    if clean != text:
        record.msg, record.args = clean, None
    if record.exc_info:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
