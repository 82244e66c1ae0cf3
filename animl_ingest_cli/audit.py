"""The audit log: every change an operator command makes, one JSON line each, in the state directory."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import threading
from pathlib import Path
from typing import Any

from animl_ingest_cli import aws
from animl_ingest_cli.config import state_dir
from animl_ingest_cli.redact import redact

log = logging.getLogger("animl_ingest.audit")
_lock = threading.Lock()
_identity: dict[str, str | None] = {}
_warned: set[str] = set()  # audit paths already warned about in this process


def audit_path() -> Path:
    return state_dir() / "audit.jsonl"


def caller(stage: str) -> str | None:
    """Who is acting: the STS caller ARN on AWS stages, the OS user on the local stage."""
    if stage not in _identity:
        if stage == "local":
            try:
                user = getpass.getuser()
            except (KeyError, OSError):  # no login name and no passwd entry (some containers)
                user = "unknown"
            _identity[stage] = f"local:{user}"
        else:
            _identity[stage] = aws.caller_identity()
    return _identity[stage]


def record(stage: str, command: str, **details: Any) -> dict[str, Any]:
    """Append one entry; returns it. Never raises for a full disk (the change already happened), but
    says so, once per process: an operator relying on the log must know it has a gap."""
    entry = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "stage": stage,
             "caller": caller(stage), "command": command, **details}
    line = redact(json.dumps(entry, default=str, ensure_ascii=False))
    path = audit_path()
    with _lock:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        except OSError as exc:
            if str(path) not in _warned:
                _warned.add(str(path))
                log.warning("warning: the audit log %s could not be written (%s): the change was made "
                            "but is not recorded there", path, exc.strerror or type(exc).__name__)
    return entry
