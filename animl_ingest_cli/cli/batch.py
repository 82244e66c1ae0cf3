"""`animl-ingest batch run`: the bulk-upload job, as the AWS Batch container runs it."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from animl_ingest_cli.cli.common import JsonOpt, emit_json, info

HELP = (
    "The bulk-upload job: unpack one batch-<uuid>.zip into the stage's ingestion bucket.\n\n"
    "The AWS Batch job definition runs `animl-ingest batch run` with env TASK (the zip's record as "
    "JSON, as the ingest function submits it), STAGE and API_KEY, like the Node ingest-zip job. A "
    "rerun after a crash or a stop resumes where the last one stopped. On the local stage the images "
    "are ingested too.\n\n"
    "Exit codes: 0 done (or parked: maintenance); 1 the batch failed (reported with createBatchError, "
    "the zip kept); 2 bad input; 130 stopped (SIGTERM, Ctrl-C): run it again to resume.")

app = typer.Typer(help="The bulk-upload job (what the AWS Batch container runs).", no_args_is_help=True)


@app.command("run", help=HELP)
def run(
    stage: Annotated[str | None, typer.Option(
        "--stage", "-s", envvar=["STAGE", "ANIML_STAGE"], show_envvar=True,
        help="Stage: local (default, no AWS), dev or prod.")] = None,
    task: Annotated[str | None, typer.Option(
        "--task", envvar="TASK", show_envvar=True, show_default=False,
        help='The zip\'s record: {"Bucket": ..., "Key": "batch-<uuid>.zip"}.')] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, max=128,
                                         help="Entries written at once.")] = 16,
    stack_timeout: Annotated[float, typer.Option("--stack-timeout", min=1.0,
                                                 help="Seconds to wait for the batch's stack.")] = 900.0,
    json_out: JsonOpt = False,
) -> None:
    from animl_ingest_cli.batchjob.job import Task, run_task, summary
    from animl_ingest_cli.context import open_stage

    parsed = Task.parse(task)
    ctx = open_stage(stage)
    if ctx.is_local:  # no AWS Batch, no S3 events: the job, then each image through the ingest
        from animl_ingest_cli.ingest import Ingestor, summarize

        outcomes = Ingestor(ctx).process(ctx.store_for_bucket(parsed.bucket), parsed.key,
                                         delete_source=parsed.bucket == ctx.bucket("ingestion"),
                                         batch=parsed.batch)
        result = summarize(outcomes)
        result["results"] = [o.to_json() for o in outcomes]
        ok = all(o.complete for o in outcomes)
        _show(result, json_out)
        raise typer.Exit(0 if ok else 1)
    r = run_task(ctx, ctx.api(), parsed, workers=workers, stack_timeout=stack_timeout,
                 say=lambda m: info(m))
    _show(summary(r), json_out)


def _show(doc: dict, json_out: bool) -> None:
    if json_out:
        emit_json(doc)
    else:
        typer.echo(json.dumps(doc, indent=1, default=str))
    sys.stdout.flush()
