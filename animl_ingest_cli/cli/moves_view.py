"""How unpark and redrive show their moves: a progress bar, each planned move or failure, a summary."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from animl_ingest_cli.cli.common import emit_json, err_console, info, progress_enabled, warn
from animl_ingest_cli.ops.moves import (
    DEFAULT_CONCURRENCY,
    MoveInterrupted,
    MoveOutcome,
    MoveSummary,
    SomeFailed,
)

ConcurrencyOpt = Annotated[int, typer.Option(help="Copies under way at once.", min=1, max=256)]
PrefixOpt = Annotated[str, typer.Option(help="Only keys starting with this.")]
DEFAULT = DEFAULT_CONCURRENCY


def run_moves_command(start: Callable[[Callable[[MoveOutcome], None]], MoveSummary], *, title: str,
                      json_out: bool, dry_run: bool) -> None:
    """Run `start(on_outcome)` and show it. Failures exit 1, Ctrl-C 130 (after the summary)."""
    bar = progress_enabled() and not dry_run
    progress: Any = Progress(SpinnerColumn(), TextColumn(title), BarColumn(bar_width=None),
                             TextColumn("{task.completed} objects"), TimeElapsedColumn(),
                             console=err_console, transient=True) if bar else nullcontext()
    task = progress.add_task(title, total=None) if bar else None

    def on_outcome(o: MoveOutcome) -> None:
        if json_out:
            emit_json(o.to_dict())
        elif o.status == "planned":
            typer.echo(f"{o.key} -> {o.to}: {o.detail}")
        elif o.status == "failed":
            warn(f"{o.key}: {o.detail}")
        if task is not None:
            progress.advance(task)

    try:
        with progress:
            summary = start(on_outcome)
    except MoveInterrupted as exc:
        _summary(exc.summary, json_out, dry_run)
        info("interrupted: the copies under way finished; rerun the same command to finish the rest")
        raise
    _summary(summary, json_out, dry_run)
    if summary.failed:
        raise SomeFailed(f"{summary.failed} object(s) not moved (each left where it was); "
                         f"fix the cause and rerun")


def _summary(s: MoveSummary, json_out: bool, dry_run: bool) -> None:
    if json_out:
        emit_json({"summary": {"dry_run": dry_run, **s.to_dict()}})
        return
    if dry_run:
        typer.echo(f"dry run: {s.planned} to move, {s.failed} would fail; nothing changed")
        return
    per = f", {s.to_dict()['requests_per_object']} requests per object" if s.requests else ""
    typer.echo(f"moved {s.moved}, already there {s.already}, failed {s.failed}{per}")
    if s.limited:
        info("stopped at --max-delete: objects are left; run again to go on")
