"""`animl-ingest maintenance status|on|off`: the SSM flag the ingest function obeys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from animl_ingest_cli.cli.common import (
    JsonOpt,
    StageOpt,
    YesOpt,
    confirm_stage,
    emit_json,
    examples,
    info,
    new_app,
    warn,
)
from animl_ingest_cli.config import MAINTENANCE_WAIT_ENV as WAIT_ENV
from animl_ingest_cli.errors import Interrupted

if TYPE_CHECKING:
    from animl_ingest_cli.context import StageContext

SHORT = "Ingest maintenance mode: status, on, off."
app = new_app(
    "Ingest maintenance mode: while it is on, the ingest function parks every image and zip that "
    "arrives in the parking lot (the SSM parameter /images/maintenance-mode-<stage>; missing means "
    "off). `on` and `off` return once the change is in force.",
    examples("animl-ingest maintenance status --stage dev",
             "animl-ingest maintenance on --stage prod",
             "animl-ingest maintenance off --stage prod --no-wait"))

NoWaitOpt = Annotated[bool, typer.Option(
    "--no-wait", help=f"Report at once instead of waiting out the ingest function's 15 s cache of the "
                      f"flag (the wait's length can be set with {WAIT_ENV}).")]


@app.command("status", epilog=examples("animl-ingest maintenance status --stage prod",
                                       "animl-ingest maintenance status --stage dev --json"))
def status(stage: StageOpt = None, json_out: JsonOpt = False) -> None:
    """Print `on` or `off` and the stage (with --json: stage, maintenance, changed, parameter, value)."""
    from animl_ingest_cli.context import open_stage
    from animl_ingest_cli.ops.maintenance import read_state

    ctx = open_stage(stage)
    state = read_state(ctx)
    if json_out:
        emit_json(state.to_dict())
        return
    typer.echo(f"{'on' if state.maintenance else 'off'} on {ctx.stage}")
    _warn_odd_value(state.value, ctx.stage)


@app.command("on", epilog=examples("animl-ingest maintenance on --stage prod",
                                   "animl-ingest maintenance on --stage dev --no-wait --json"))
def on(stage: StageOpt = None, no_wait: NoWaitOpt = False, yes: YesOpt = False,
       json_out: JsonOpt = False) -> None:
    """Turn ingest maintenance on (idempotent); returns once the ingest function parks arrivals."""
    _set(stage, True, no_wait, yes, json_out)


@app.command("off", epilog=examples("animl-ingest maintenance off --stage prod",
                                    "animl-ingest maintenance off --stage dev --no-wait"))
def off(stage: StageOpt = None, no_wait: NoWaitOpt = False, yes: YesOpt = False,
        json_out: JsonOpt = False) -> None:
    """Turn ingest maintenance off (idempotent); returns once the ingest function no longer parks."""
    _set(stage, False, no_wait, yes, json_out)


def _warn_odd_value(value: str | None, stage: str) -> None:
    if value is not None and value.strip().lower() not in ("true", "false"):
        warn(f"the maintenance parameter on {stage} holds {value!r}, neither true nor false: the ingest "
             f"function reads it as off")


def _set(stage: str | None, turn_on: bool, no_wait: bool, yes: bool, json_out: bool) -> None:
    from animl_ingest_cli.context import open_stage
    from animl_ingest_cli.ops.maintenance import read_state, set_maintenance

    ctx = open_stage(stage)
    word = "on" if turn_on else "off"
    confirm_stage(ctx.stage, f"Turn ingest maintenance {word}", yes)
    try:
        change = set_maintenance(ctx, turn_on, wait=not no_wait, on_wait=lambda s: info(
            f"maintenance {word} on {ctx.stage}: waiting {s:.1f} s until the ingest function obeys it"))
    except KeyboardInterrupt:
        raise Interrupted(_interrupted(ctx, read_state)) from None
    if json_out:
        emit_json(change.to_dict())
        return
    _warn_odd_value(change.before.value, ctx.stage)
    if not change.written:
        info(f"maintenance was already {word} on {ctx.stage}")
    if not change.in_force:
        warn(f"not in force for another {change.pending:.1f} s (the ingest function caches the flag)")
    typer.echo(f"maintenance {word} ({ctx.stage})")


def _interrupted(ctx: StageContext, read_state: object) -> str:
    """What Ctrl-C left: the flag as it now is (it may already be written; the wait was cut short)."""
    try:
        state = read_state(ctx)  # type: ignore[operator]
    except Exception:  # noqa: BLE001 - the message must come out whatever happens
        return (f"interrupted: maintenance on {ctx.stage} may have changed; check with "
                f"`animl-ingest maintenance status --stage {ctx.stage}`")
    now = "ON" if state.maintenance else "OFF"
    return (f"interrupted: maintenance is {now} on {ctx.stage} (the wait for the ingest function's "
            f"cache was cut short: allow 16 s before relying on it)")
