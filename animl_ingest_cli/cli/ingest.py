"""`animl-ingest ingest`."""

from __future__ import annotations

from animl_ingest_cli.cli.common import StageOpt
from animl_ingest_cli.errors import InputError

HELP = "Not built yet."


def ingest(stage: StageOpt = None) -> None:
    raise InputError("'ingest' is not built yet")
