"""`animl-ingest unpark`."""

from __future__ import annotations

from animl_ingest_cli.cli.common import StageOpt
from animl_ingest_cli.errors import InputError

HELP = "Not built yet."


def unpark(stage: StageOpt = None) -> None:
    raise InputError("'unpark' is not built yet")
