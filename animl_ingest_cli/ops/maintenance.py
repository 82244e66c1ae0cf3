"""Ingest maintenance mode: the SSM parameter `/images/maintenance-mode-<stage>` the ingest function obeys.

The function reads the parameter at most every 15 seconds, so a change is in force only once that
cache has run out everywhere; `set_maintenance` waits that long before it reports, so that an unpark
that follows `off` cannot race a function that still parks.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from animl_ingest_cli import audit
from animl_ingest_cli.config import MAINTENANCE_CACHE_SECONDS, MAINTENANCE_WAIT_ENV, maintenance_flag
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import InputError, RefusedError

WAIT_ENV = MAINTENANCE_WAIT_ENV
# The function's cache plus a second for the clocks of SSM and the function not agreeing exactly.
DEFAULT_WAIT_SECONDS = MAINTENANCE_CACHE_SECONDS + 1.0


def wait_seconds() -> float:
    """How long a change takes to be in force: env ANIML_MAINTENANCE_WAIT_SECONDS, else 16 s."""
    raw = os.environ.get(WAIT_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_WAIT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise InputError(f"{WAIT_ENV} must be a number of seconds >= 0, not {raw!r}")
    return value


@dataclass
class MaintenanceState:
    stage: str
    maintenance: bool
    changed: dt.datetime | None  # the parameter's last modification; None when it does not exist
    parameter: str
    value: str | None  # the raw value; None when the parameter does not exist

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "maintenance": self.maintenance,
                "changed": self.changed.isoformat() if self.changed else None,
                "parameter": self.parameter, "value": self.value}


@dataclass
class MaintenanceChange:
    before: MaintenanceState
    after: MaintenanceState
    written: bool  # the parameter was written (a change, or created when missing)
    waited: float  # seconds slept for the change to be in force
    pending: float  # seconds still needed before it is in force (0 unless the wait was skipped)

    @property
    def in_force(self) -> bool:
        return self.pending <= 0

    def to_dict(self) -> dict[str, Any]:
        return {**self.after.to_dict(), "previous": self.before.maintenance, "written": self.written,
                "waited": round(self.waited, 3), "in_force": self.in_force,
                "in_force_in": round(self.pending, 3)}


def read_state(ctx: StageContext) -> MaintenanceState:
    name = ctx.names.maintenance_param
    p = ctx.params.get(name)
    return MaintenanceState(ctx.stage, maintenance_flag(p.value if p else None),
                            p.last_modified if p else None, name, p.value if p else None)


def time_to_force(state: MaintenanceState, wait: float, now: dt.datetime | None = None) -> float:
    """Seconds until the parameter's current value has been in place for `wait` seconds."""
    if state.changed is None:
        return 0.0
    now = now or dt.datetime.now(dt.UTC)
    changed = state.changed if state.changed.tzinfo else state.changed.replace(tzinfo=dt.UTC)
    age = (now - changed).total_seconds()
    return max(0.0, min(wait, wait - age))


def set_maintenance(ctx: StageContext, on: bool, *, wait: bool = True, wait_for: float | None = None,
                    on_wait: Callable[[float], None] | None = None,
                    sleep: Callable[[float], None] = time.sleep) -> MaintenanceChange:
    """Turn maintenance on or off (idempotent), then wait until the function obeys the new value.

    The parameter is written only when its value differs (or it is missing), so `changed` keeps
    meaning "when the state last changed"; every write goes to the audit log.
    """
    wait_for = wait_seconds() if wait_for is None else wait_for
    before = read_state(ctx)
    wanted = "true" if on else "false"
    written = before.value != wanted
    if written:
        ctx.params.put(before.parameter, wanted)
        audit.record(ctx.stage, f"maintenance {'on' if on else 'off'}", parameter=before.parameter,
                     old=before.value, new=wanted)
    # A missing parameter already meant off, and `TRUE` already meant on: only a real flip waits
    # in full; otherwise what is left of the last change's wait, if it was recent.
    needed = wait_for if before.maintenance != on else time_to_force(before, wait_for)
    waited = 0.0
    if wait and needed > 0:
        if on_wait:
            on_wait(needed)
        sleep(needed)
        waited, needed = needed, 0.0
    after = read_state(ctx)
    if after.maintenance != on:
        raise RefusedError(f"maintenance on {ctx.stage} was changed to "
                           f"{'on' if after.maintenance else 'off'} by someone else meanwhile")
    return MaintenanceChange(before, after, written, waited, needed)
