"""`animl-ingest batch run`: the bulk-upload job, as the AWS Batch container runs it."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from animl_ingest_cli.cli.common import Bar, JsonOpt, emit_json, examples, info, new_app

HELP = (
    "The bulk-upload job: unpack one batch-<uuid>.zip into the stage's ingestion bucket.\n\n"
    "The AWS Batch job definition runs `animl-ingest batch run` with env TASK (the zip's record as "
    "JSON, as the ingest function submits it), STAGE and API_KEY, like the Node ingest-zip job. A "
    "rerun after a crash or a stop resumes where the last one stopped. On the local stage the images "
    "are ingested too.\n\n"
    "Exit codes: 0 done (or parked: maintenance); 1 the batch failed (reported with createBatchError, "
    "the zip kept); 2 bad input; 130 stopped (SIGTERM, Ctrl-C): run it again to resume.")

SHORT = "The bulk-upload job (what AWS Batch runs)."
ZIP = "batch-0d6c4d5e-1b8a-4c4e-9f55-2a1b3c4d5e6f.zip"
app = new_app("The bulk-upload job: what the AWS Batch container runs for each batch-<uuid>.zip.",
              examples(f"animl-ingest batch run --stage dev --task '{{\"Bucket\": "
                       f"\"animl-images-ingestion-dev\", \"Key\": \"{ZIP}\"}}'"))


@app.command("run", help=HELP, epilog=examples(
    f"animl-ingest batch run --stage dev --task '{{\"Bucket\": \"animl-images-ingestion-dev\", \"Key\": "
    f"\"{ZIP}\"}}'",
    f"animl-ingest batch run --task '{{\"Bucket\": \"animl-images-ingestion-local\", \"Key\": \"{ZIP}\"}}' "
    "--json"))
def run(
    stage: Annotated[str | None, typer.Option(
        "--stage", "-s", envvar=["STAGE", "ANIML_STAGE"], show_envvar=True, metavar="STAGE",
        help="Stage: local (default, no AWS), dev or prod.")] = None,
    task: Annotated[str | None, typer.Option(
        "--task", envvar="TASK", show_envvar=True, show_default=False, metavar="JSON",
        help='The zip\'s record: {"Bucket": ..., "Key": "batch-<uuid>.zip"}.')] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, max=128, metavar="N",
                                         help="Entries written at once.")] = 16,
    stack_timeout: Annotated[float, typer.Option("--stack-timeout", min=1.0, metavar="SECONDS",
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
    bar = Bar(f"batch {parsed.batch} on {ctx.stage}", "images", json_mode=json_out)
    with bar:
        r = run_task(ctx, ctx.api(), parsed, workers=workers, stack_timeout=stack_timeout,
                     say=lambda m: info(m), on_progress=bar.update)
    _show(summary(r), json_out)


def _show(doc: dict, json_out: bool) -> None:
    if json_out:
        emit_json(doc)
    else:
        typer.echo(json.dumps(doc, indent=1, default=str))
    sys.stdout.flush()
