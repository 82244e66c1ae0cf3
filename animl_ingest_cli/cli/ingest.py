"""`animl-ingest ingest`: process images from files, folders, zips or S3 through the ingest function."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from animl_ingest_cli.cli.common import (
    DryRunOpt,
    JsonOpt,
    StageOpt,
    YesOpt,
    confirm_stage,
    emit_json,
    err_console,
    info,
    out_console,
    progress_enabled,
)
from animl_ingest_cli.context import open_stage
from animl_ingest_cli.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED
from animl_ingest_cli.ingest import FAILED, Ingestor, Outcome, all_good, summarize
from animl_ingest_cli.pool import (
    DEFAULT_BYTES,
    MAX_IMAGES,
    MB,
    IngestRun,
    Limits,
    cpu_count,
    default_images,
    process_all,
)
from animl_ingest_cli.sources import iter_work, parse_sources, refuse_stage_outputs

HELP = """Process images through the ingest function: files, folders (recursive), .zip files, or
s3://BUCKET/PREFIX. Objects of the stage's ingestion bucket are removed after their copy, exactly as
the Lambda does; other sources are left as they are.

Exit codes: 0 all served, parked or skipped; 1 some dead-lettered or failed; 2 bad input;
3 not confirmed; 130 interrupted."""


def ingest(
    sources: Annotated[list[str], typer.Argument(help="Files, folders, .zip files or s3://BUCKET/PREFIX.",
                                                 show_default=False)],
    stage: StageOpt = None,
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", "-c", min=1, max=MAX_IMAGES, show_default=False,
        help="Images in flight at once, most of them waiting on S3 or the API "
             f"[default: {default_images()} here: 8 a CPU, 32 to 128].")] = None,
    cpus: Annotated[int | None, typer.Option(
        "--cpus", min=1, max=256, show_default=False,
        help=f"Images decoded or hashed at the same moment [default: the CPUs, {cpu_count()} here].")] = None,
    buffer_mb: Annotated[int, typer.Option(
        "--buffer-mb", min=1, max=65536,
        help="MB of image bytes held in memory by the images in flight (a larger image goes alone).")
    ] = DEFAULT_BYTES // MB,
    batch: Annotated[str | None, typer.Option("--batch", help="batch-<uuid>: the batch id for the "
                                              "entries of .zip sources.")] = None,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
    yes: YesOpt = False,
) -> None:
    specs = parse_sources(sources, batch)
    limits = Limits.default(images=concurrency, cpu=cpus, bytes_in_flight=buffer_mb * MB)
    ctx = open_stage(stage, connections=limits.connections)
    refuse_stage_outputs(ctx, specs)
    if not dry_run:
        confirm_stage(ctx.stage, f"Ingesting {', '.join(sources)}", yes)
    results: list[Outcome] = []

    show_progress = progress_enabled() and not json_out
    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), console=err_console,
                        disable=not show_progress, transient=True)
    task = progress.add_task("ingesting", total=None)

    def record(o: Outcome) -> None:
        results.append(o)
        if json_out:
            emit_json(o.to_json())

    def on_progress(r: IngestRun) -> None:
        progress.update(task, completed=r.done, total=r.total)

    ingestor = Ingestor(ctx, dry_run=dry_run)
    ingestor.ready()
    run = process_all(ingestor, iter_work(ctx, specs, batch), limits, on_progress)
    interrupted = False
    with progress:
        try:
            for o in run:
                record(o)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            for o in run.close():  # what was under way when the run stopped
                record(o)
    summary = summarize(results)
    summary.update(stage=ctx.stage, dry_run=dry_run, interrupted=interrupted)
    if ctx.is_local:
        summary["local_dir"] = str(ctx.local_root)
    if json_out:
        emit_json({"summary": summary})
    else:
        _render(summary, results, ctx.is_local, ctx)
    if interrupted:
        info("interrupted: objects already done are done; run the same command again to finish")
        raise typer.Exit(EXIT_INTERRUPTED)
    raise typer.Exit(EXIT_OK if all_good(results) else EXIT_SOME_FAILED)


def _render(summary: dict, results: list[Outcome], local: bool, ctx) -> None:  # noqa: ANN001
    table = Table(title=f"ingest on {summary['stage']}" + (" (dry run)" if summary["dry_run"] else ""))
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for name, count in summary["outcomes"].items():
        if count:
            table.add_row(name, str(count))
    for reason, count in sorted(summary["dead_letter_reasons"].items()):
        table.add_row(f"  dead-letter: {reason}", str(count))
    table.add_row("total", str(summary["total"]))
    out_console.print(table)
    for o in results:
        if o.outcome == FAILED or not o.complete:
            info(f"failed: {o.source}: {o.error}")
    if summary["dry_run"]:
        for o in results[:50]:
            info(f"would {o.outcome}: {o.source} -> {', '.join(o.destinations) or o.reason or ''}")
    if local and not summary["dry_run"]:
        info(f"served images: {ctx.bucket_dir(ctx.bucket('serving'))}; "
             f"dead letters: {ctx.bucket_dir(ctx.bucket('dead-letter'))}; catalog: {ctx.catalog_path}")
