"""`animl-ingest queues list|drain`: Animl's SQS queues, and waiting until all work is done."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from animl_ingest_cli.cli.common import (
    JsonOpt,
    StageOpt,
    emit_json,
    err_console,
    info,
    out_console,
    progress_enabled,
    warn,
)
from animl_ingest_cli.context import open_stage
from animl_ingest_cli.errors import WaitTimeout
from animl_ingest_cli.ops.queues import QueueInfo, Snapshot, list_queues
from animl_ingest_cli.ops.queues import drain as drain_queues

app = typer.Typer(help="Animl's SQS queues of a stage: counts, and waiting until they are empty.",
                  no_args_is_help=True)


def _table(queues: list[QueueInfo], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("queue")
    for col in ("visible", "in flight", "delayed"):
        table.add_column(col, justify="right")
    table.add_column("")
    for q in queues:
        table.add_row(q.name, str(q.visible), str(q.in_flight), str(q.delayed), "DLQ" if q.dlq else "")
    return table


@app.command("list")
def list_(stage: StageOpt = None, json_out: JsonOpt = False) -> None:
    """Every Animl queue of the stage with visible, in-flight and delayed counts; DLQs marked."""
    ctx = open_stage(stage)
    queues = list_queues(ctx)
    if json_out:
        for q in queues:
            emit_json(q.to_dict())
        return
    if not queues:
        info(f"no Animl queues on {ctx.stage}")
        return
    out_console.print(_table(queues))


def _poll_view(snap: Snapshot, streak: int, stable: int) -> Table:
    table = _table(snap.queues, title=f"idle polls {streak}/{stable}")
    jobs, stacks = snap.jobs.items, snap.stacks.items
    table.add_row("batch jobs", str(sum(jobs.values())) if jobs is not None else "-", "", "", "")
    table.add_row("batch stacks", str(len(stacks)) if stacks is not None else "-", "", "", "")
    notes = [n for n in (snap.jobs.note, snap.stacks.note) if n]
    table.caption = "; ".join(notes) or None
    return table


@app.command("drain")
def drain(
    stage: StageOpt = None,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds (exit 4).")] = 3600,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 60,
    stable: Annotated[int, typer.Option(help="Consecutive idle polls that count as drained.")] = 3,
    json_out: JsonOpt = False,
) -> None:
    """Wait until every work queue, Batch job and batch stack of the stage is idle; DLQs are reported."""
    ctx = open_stage(stage)
    live_view = progress_enabled() and not json_out
    polls = 0
    live: Any = Live(console=err_console, auto_refresh=False) if live_view else nullcontext()

    def on_poll(snap: Snapshot, streak: int) -> None:
        nonlocal polls
        polls += 1
        if json_out:
            emit_json({"poll": polls, "streak": streak, **snap.to_dict()})
        elif live_view:
            live.update(_poll_view(snap, streak, stable), refresh=True)
        else:
            info(f"poll {polls}: {snap.describe()}; idle {streak}/{stable}")

    with live:
        result = drain_queues(ctx, timeout=timeout, interval=interval, stable=stable, on_poll=on_poll)
    if json_out:
        emit_json({"summary": result.to_dict()})
    for q in result.last.dead_letters:
        warn(f"dead-letter queue {q.name} holds {q.messages} message(s): not waited on")
    if not result.drained:
        raise WaitTimeout(f"not drained after {result.elapsed:.0f} s: {result.last.describe()}")
    if not json_out:
        typer.echo(f"drained ({result.polls} polls, {result.elapsed:.0f} s)")
