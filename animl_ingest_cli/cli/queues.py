"""`animl-ingest queues`."""

from __future__ import annotations

import typer

from animl_ingest_cli.cli.common import StageOpt
from animl_ingest_cli.errors import InputError

app = typer.Typer(help="queues commands (not built yet).", no_args_is_help=True)


@app.command("list")
def list(stage: StageOpt = None) -> None:
    """Not built yet."""
    raise InputError("'queues list' is not built yet")


@app.command("drain")
def drain(stage: StageOpt = None) -> None:
    """Not built yet."""
    raise InputError("'queues drain' is not built yet")
