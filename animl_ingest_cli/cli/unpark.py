"""`animl-ingest unpark`: the parking lot back to the ingestion bucket, verified."""

from __future__ import annotations

from typing import Annotated

import typer

from animl_ingest_cli.cli.common import DryRunOpt, JsonOpt, StageOpt, YesOpt, confirm_stage, info
from animl_ingest_cli.cli.moves_view import DEFAULT, ConcurrencyOpt, PrefixOpt, run_moves_command
from animl_ingest_cli.context import open_stage
from animl_ingest_cli.ops.moves import connections_for
from animl_ingest_cli.ops.unpark import unpark as unpark_objects

HELP = ("Move every object in the parking lot back to the ingestion bucket under the same key "
        "(server-side copy, verified by ETag, then deleted from the parking lot), so that the ingest "
        "function ingests what arrived during maintenance. Refused while maintenance is on. "
        "Safe to stop and rerun.")


def unpark(
    stage: StageOpt = None,
    prefix: PrefixOpt = "",
    concurrency: ConcurrencyOpt = DEFAULT,
    max_delete: Annotated[int | None, typer.Option(
        "--max-delete", min=0, help="Move at most this many objects (default: no limit).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Go on although maintenance is on (each object is parked again).")] = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    ctx = open_stage(stage, connections=connections_for(concurrency))
    run_moves_command(lambda on_outcome: unpark_objects(
        ctx, prefix=prefix, concurrency=concurrency, max_delete=max_delete, dry_run=dry_run,
        force=force, on_outcome=on_outcome,
        on_wait=lambda s: info(f"maintenance was turned off moments ago: waiting {s:.1f} s"),
        confirm=lambda action: confirm_stage(ctx.stage, action, yes)),
        title="unpark", json_out=json_out, dry_run=dry_run)
