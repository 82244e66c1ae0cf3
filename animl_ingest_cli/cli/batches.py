"""`animl-ingest batches list|show|teardown`: bulk uploads in flight, and tearing one down."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

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

if TYPE_CHECKING:
    from animl_ingest_cli.ops import batches as ops

SHORT = "Bulk uploads in flight: list, show, teardown."
app = new_app("Bulk uploads (batches) in flight on a stage: their per-batch stack, queue and dead-letter "
              "counts, AWS Batch job and age; and tearing one down as stopBatch does.",
              examples("animl-ingest batches list --stage prod",
                       "animl-ingest batches show batch-0d6c4d5e-1b8a-4c4e-9f55-2a1b3c4d5e6f --stage prod"))

# BATCH, the batch id (batch-<uuid>), is described in each command's help: typer would show `<str>`
BatchArg = Annotated[str, typer.Argument(show_default=False, metavar="BATCH", hidden=True)]
EXAMPLE = "batch-0d6c4d5e-1b8a-4c4e-9f55-2a1b3c4d5e6f"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours < 48 else f"{hours // 24}d{hours % 24:02d}h"


def _counts(q: ops.QueueInfo | None) -> str:
    return "-" if q is None else f"{q.visible}/{q.in_flight}/{q.delayed}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@app.command("list", epilog=examples("animl-ingest batches list --stage prod",
                                     "animl-ingest batches list --stage dev --json"))
def list_(stage: StageOpt = None, json_out: JsonOpt = False) -> None:
    """Every batch still running (its stack exists or its Batch job is active), oldest first.
    Queue columns are visible/in-flight/delayed."""
    from rich.table import Table

    from animl_ingest_cli.context import open_stage
    from animl_ingest_cli.ops import batches as ops

    ctx = open_stage(stage)
    views, notes = ops.in_flight(ctx)
    now = _now()
    for note in notes:
        info(note)
    if json_out:
        for v in views:
            emit_json(v.to_dict(now))
        return
    if not views:
        info(f"no bulk upload in flight on {ctx.stage}")
        return
    table = Table()
    table.add_column("batch", no_wrap=True)  # an id to copy: never broken over lines
    for col in ("stack", "queue", "dlq", "alarm", "job", "age"):
        table.add_column(col, justify="right" if col in ("queue", "dlq", "age") else "left")
    for v in views:
        table.add_row(v.batch, v.stack.status if v.stack else "-", _counts(v.queue), _counts(v.dlq),
                      v.alarm or "-", v.job.status if v.job else "-", _age(v.age_seconds(now)))
    out_console.print(table)
    for v in views:
        if v.dead:
            warn(f"{v.batch}: {v.dead} message(s) dead in {v.dlq.name if v.dlq else 'its DLQ'} "
                 f"(see `animl-ingest batches show {v.batch} --stage {ctx.stage}`)")


def _print_view(view: ops.BatchView, stage: str) -> None:
    now = _now()
    s, j = view.stack, view.job
    lines = [
        ("batch", view.batch),
        ("running", "yes" if view.running else "no"),
        ("stack", f"{s.name} {s.status}" + (f" ({s.reason})" if s.reason else "") if s else "none"),
        ("alarm", view.alarm or ("none" if s else "-")),
        ("queue", f"{view.queue.name} visible {view.queue.visible}, in flight {view.queue.in_flight}, "
                  f"delayed {view.queue.delayed}" if view.queue else "none"),
        ("dlq", f"{view.dlq.name} {view.dlq.messages} message(s)" if view.dlq else "none"),
        ("job", f"{j.id} {j.status}" + (f" ({j.reason})" if j.reason else "") if j else "none seen"),
        ("age", _age(view.age_seconds(now))),
    ]
    for label, value in lines:
        typer.echo(f"{label:8} {value}")
    for note in view.notes:
        info(note)
    if view.dead:
        warn(f"{view.dead} message(s) are dead: redrive them to the queue (aws sqs "
             f"start-message-move-task), or tear the batch down with --discard-dead-letters")
    elif s and not (view.queue and view.queue.messages) and not (j and j.active):
        info(f"nothing left to process: `animl-ingest batches teardown {view.batch} --stage {stage}` "
             f"ends it now (the alarm or the hourly sweep would)")


@app.command("show", epilog=examples(f"animl-ingest batches show {EXAMPLE} --stage prod",
                                     f"animl-ingest batches show {EXAMPLE} --stage dev --json"))
def show(batch: BatchArg, stage: StageOpt = None, json_out: JsonOpt = False) -> None:
    """One batch BATCH (batch-<uuid>), running or not: its stack and alarm, queue and DLQ counts,
    newest Batch job, age."""
    from animl_ingest_cli.context import open_stage
    from animl_ingest_cli.ops import batches as ops

    ctx = open_stage(stage)
    view = ops.show(ctx, batch)
    if json_out:
        emit_json(view.to_dict(_now()))
        return
    _print_view(view, ctx.stage)


@app.command("teardown", epilog=examples(f"animl-ingest batches teardown {EXAMPLE} --stage prod --dry-run",
                                         f"animl-ingest batches teardown {EXAMPLE} --stage prod"))
def teardown(
    batch: BatchArg,
    stage: StageOpt = None,
    discard_dead_letters: Annotated[bool, typer.Option(
        "--discard-dead-letters",
        help="Tear down even though the dead-letter queue holds messages (they are deleted with it).")
    ] = False,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Delete the stack of batch BATCH (batch-<uuid>: its queues, alarm and event-source mapping) and
    record processingEnd, as stopBatch's teardown does. Refused while its Batch job runs, and while
    its DLQ holds messages (see --discard-dead-letters)."""
    from animl_ingest_cli.context import open_stage
    from animl_ingest_cli.ops import batches as ops

    ctx = open_stage(stage)
    if not dry_run:
        preview = ops.teardown(ctx, batch, dry_run=True, discard_dead_letters=discard_dead_letters)
        _describe(preview, ctx.stage, quiet=json_out)
        confirm_stage(ctx.stage, f"Tear down {batch}", yes)
    plan = ops.teardown(ctx, batch, dry_run=dry_run, discard_dead_letters=discard_dead_letters)
    if json_out:
        emit_json(plan.to_dict(_now()))
        return
    if dry_run:
        _describe(plan, ctx.stage, quiet=False)
        return
    result = plan.result
    assert result is not None
    verb = {"deleted": f"stack {result.stack} deleted", "already-deleting": f"stack {result.stack} "
            "was already being deleted", "gone": "no stack to delete"}.get(result.action, result.action)
    typer.echo(f"{batch}: {verb}; processingEnd {result.processing_end}")


def _describe(plan: ops.TeardownPlan, stage: str, quiet: bool) -> None:
    if quiet:
        return
    view, result = plan.view, plan.result
    action = result.action if result else "?"
    if action == "would-delete":
        assert view.stack is not None
        what = (f"would delete stack {view.stack.name} ({view.stack.status}), with queue "
                f"{_counts(view.queue)} and DLQ {_counts(view.dlq)} messages, then record processingEnd")
    elif action == "already-deleting":
        what = "its stack is already being deleted; would record processingEnd"
    else:
        what = "has no stack; would record processingEnd"
    info(f"{view.batch} on {stage}: {what}")
