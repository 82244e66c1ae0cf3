"""`animl-ingest maintenance`."""

from __future__ import annotations

import typer

from animl_ingest_cli.cli.common import StageOpt
from animl_ingest_cli.errors import InputError

app = typer.Typer(help="maintenance commands (not built yet).", no_args_is_help=True)


@app.command("status")
def status(stage: StageOpt = None) -> None:
    """Not built yet."""
    raise InputError("'maintenance status' is not built yet")


@app.command("on")
def on(stage: StageOpt = None) -> None:
    """Not built yet."""
    raise InputError("'maintenance on' is not built yet")


@app.command("off")
def off(stage: StageOpt = None) -> None:
    """Not built yet."""
    raise InputError("'maintenance off' is not built yet")
