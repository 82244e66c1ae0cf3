"""`animl-ingest ingest`: process images from files, folders, zips or S3 through the ingest function."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from animl_ingest_cli.cli.common import (
    Bar,
    DryRunOpt,
    JsonOpt,
    StageOpt,
    YesOpt,
    confirm_stage,
    emit_json,
    info,
    out_console,
    warn,
)
from animl_ingest_cli.config import DEFAULT_BYTES, MAX_IMAGES, MB, cpu_count, default_images
from animl_ingest_cli.errors import EXIT_OK, EXIT_SOME_FAILED, ApiKeyRefused, Interrupted

if TYPE_CHECKING:
    from animl_ingest_cli.context import StageContext
    from animl_ingest_cli.ingest import Outcome
    from animl_ingest_cli.pool import IngestRun

SHORT = "Ingest images from files, folders, zips or S3."
HELP = """Process images through the ingest function, exactly as the Lambda does. Each SOURCE is a
file, a folder (recursive, hidden files skipped), a .zip file, or s3://BUCKET/PREFIX. Every image
ends served, dead-lettered (with the reason), parked (maintenance is on) or skipped (not an image).

Objects of the stage's ingestion bucket are removed after their copy, as the Lambda does; every
other source is only read. Before the first image the stage is checked once (parameters, buckets,
the API URL and key); --dry-run runs the same checks, also asks animl-api whether it accepts the
key, and then shows where each image would go without writing anything. Running the same command
again is safe: what is already served is counted as such.

Exit codes: 0 every image served, parked or skipped; 1 some dead-lettered or failed; 2 bad input
or configuration (a wrong API key included); 3 not confirmed; 5 AWS or the local folders failed;
130 interrupted (a rerun finishes the work)."""
EPILOG = ("\b\nExamples:\n"
          "  animl-ingest ingest examples/images\n"
          "  animl-ingest ingest /media/SDCARD/DCIM --stage dev\n"
          "  animl-ingest ingest s3://animl-images-ingestion-dev/ --stage dev --json\n"
          "  animl-ingest ingest s3://animl-images-ingestion-prod/stuck/ --stage prod --dry-run")

NAMED = 10  # skipped / dead-lettered / failed files named in the human summary, then a count


def ingest(
    sources: Annotated[list[str], typer.Argument(  # described in HELP: typer would show `<list[str]>`
        show_default=False, metavar="SOURCE", hidden=True)],
    stage: StageOpt = None,
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", "-c", min=1, max=MAX_IMAGES, show_default=False, metavar="N",
        help="Images in flight at once, most of them waiting on S3 or the API "
             f"[default: {default_images()} here: 8 a CPU, 64 to 128].")] = None,
    cpus: Annotated[int | None, typer.Option(
        "--cpus", min=1, max=256, show_default=False, metavar="N",
        help=f"Images decoded or hashed at the same moment [default: the CPUs, {cpu_count()} here].")] = None,
    buffer_mb: Annotated[int, typer.Option(
        "--buffer-mb", min=1, max=65536, metavar="MB",
        help="MB of image bytes held in memory by the images in flight (a larger image goes alone).")
    ] = DEFAULT_BYTES // MB,
    batch: Annotated[str | None, typer.Option("--batch", metavar="batch-UUID",
                                              help="The batch id for the entries of .zip sources.")] = None,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
    yes: YesOpt = False,
) -> None:
    from animl_ingest_cli import preflight
    from animl_ingest_cli.context import open_stage
    from animl_ingest_cli.ingest import Ingestor, all_good, summarize
    from animl_ingest_cli.pool import Limits, process_all
    from animl_ingest_cli.sources import check_sources_exist, iter_work, parse_sources, refuse_stage_outputs

    specs = parse_sources(sources, batch)
    limits = Limits.default(images=concurrency, cpu=cpus, bytes_in_flight=buffer_mb * MB)
    ctx = open_stage(stage, connections=limits.connections)
    preflight.require_local_folder(ctx)
    ctx.read_ahead()  # the parameters the checks below and the run need, side by side
    refuse_stage_outputs(ctx, specs)
    if not dry_run:
        confirm_stage(ctx.stage, f"Ingesting {', '.join(sources)}", yes)
    preflight.require(ctx, probe=dry_run, sources=lambda: check_sources_exist(ctx, specs))
    results: list[Outcome] = []
    bar = Bar("checking" if dry_run else "ingesting", "images", json_mode=json_out)
    counted: list[int] = []

    def record(o: Outcome) -> None:
        results.append(o)
        if json_out:
            emit_json(o.to_json())
        elif dry_run:  # the plan, one line per object on stdout (as unpark's and redrive's)
            typer.echo(f"would be {o.outcome}: {o.source} -> {', '.join(o.destinations) or o.reason or ''}")

    def on_progress(r: IngestRun) -> None:
        bar.update(r.done, r.total if r.total is not None else (counted[0] if counted else None))

    if bar.shown:  # the total, counted alongside the work (a folder's files, a prefix's listing)
        threading.Thread(target=_count, args=(lambda: iter_work(ctx, specs, batch), bar, counted),
                         daemon=True, name="ingest-count").start()
    ingestor = Ingestor(ctx, dry_run=dry_run, stop_on_refused_key=True)
    ingestor.ready()
    run = process_all(ingestor, iter_work(ctx, specs, batch), limits, on_progress)
    interrupted = False
    refused: ApiKeyRefused | None = None
    with bar:
        try:
            for o in run:
                record(o)
        except KeyboardInterrupt:
            interrupted = True
        except ApiKeyRefused as exc:
            refused = exc
        finally:
            for o in run.close():  # what was under way when the run stopped
                record(o)
    summary = summarize(results)
    summary.update(stage=ctx.stage, dry_run=dry_run, interrupted=interrupted,
                   already_served=sum(1 for o in results if o.outcome == "served"
                                      and o.reason == "already served"))
    if ctx.is_local:
        summary["local_dir"] = str(ctx.local_root)
    if json_out:
        emit_json({"summary": summary})
    else:
        _render(summary, results, ctx)
    if refused is not None:
        raise refused
    if not results:
        warn(f"no images found in {', '.join(sources)}")
    if interrupted:
        raise Interrupted(f"interrupted: {len(results)} done on {ctx.stage}; what is done stays done, run "
                          f"the same command again to finish")
    raise typer.Exit(EXIT_OK if all_good(results) else EXIT_SOME_FAILED)


def _count(work: Callable[[], Iterator[Any]], bar: Bar, counted: list[int]) -> None:
    """Count what `work` yields and give the bar its total; a failure leaves the total unknown (the
    work itself reports the error)."""
    try:
        total = sum(1 for _ in work())
    except Exception:  # noqa: BLE001 - the count is only for the bar
        return
    counted.append(total)
    bar.set_total(total)


def _names(outcomes: list[Outcome], what: Callable[[Outcome], str]) -> list[str]:
    """The first NAMED files with why, then how many more."""
    lines = [f"  {o.source}: {what(o)}" for o in outcomes[:NAMED]]
    if len(outcomes) > NAMED:
        lines.append(f"  ... and {len(outcomes) - NAMED} more (--json lists every one)")
    return lines


def _render(summary: dict[str, Any], results: list[Outcome], ctx: StageContext) -> None:
    from rich.table import Table

    dry = summary["dry_run"]
    table = Table(title=f"ingest on {summary['stage']}" + (" (dry run: nothing written)" if dry else ""))
    table.add_column("outcome")
    table.add_column("count", justify="right")
    already = summary.get("already_served", 0)
    for name, count in summary["outcomes"].items():
        if not count:
            continue
        if dry:
            table.add_row(f"would be {name}", str(count))
        elif name == "served" and already:
            if count - already:
                table.add_row("served", str(count - already))
            table.add_row("already served", str(already))
        else:
            table.add_row(name, str(count))
    for reason, count in sorted(summary["dead_letter_reasons"].items()):
        table.add_row(f"  dead-letter: {reason}", str(count))
    table.add_row("total", str(summary["total"]))
    out_console.print(table)
    if dry:
        return
    if already:
        info(f"served {summary['outcomes']['served'] - already}, already served {already}")
    skipped = [o for o in results if o.outcome == "skipped"]
    dead = [o for o in results if o.outcome == "dead-lettered"]
    failed = [o for o in results if o.outcome == "failed" or not o.complete]
    groups: list[tuple[str, list[Outcome], Callable[[Outcome], str]]] = [
        ("skipped", skipped, lambda o: o.reason or ""),
        ("dead-lettered", dead, lambda o: o.reason or o.error or ""),
        ("failed (left where they are; rerun)", failed, lambda o: o.error or "")]
    for title, group, why in groups:
        if group:
            info(f"{title} ({len(group)}):")
            for line in _names(group, why):
                info(line)
    if ctx.is_local:
        info(f"served images: {ctx.bucket_dir(ctx.bucket('serving'))}; "
             f"dead letters: {ctx.bucket_dir(ctx.bucket('dead-letter'))}; catalog: {ctx.catalog_path}")
