"""`animl-ingest config`: every resolved name of a stage and where it came from."""

from __future__ import annotations

from rich.table import Table

from animl_ingest_cli.cli.common import JsonOpt, StageOpt, emit_json, out_console
from animl_ingest_cli.context import open_stage
from animl_ingest_cli.ops.config_report import resolve

HELP = ("Show every name the stage resolves to (buckets or local folders, SSM parameters, queues, "
        "where the API key comes from, the audit log) and where each came from: default, ssm, env.")


def config(stage: StageOpt = None, json_out: JsonOpt = False) -> None:
    settings = resolve(open_stage(stage), given_stage=stage)
    if json_out:
        for s in settings:
            emit_json(s.to_dict())
        return
    table = Table()
    for col in ("name", "value", "source", "from"):
        table.add_column(col, overflow="fold")
    for s in settings:
        table.add_row(s.name, s.value if s.value is not None else "-", s.source, s.where or "")
    out_console.print(table)
