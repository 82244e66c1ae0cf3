"""`animl-ingest ingest`: process images from files, folders, zips or S3 through the ingest function."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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
from animl_ingest_cli.ingest import (
    BATCH_SUBMITTED,
    FAILED,
    PARKED,
    SERVED,
    SKIPPED,
    Ingestor,
    Outcome,
    summarize,
)
from animl_ingest_cli.sources import WorkItem, iter_work, parse_sources, refuse_stage_outputs

HELP = """Process images through the ingest function: files, folders (recursive), .zip files, or
s3://BUCKET/PREFIX. Objects of the stage's ingestion bucket are removed after their copy, exactly as
the Lambda does; other sources are left as they are.

Exit codes: 0 all served, parked or skipped; 1 some dead-lettered or failed; 2 bad input;
3 not confirmed; 130 interrupted."""

DEFAULT_CONCURRENCY = max(2, (os.cpu_count() or 2) * 2)


def ingest(
    sources: Annotated[list[str], typer.Argument(help="Files, folders, .zip files or s3://BUCKET/PREFIX.",
                                                 show_default=False)],
    stage: StageOpt = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, max=256,
                                             help="Images processed at once.")] = DEFAULT_CONCURRENCY,
    batch: Annotated[str | None, typer.Option("--batch", help="batch-<uuid>: the batch id for the "
                                              "entries of .zip sources.")] = None,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
    yes: YesOpt = False,
) -> None:
    specs = parse_sources(sources, batch)
    ctx = open_stage(stage)
    refuse_stage_outputs(ctx, specs)
    if not dry_run:
        confirm_stage(ctx.stage, f"Ingesting {', '.join(sources)}", yes)
    results: list[Outcome] = []
    lock = threading.Lock()

    show_progress = progress_enabled() and not json_out
    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), console=err_console,
                        disable=not show_progress, transient=True)
    task = progress.add_task("ingesting", total=None)

    def record(o: Outcome) -> None:
        with lock:
            results.append(o)
            if json_out:
                emit_json(o.to_json())
            progress.advance(task)

    ingestor = Ingestor(ctx, dry_run=dry_run, on_outcome=record)
    ingestor.ready()
    interrupted = False
    with progress:
        try:
            _run(ingestor, iter_work(ctx, specs, batch), concurrency, record)
        except KeyboardInterrupt:
            interrupted = True
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
    good = {SERVED, PARKED, BATCH_SUBMITTED, SKIPPED}
    ok = all(o.outcome in good and o.complete for o in results)
    raise typer.Exit(EXIT_OK if ok else EXIT_SOME_FAILED)


def _run(ingestor: Ingestor, work: Iterator[WorkItem], concurrency: int, record) -> None:  # noqa: ANN001
    """A bounded pool: at most 2 x concurrency objects are read ahead, so memory stays flat."""
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="ingest") as pool:
        pending: set[Future[list[Outcome]]] = set()
        try:
            for item in work:
                if item.skip_reason:
                    record(Outcome(item.store.uri(item.key), item.key, SKIPPED, reason=item.skip_reason))
                    continue
                pending.add(pool.submit(ingestor.process, item.store, item.key,
                                        delete_source=item.delete_source, batch=item.batch))
                if len(pending) >= concurrency * 2:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in done:
                        f.result()
            for f in pending:
                f.result()
        except BaseException:
            for f in pending:
                f.cancel()
            raise


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
        b = ctx.buckets()
        root = ctx.local_root / "buckets"
        info(f"served images: {root / b['serving'].value}; dead letters: {root / b['dead-letter'].value}; "
             f"catalog: {ctx.local_root / 'catalog.sqlite'}")
