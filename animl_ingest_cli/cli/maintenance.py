"""`animl-ingest maintenance status|on|off`: the SSM flag the ingest function obeys."""

from __future__ import annotations

from typing import Annotated

import typer

from animl_ingest_cli.cli.common import JsonOpt, StageOpt, YesOpt, confirm_stage, emit_json, info, warn
from animl_ingest_cli.context import open_stage
from animl_ingest_cli.ops.maintenance import WAIT_ENV, read_state, set_maintenance

app = typer.Typer(
    help="Ingest maintenance mode: while it is on, the ingest function parks every image and zip that "
         "arrives (parameter /images/maintenance-mode-<stage>; missing means off).",
    no_args_is_help=True)

NoWaitOpt = Annotated[bool, typer.Option(
    "--no-wait", help=f"Report at once instead of waiting out the ingest function's 15 s cache of the "
                      f"flag (the wait's length can be set with {WAIT_ENV}).")]


@app.command("status")
def status(stage: StageOpt = None, json_out: JsonOpt = False) -> None:
    """Print `on` or `off` (--json: stage, maintenance, changed, parameter, value)."""
    state = read_state(open_stage(stage))
    if json_out:
        emit_json(state.to_dict())
    else:
        typer.echo("on" if state.maintenance else "off")


@app.command("on")
def on(stage: StageOpt = None, no_wait: NoWaitOpt = False, yes: YesOpt = False,
       json_out: JsonOpt = False) -> None:
    """Turn ingest maintenance on (idempotent); returns once the ingest function parks arrivals."""
    _set(stage, True, no_wait, yes, json_out)


@app.command("off")
def off(stage: StageOpt = None, no_wait: NoWaitOpt = False, yes: YesOpt = False,
        json_out: JsonOpt = False) -> None:
    """Turn ingest maintenance off (idempotent); returns once the ingest function no longer parks."""
    _set(stage, False, no_wait, yes, json_out)


def _set(stage: str | None, turn_on: bool, no_wait: bool, yes: bool, json_out: bool) -> None:
    ctx = open_stage(stage)
    word = "on" if turn_on else "off"
    confirm_stage(ctx.stage, f"Turn ingest maintenance {word}", yes)
    change = set_maintenance(ctx, turn_on, wait=not no_wait, on_wait=lambda s: info(
        f"maintenance {word} on {ctx.stage}: waiting {s:.1f} s until the ingest function obeys it"))
    if json_out:
        emit_json(change.to_dict())
        return
    if not change.written:
        info(f"maintenance was already {word} on {ctx.stage}")
    if not change.in_force:
        warn(f"not in force for another {change.pending:.1f} s (the ingest function caches the flag)")
    typer.echo(word)
