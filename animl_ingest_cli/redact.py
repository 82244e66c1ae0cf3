"""Secrets never reach output: every secret the process learns is registered and scrubbed from text.

Logging too, whoever configures it: once a secret is registered, every log record is made through a
record factory that scrubs it from the message and from the traceback. A secret read from AWS is
logged by botocore (its DEBUG records print every response body) before anyone can register it, so
the debug records made by the thread that reads it, while it reads it, are blanked (`reading_secret`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from animl_ingest_cli.errors import ConfigError

_lock = threading.Lock()
_secrets: set[str] = set()
_short: re.Pattern[str] | None = None
_local = threading.local()
_installed = False
HIDDEN = "(debug record hidden: a secret was being read)"
MASK = "***"
# Every secret is registered, whatever its length. One of SHORT characters or more is scrubbed
# wherever it appears. A shorter one (an API key of "abc" is legal, if unwise) is scrubbed where it
# stands alone, not inside a longer word: "abc" inside "tabcard.jpg" reveals nothing (nobody can
# tell it is the key), while scrubbing it there would mangle every message; an echo of the key (a
# header, "invalid key abc", key=abc) has it standing alone and is scrubbed.
SHORT = 8


def register(secret: str | None) -> None:
    """Scrub `secret` from every text from now on (and its stripped form: a key read with a
    trailing newline is sent without it)."""
    if not secret:
        return
    global _short
    with _lock:
        _secrets.update(s for s in (secret, secret.strip()) if s)
        short = sorted((s for s in _secrets if len(s) < SHORT), key=len, reverse=True)
        _short = re.compile("|".join(rf"(?<![^\W_]){re.escape(s)}(?![^\W_])" for s in short)) \
            if short else None
    _install()


def redact(text: str) -> str:
    with _lock:
        secrets = sorted((s for s in _secrets if len(s) >= SHORT), key=len, reverse=True)
        short = _short
    for s in secrets:
        text = text.replace(s, MASK)
    if short is not None:
        text = short.sub(MASK, text)
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


def usable_api_key(key: str, where: str) -> str:
    """The key as it is sent, checked once before any image (registered for redaction first).

    Whitespace around it (a trailing newline from `echo` or a pasted secret) is taken off: an HTTP
    header value cannot begin or end with whitespace (RFC 9110 section 5.5: it is not part of the
    value), so the key with it could never have been sent, and no API Gateway key has any. A key
    with any other character outside visible ASCII (a control character, a non-Latin-1 or accented
    letter) cannot be a key either: it is refused, instead of failing every image one at a time."""
    register(key)
    stripped = key.strip()
    if not stripped:
        raise ConfigError(f"the API key ({where}) is empty")
    for i, ch in enumerate(stripped, 1):
        if not 0x21 <= ord(ch) <= 0x7E:
            raise ConfigError(f"the API key ({where}) cannot be sent in an HTTP header: character {i} "
                              f"of {len(stripped)} is not visible ASCII; check the key")
    return stripped
