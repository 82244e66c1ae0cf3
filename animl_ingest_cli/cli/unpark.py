"""`animl-ingest unpark`: the parking lot back to the ingestion bucket, verified."""

from __future__ import annotations

from typing import Annotated

import typer

from animl_ingest_cli.cli.common import DryRunOpt, JsonOpt, StageOpt, YesOpt, confirm_stage, info, warn
from animl_ingest_cli.cli.moves_view import DEFAULT, ConcurrencyOpt, PrefixOpt, run_moves_command

SHORT = "Move the parking lot back to the ingestion bucket."
HELP = ("Move every object in the parking lot back to the ingestion bucket under the same key "
        "(server-side copy, verified by ETag, then deleted from the parking lot), so that the ingest "
        "function ingests what arrived during maintenance.\n\n"
        "Refused while maintenance is on (exit 3; --dry-run still shows the plan, with a warning). "
        "Safe to stop and rerun: Ctrl-C lets the copies under way finish and exits 130. Exit 1 when "
        "some objects could not be moved (each is left in the parking lot).")
EPILOG = ("\b\nExamples:\n"
          "  animl-ingest unpark --stage prod --dry-run\n"
          "  animl-ingest unpark --stage prod\n"
          "  animl-ingest unpark --stage dev --prefix batch-7d3c1c2e/ --json")


def unpark(
    stage: StageOpt = None,
    prefix: PrefixOpt = "",
    concurrency: ConcurrencyOpt = DEFAULT,
    max_delete: Annotated[int | None, typer.Option(
        "--max-delete", min=0, metavar="N",
        help="Move at most this many objects (default: no limit).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Go on although maintenance is on (each object is parked again).")] = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    from animl_ingest_cli.context import open_stage
    from animl_ingest_cli.ops.moves import connections_for
    from animl_ingest_cli.ops.unpark import count_parked
    from animl_ingest_cli.ops.unpark import unpark as unpark_objects

    ctx = open_stage(stage, connections=connections_for(concurrency))
    run_moves_command(lambda on_outcome: unpark_objects(
        ctx, prefix=prefix, concurrency=concurrency, max_delete=max_delete, dry_run=dry_run,
        force=force, on_outcome=on_outcome, on_warning=warn,
        on_wait=lambda s: info(f"maintenance was turned off moments ago: waiting {s:.1f} s"),
        confirm=lambda action: confirm_stage(ctx.stage, action, yes)),
        title="unpark", stage=ctx.stage, json_out=json_out, dry_run=dry_run,
        count=lambda: count_parked(ctx, prefix))
