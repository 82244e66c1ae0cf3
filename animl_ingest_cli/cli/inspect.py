"""`animl-ingest inspect`."""

from __future__ import annotations

from animl_ingest_cli.cli.common import StageOpt
from animl_ingest_cli.errors import InputError

HELP = "Not built yet."


def inspect(stage: StageOpt = None) -> None:
    raise InputError("'inspect' is not built yet")
