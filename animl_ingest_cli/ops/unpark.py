"""Unpark: every object in the parking lot back to the ingestion bucket under the same key.

The ingest function parked them during maintenance; copying them back makes it ingest them now.
Refused while maintenance is on (the function would park each again as it arrives); forced anyway,
the moves are staged first so that a re-parked object can never be deleted by mistake.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from animl_ingest_cli import keys
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import InputError, RefusedError
from animl_ingest_cli.ops import maintenance
from animl_ingest_cli.ops.moves import (
    DEFAULT_CONCURRENCY,
    STAGING_PREFIX,
    Move,
    MoveOutcome,
    MoveSummary,
    run_moves,
)
from animl_ingest_cli.stores import Store


def unpark_moves(src: Store, dst: Store, prefix: str = "") -> Iterator[Move]:
    """The parking lot's objects under `prefix`, as they are listed (streamed), then any left in the
    staging area by an interrupted forced run.

    The ingestion bucket under the same prefix is listed once first (the ingest function keeps it
    nearly empty): an object is looked at (HEAD) only when the listing shows its key taken, so a move
    costs one CopyObject and a thousandth of a DeleteObjects.
    A parked key the ingest function escaped (its ingestion key started with a prefix the tool
    reserves, keys.park_key) goes back under its own key, unescaped."""
    taken = {info.key: info for info in dst.list(keys.unpark_key(prefix))}
    for info in src.list(prefix):
        if not info.key.startswith(STAGING_PREFIX):
            to = keys.unpark_key(info.key)
            yield Move(info.key, info.etag, info.size, dst, to, dst_listed=taken.get(to))
    for info in src.list(STAGING_PREFIX + prefix):
        key = info.key[len(STAGING_PREFIX):]
        to = keys.unpark_key(key)
        yield Move(key, info.etag, info.size, dst, to, staged=True, dst_listed=taken.get(to))


def count_parked(ctx: StageContext, prefix: str = "") -> int:
    """How many objects an unpark under `prefix` would look at: the progress bar's total."""
    src = ctx.store("parkinglot")
    return sum(1 for _ in src.list(prefix)) + sum(1 for _ in src.list(STAGING_PREFIX + prefix))


def unpark(ctx: StageContext, *, prefix: str = "", concurrency: int = DEFAULT_CONCURRENCY,
           max_delete: int | None = None, dry_run: bool = False, force: bool = False,
           on_outcome: Callable[[MoveOutcome], None] | None = None,
           on_wait: Callable[[float], None] | None = None,
           confirm: Callable[[str], None] | None = None,
           sleep: Callable[[float], None] = time.sleep,
           on_warning: Callable[[str], None] | None = None) -> MoveSummary:
    """Move the parking lot (or the part under `prefix`) to the ingestion bucket, verified.

    Raises RefusedError while maintenance is on unless `force`. Right after `maintenance off` the
    function may still be parking for a few seconds: that remainder is waited out first.
    `confirm(description)` is called once the preconditions hold, before anything changes.
    """
    if prefix.startswith(STAGING_PREFIX):
        raise InputError(f"--prefix may not start with the staging prefix {STAGING_PREFIX}")
    state = maintenance.read_state(ctx)
    if state.maintenance and not force and dry_run:
        if on_warning:
            on_warning(f"maintenance is on for {ctx.stage}: this is the plan, but unpark itself is "
                       f"refused until 'animl-ingest maintenance off --stage {ctx.stage}'")
    elif state.maintenance and not force:
        raise RefusedError(f"maintenance is on for {ctx.stage}: unparked images would be parked "
                           f"again (turn it off with 'animl-ingest maintenance off --stage {ctx.stage}', "
                           f"or use --force)")
    src, dst = ctx.store("parkinglot"), ctx.store("ingestion")
    if confirm and not dry_run:
        confirm(f"Move every object in {src.uri(prefix)} to {dst.uri()}")
    if not state.maintenance and not dry_run:
        pending = maintenance.time_to_force(state, maintenance.wait_seconds())
        if pending > 0:
            if on_wait:
                on_wait(pending)
            sleep(pending)
    return run_moves(ctx, "unpark", src, unpark_moves(src, dst, prefix), stage_first=state.maintenance,
                     concurrency=concurrency, dry_run=dry_run, limit=max_delete, on_outcome=on_outcome,
                     details={"from": src.uri(), "to": dst.uri(), "prefix": prefix,
                              "forced": state.maintenance})
