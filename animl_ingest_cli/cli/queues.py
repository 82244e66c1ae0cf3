"""`animl-ingest queues list|drain`: Animl's SQS queues, and waiting until all work is done."""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Annotated, Any

import typer

from animl_ingest_cli.cli.common import (
    JsonOpt,
    StageOpt,
    emit_json,
    err_console,
    examples,
    info,
    new_app,
    out_console,
    progress_enabled,
    warn,
)
from animl_ingest_cli.errors import Interrupted

if TYPE_CHECKING:
    from rich.table import Table

    from animl_ingest_cli.ops.queues import QueueInfo, Snapshot

SHORT = "Animl's SQS queues: counts, and waiting until idle."
app = new_app("Animl's SQS queues of a stage: their counts, and waiting until every queue, AWS Batch job "
              "and batch stack is idle (the deployment's drain step).",
              examples("animl-ingest queues list --stage prod",
                       "animl-ingest queues drain --stage prod --interval 60 --stable 3"))


def _table(queues: list[QueueInfo], title: str | None = None) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("queue")
    for col in ("visible", "in flight", "delayed"):
        table.add_column(col, justify="right")
    table.add_column("")
    for q in queues:
        table.add_row(q.name, str(q.visible), str(q.in_flight), str(q.delayed), "DLQ" if q.dlq else "")
    return table


@app.command("list", epilog=examples("animl-ingest queues list --stage prod",
                                     "animl-ingest queues list --stage dev --json"))
def list_(stage: StageOpt = None, json_out: JsonOpt = False) -> None:
    """Every Animl queue of the stage with visible, in-flight and delayed counts; DLQs marked."""
    from animl_ingest_cli.context import open_stage
    from animl_ingest_cli.ops.queues import list_queues

    ctx = open_stage(stage)
    queues = list_queues(ctx)
    if json_out:
        for q in queues:
            emit_json(q.to_dict())
        return
    if not queues:
        info(f"no Animl queues on {ctx.stage}")
        return
    out_console.print(_table(queues, title=f"queues on {ctx.stage}"))


def _poll_view(snap: Snapshot, streak: int, stable: int, polls: int, elapsed: float,
               timeout: float) -> Table:
    table = _table(snap.queues, title=f"poll {polls}, {elapsed:.0f} s of at most {timeout:.0f} s: "
                                      f"idle polls {streak}/{stable}")
    jobs, stacks = snap.jobs.items, snap.stacks.items
    table.add_row("batch jobs", str(sum(jobs.values())) if jobs is not None else "-", "", "", "")
    table.add_row("batch stacks", str(len(stacks)) if stacks is not None else "-", "", "", "")
    notes = [n for n in (snap.jobs.note, snap.stacks.note) if n]
    table.caption = "; ".join(notes) or None
    return table


@app.command("drain", epilog=examples("animl-ingest queues drain --stage prod",
                                      "animl-ingest queues drain --stage dev --interval 10 --timeout 600"))
def drain(
    stage: StageOpt = None,
    timeout: Annotated[float, typer.Option(metavar="SECONDS",
                                           help="Give up after this many seconds (exit 4).")] = 3600,
    interval: Annotated[float, typer.Option(metavar="SECONDS", help="Seconds between polls.")] = 60,
    stable: Annotated[int, typer.Option(metavar="N",
                                        help="Consecutive idle polls that count as drained.")] = 3,
    allow_empty: Annotated[bool, typer.Option(
        "--allow-empty", help="Count a stage with no Animl queue at all as drained (without it, that is "
                              "refused with exit 3: usually the wrong profile, region or account).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Wait until every work queue, AWS Batch job and batch stack of the stage is idle for --stable
    polls in a row. Dead-letter queues are reported, never waited on. Exit 0 drained, 3 no Animl
    queue found, 4 timed out."""
    import time

    from rich.live import Live

    from animl_ingest_cli.context import open_stage
    from animl_ingest_cli.errors import WaitTimeout
    from animl_ingest_cli.ops.queues import drain as drain_queues

    ctx = open_stage(stage)
    live_view = progress_enabled(json_out)
    polls = 0
    started = time.monotonic()
    live: Any = Live(console=err_console.get(), auto_refresh=False, transient=True) if live_view \
        else nullcontext()

    def on_poll(snap: Snapshot, streak: int) -> None:
        nonlocal polls
        polls += 1
        if json_out:
            emit_json({"poll": polls, "streak": streak, **snap.to_dict()})
        elif live_view:
            live.update(_poll_view(snap, streak, stable, polls, time.monotonic() - started, timeout),
                        refresh=True)
        else:
            info(f"poll {polls}: {snap.describe()}; idle {streak}/{stable}")

    try:
        with live:
            result = drain_queues(ctx, timeout=timeout, interval=interval, stable=stable, on_poll=on_poll,
                                  allow_empty=allow_empty)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: queues drain on {ctx.stage} stopped after {polls} poll(s), "
                          f"{time.monotonic() - started:.0f} s; nothing was changed") from None
    if json_out:
        emit_json({"summary": result.to_dict()})
    for q in result.last.dead_letters:
        warn(f"dead-letter queue {q.name} holds {q.messages} message(s): not waited on")
    if not result.drained:
        raise WaitTimeout(f"not drained on {ctx.stage} after {result.elapsed:.0f} s: "
                          f"{result.last.describe()}")
    if not json_out:
        if live_view:
            info(f"last poll: {result.last.describe()}")
        typer.echo(f"drained on {ctx.stage} ({result.polls} polls, {result.elapsed:.0f} s)")
