"""How unpark and redrive show their moves: a progress bar, each planned move or failure, a summary."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from animl_ingest_cli.cli.common import Bar, emit_json, info, warn
from animl_ingest_cli.config import MOVE_CONCURRENCY
from animl_ingest_cli.errors import Interrupted

if TYPE_CHECKING:
    from animl_ingest_cli.ops.moves import MoveOutcome, MoveSummary

ConcurrencyOpt = Annotated[int, typer.Option(help="Copies under way at once.", min=1, max=256, metavar="N")]
PrefixOpt = Annotated[str, typer.Option(help="Only keys starting with this.", metavar="PREFIX")]
DEFAULT = MOVE_CONCURRENCY


def run_moves_command(start: Callable[[Callable[[MoveOutcome], None]], MoveSummary], *, title: str,
                      stage: str, json_out: bool, dry_run: bool,
                      count: Callable[[], int] | None = None) -> None:
    """Run `start(on_outcome)` and show it. Failures exit 1, Ctrl-C 130 (after the summary).
    `count()` gives the bar its total; it runs alongside the moves (a second listing)."""
    from animl_ingest_cli.ops.moves import MoveInterrupted, SomeFailed

    bar = Bar(f"{title} on {stage}", "objects", json_mode=json_out or dry_run)

    def on_outcome(o: MoveOutcome) -> None:
        if json_out:
            emit_json(o.to_dict())
        elif o.status == "planned":
            typer.echo(f"{o.key} -> {o.to}: {o.detail}")
        elif o.status == "failed":
            warn(f"{o.key}: {o.detail}")
        bar.advance()

    if bar.shown and count is not None:
        def counted() -> None:
            try:
                bar.set_total(count())
            except Exception:  # noqa: BLE001 - only the bar's total; the moves report errors
                pass

        threading.Thread(target=counted, daemon=True, name="moves-count").start()
    try:
        with bar:
            summary = start(on_outcome)
    except MoveInterrupted as exc:
        _summary(exc.summary, stage, json_out, dry_run)
        raise Interrupted(f"interrupted: {title} on {stage}: the copies under way finished and what they "
                          f"verified is deleted from the source; rerun the same command to finish") from None
    _summary(summary, stage, json_out, dry_run)
    if summary.failed:
        raise SomeFailed(f"{summary.failed} object(s) not moved on {stage} (each left where it was); "
                          f"fix the cause and rerun")


def _summary(s: MoveSummary, stage: str, json_out: bool, dry_run: bool) -> None:
    if json_out:
        emit_json({"summary": {"dry_run": dry_run, "stage": stage, **s.to_dict()}})
        return
    if dry_run:
        typer.echo(f"dry run on {stage}: {s.planned} to move, {s.failed} would fail; nothing changed")
        return
    per = s.to_dict()["requests_per_object"]
    per_text = f", {per} requests per object" if per is not None else ""
    typer.echo(f"moved {s.moved}, already there {s.already}, failed {s.failed} on {stage}{per_text}")
    if s.limited:
        info("stopped at --max-delete: objects are left; run again to go on")
