"""`animl-ingest runbook`."""

from __future__ import annotations

import typer

from animl_ingest_cli.cli.common import StageOpt
from animl_ingest_cli.errors import InputError

app = typer.Typer(help="runbook commands (not built yet).", no_args_is_help=True)


@app.command("prod-deploy")
def prod_deploy(stage: StageOpt = None) -> None:
    """Not built yet."""
    raise InputError("'runbook prod-deploy' is not built yet")


@app.command("status")
def status(stage: StageOpt = None) -> None:
    """Not built yet."""
    raise InputError("'runbook status' is not built yet")
