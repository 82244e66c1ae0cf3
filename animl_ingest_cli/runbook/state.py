"""The saved state of a runbook run: one JSON file per stage in the state directory.

It is rewritten atomically (a temporary file renamed over it) after every change, so whatever stops
the process (a "no", a failed step, Ctrl-C, kill -9) leaves the last recorded state whole, and
`--resume` knows which steps are finished. A finished or abandoned run's file is kept under its
run id when a new run starts, next to the audit log's record of it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from animl_ingest_cli.config import state_dir
from animl_ingest_cli.errors import InputError
from animl_ingest_cli.files import LockFile, atomic_write

VERSION = 1
PENDING, DONE, FAILED, SKIPPED = "pending", "done", "failed", "skipped"
FINISHED_STATES = (DONE, SKIPPED)


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def runbook_dir() -> Path:
    return state_dir() / "runbook"


def state_path(stage: str) -> Path:
    return runbook_dir() / f"{stage}.json"


@dataclass
class StepRecord:
    """What happened to one step. `parts` holds the finished parts (name -> what was recorded), so a
    resumed step does not redo them."""

    name: str
    state: str = PENDING
    started: str | None = None
    finished: str | None = None
    detail: str | None = None
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def finished_ok(self) -> bool:
        return self.state in FINISHED_STATES


@dataclass
class RunState:
    stage: str
    run_id: str
    started: str
    options: dict[str, Any]
    steps: list[StepRecord]
    finished: str | None = None

    @classmethod
    def new(cls, stage: str, step_names: Iterable[str], options: dict[str, Any]) -> RunState:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return cls(stage, f"{stamp}-{secrets.token_hex(2)}", now(), dict(options),
                   [StepRecord(n) for n in step_names])

    def step(self, name: str) -> StepRecord:
        for rec in self.steps:
            if rec.name == name:
                return rec
        raise KeyError(name)

    @property
    def complete(self) -> bool:
        return all(rec.finished_ok for rec in self.steps)

    def first_unfinished(self) -> StepRecord | None:
        return next((rec for rec in self.steps if not rec.finished_ok), None)

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, "stage": self.stage, "run_id": self.run_id, "started": self.started,
                "finished": self.finished, "options": self.options,
                "steps": [asdict(rec) for rec in self.steps]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], step_names: Iterable[str]) -> RunState:
        """The saved run, its steps put in the order of `step_names` (a step the file lacks is
        pending; one it has that the runbook no longer knows is dropped)."""
        saved = {s["name"]: StepRecord(**s) for s in data["steps"]}
        return cls(data["stage"], data["run_id"], data["started"], dict(data.get("options") or {}),
                   [saved.get(n) or StepRecord(n) for n in step_names], data.get("finished"))


def save(state: RunState) -> Path:
    """Write the state atomically: the file is always either the old state or the new one."""
    path = state_path(state.stage)
    atomic_write(path, json.dumps(state.to_dict(), indent=1, ensure_ascii=False) + "\n",
                 prefix=f".{state.stage}-", fsync=True)
    return path


def load(stage: str, step_names: Iterable[str]) -> RunState | None:
    """The stage's saved run, or None when there is none."""
    path = state_path(stage)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InputError(f"the runbook state {path} cannot be read ({exc}); move it away to start over") \
            from None
    try:
        if data.get("version") != VERSION or data.get("stage") != stage:
            raise ValueError(f"version {data.get('version')!r}, stage {data.get('stage')!r}")
        return RunState.from_dict(data, step_names)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"the runbook state {path} is not a saved run of {stage} ({exc}); "
                         f"move it away to start over") from None


def archive(state: RunState) -> Path:
    """Keep a run's file under its run id (the stage's file is then free for a new run)."""
    src = state_path(state.stage)
    dst = runbook_dir() / f"{state.stage}-{state.run_id}.json"
    os.replace(src, dst)
    return dst


class StageLock:
    """One runbook run per stage at a time on this machine (a lock file next to the state)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.path = runbook_dir() / f"{stage}.lock"
        self._lock = LockFile(self.path, f"another runbook run for {stage} is under way (lock {self.path})")

    def __enter__(self) -> StageLock:
        self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
