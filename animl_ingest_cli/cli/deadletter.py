"""`animl-ingest deadletter`."""

from __future__ import annotations

import typer

from animl_ingest_cli.cli.common import StageOpt
from animl_ingest_cli.errors import InputError

app = typer.Typer(help="deadletter commands (not built yet).", no_args_is_help=True)


@app.command("list")
def list(stage: StageOpt = None) -> None:
    """Not built yet."""
    raise InputError("'deadletter list' is not built yet")


@app.command("redrive")
def redrive(stage: StageOpt = None) -> None:
    """Not built yet."""
    raise InputError("'deadletter redrive' is not built yet")
