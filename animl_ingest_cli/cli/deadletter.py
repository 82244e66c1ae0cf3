"""`animl-ingest deadletter list|redrive`: dead-letter triage and replay."""

from __future__ import annotations

from typing import Annotated

import typer

from animl_ingest_cli.cli.common import (
    DryRunOpt,
    JsonOpt,
    StageOpt,
    YesOpt,
    confirm_stage,
    emit_json,
    examples,
    info,
    new_app,
    out_console,
    warn,
)
from animl_ingest_cli.cli.moves_view import DEFAULT, ConcurrencyOpt, PrefixOpt, run_moves_command
from animl_ingest_cli.config import ALLOW_OPTION

SHORT = "The dead-letter bucket: list, and redrive."
app = new_app("The dead-letter bucket: what failed and why (one folder per error), and sending a folder "
              "back to be ingested again.",
              examples("animl-ingest deadletter list --stage prod",
                       'animl-ingest deadletter redrive --stage prod --error "Unknown Serial Number"'))


@app.command("list", epilog=examples("animl-ingest deadletter list --stage prod",
                                     "animl-ingest deadletter list --stage dev --json"))
def list_(stage: StageOpt = None, json_out: JsonOpt = False) -> None:
    """Objects per error folder, their size and the newest one's time; `in transit` counts what an
    interrupted redrive left staged (run the same redrive again)."""
    import datetime as dt

    from rich.table import Table

    from animl_ingest_cli.context import open_stage
    from animl_ingest_cli.ops.deadletter import list_errors

    ctx = open_stage(stage)
    folders = list_errors(ctx)
    if json_out:
        for f in folders:
            emit_json(f.to_dict())
        return
    if not folders:
        info(f"the dead-letter bucket of {ctx.stage} is empty")
        return
    table = Table(title=f"dead letters on {ctx.stage}", title_justify="left")
    table.add_column("error")
    table.add_column("objects", justify="right")
    table.add_column("bytes", justify="right")
    table.add_column("newest")
    table.add_column("in transit", justify="right")
    for f in folders:
        table.add_row(f.error or "(root)", str(f.objects), str(f.bytes),
                      f.newest.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ") if f.newest else "",
                      str(f.in_transit) if f.in_transit else "")
    out_console.print(table)
    if any(f.in_transit for f in folders):
        info("'in transit': an interrupted redrive; run the same redrive again to finish it")


@app.command("redrive", epilog=examples(
    'animl-ingest deadletter redrive --stage prod --error "Unknown Serial Number" --dry-run',
    "animl-ingest deadletter redrive --stage dev --error CORRUPTED_IMAGE_FILE --yes"))
def redrive(
    error: Annotated[str, typer.Option("--error", metavar="FOLDER",
                                       help="The error folder to redrive, as `deadletter list` shows it.")],
    stage: StageOpt = None,
    prefix: PrefixOpt = "",
    allow_foreign_bucket: Annotated[list[str] | None, typer.Option(
        ALLOW_OPTION, metavar="BUCKET",
        help="Also send dead letters back to this bucket, which is not one of the stage's own "
             "(repeat for several). Without it they are left in place and reported. A prod bucket "
             "asks for the prod confirmation too.")] = None,
    concurrency: ConcurrencyOpt = DEFAULT,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Send every object of one error folder back to its original bucket and key (verified), then
    delete it from the dead-letter bucket. --prefix: only keys under this prefix inside the folder.
    A folder that does not exist is an error (exit 2) that lists the folders there are."""
    from animl_ingest_cli.context import open_stage
    from animl_ingest_cli.ops.deadletter import count_folder, warnings_for
    from animl_ingest_cli.ops.deadletter import redrive as redrive_objects
    from animl_ingest_cli.ops.moves import connections_for

    ctx = open_stage(stage, connections=connections_for(concurrency))
    for message in warnings_for(error):
        warn(message)
    run_moves_command(lambda on_outcome: redrive_objects(
        ctx, error, prefix=prefix, concurrency=concurrency, dry_run=dry_run, on_outcome=on_outcome,
        confirm=lambda action: confirm_stage(ctx.stage, action, yes),
        allow_buckets=allow_foreign_bucket or (),
        confirm_prod=lambda action: confirm_stage("prod", action, yes)),
        title=f"redrive {error}", stage=ctx.stage, json_out=json_out, dry_run=dry_run,
        count=lambda: count_folder(ctx, error, prefix))
