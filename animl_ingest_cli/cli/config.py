"""`animl-ingest config`."""

from __future__ import annotations

from animl_ingest_cli.cli.common import StageOpt
from animl_ingest_cli.errors import InputError

HELP = "Not built yet."


def config(stage: StageOpt = None) -> None:
    raise InputError("'config' is not built yet")
