"""`animl-ingest runbook prod-deploy|status`: the production deployment, resumable."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from animl_ingest_cli.cli.common import (
    DryRunOpt,
    JsonOpt,
    ask_yes_no,
    confirm_stage,
    emit_json,
    examples,
    info,
    new_app,
    out_console,
    warn,
)
from animl_ingest_cli.errors import Interrupted, RefusedError
from animl_ingest_cli.runbook.state import state_path
from animl_ingest_cli.runbook.steps import STEPS, Options, plan_text

if TYPE_CHECKING:
    from animl_ingest_cli.ops.moves import MoveOutcome
    from animl_ingest_cli.ops.queues import Snapshot

SHORT = "The production deployment, step by step, resumable."
app = new_app(
    "The production deployment as eight steps with saved state: the tool does what it can and "
    "verifies it, you confirm what only a person can do. See RUNBOOK.md.",
    examples("animl-ingest runbook prod-deploy --dry-run",
             "animl-ingest runbook prod-deploy --distribution-id E2QWRUHAPOMQZL --api-dir ~/src/animl-api",
             "animl-ingest runbook status",
             "animl-ingest runbook prod-deploy --resume"))

DEFAULTS = Options()
# Not from ANIML_STAGE: a shell set up for dev or local work must not aim this command elsewhere.
RunbookStageOpt = Annotated[str, typer.Option(
    "--stage", "-s", metavar="STAGE", help="Stage: prod (default: this runbook's purpose), dev, or local.")]


class CliOperator:
    """The operator at a terminal or behind a pipe: messages on stderr, answers on stdin."""

    def __init__(self, stage: str, yes: bool) -> None:
        self.stage = stage
        self.yes = yes

    def show(self, text: str) -> None:
        info(text)

    def confirm(self, question: str) -> bool:
        try:
            return ask_yes_no(question)
        except RefusedError:
            raise RefusedError("no answer on stdin") from None

    def confirm_stage(self, action: str) -> None:
        confirm_stage(self.stage, action, self.yes)

    def on_poll(self, snap: Snapshot, streak: int, stable: int) -> None:
        info(f"  poll: {snap.describe()}; idle {streak}/{stable}")

    def on_outcome(self, outcome: MoveOutcome) -> None:
        if outcome.status == "failed":
            warn(f"{outcome.key}: {outcome.detail}")


@app.command("prod-deploy", epilog=examples(
    "animl-ingest runbook prod-deploy --dry-run",
    "animl-ingest runbook prod-deploy --distribution-id E2QWRUHAPOMQZL --api-dir ~/src/animl-api",
    "animl-ingest runbook prod-deploy --resume"))
def prod_deploy(
    stage: RunbookStageOpt = "prod",
    distribution_id: Annotated[str | None, typer.Option(
        metavar="ID",
        help="The frontend's CloudFront distribution ID: the tool clears its cache in steps 1 and 7 "
             "(without it, you do; '' on --resume drops the saved one).")] = None,
    api_dir: Annotated[str | None, typer.Option(
        metavar="PATH",
        help="An animl-api checkout: the tool runs its `npm run export-db-<stage>` in step 5 and checks "
             "the backup folder (without it, you do; '' on --resume drops the saved one).")] = None,
    drain_timeout: Annotated[float | None, typer.Option(
        metavar="SECONDS",
        help=f"Step 4 fails after this many seconds (default {DEFAULTS.drain_timeout:g}).")] = None,
    drain_interval: Annotated[float | None, typer.Option(
        metavar="SECONDS",
        help=f"Seconds between polls in step 4 (default {DEFAULTS.drain_interval:g}).")] = None,
    drain_stable: Annotated[int | None, typer.Option(
        metavar="N",
        help=f"Consecutive idle polls that count as drained (default {DEFAULTS.drain_stable}).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Go on with the saved run from its first unfinished step (options given now "
                         "replace the saved ones).")] = False,
    restart: Annotated[bool, typer.Option(
        "--restart", help="Start over although an unfinished run is saved (it is kept aside).")] = False,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Do not ask to type the stage name before the tool changes prod; the y/n "
                            "questions about what you do by hand are still asked.")] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Walk the eight deployment steps in order. A "no", a failed step or Ctrl-C stops the run (exit 3,
    or 130) and leaves everything as it is (maintenance stays on); --resume goes on from there."""
    from animl_ingest_cli.context import open_stage
    from animl_ingest_cli.runbook import runner

    ctx = open_stage(stage)
    given: dict[str, Any] = {"distribution_id": distribution_id,
                             "api_dir": api_dir,
                             "drain_timeout": drain_timeout, "drain_interval": drain_interval,
                             "drain_stable": drain_stable}
    if dry_run:
        _show_plan(ctx.stage, given, resume)
        return
    operator = CliOperator(ctx.stage, yes)
    try:
        run = runner.prod_deploy(ctx, operator, given, resume=resume, restart=restart)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: runbook prod-deploy on {ctx.stage}: state saved in "
                          f"{state_path(ctx.stage)}; run again with --resume to go on") from None
    done = sum(rec.state == "done" for rec in run.steps)
    skipped = sum(rec.state == "skipped" for rec in run.steps)
    typer.echo(f"runbook prod-deploy on {ctx.stage}: complete ({done} steps done, {skipped} skipped; "
               f"run {run.run_id})")


def _show_plan(stage: str, given: dict[str, Any], resume: bool) -> None:
    from animl_ingest_cli.runbook import runner

    run, options = runner.plan(stage, given, resume=resume)
    states = {rec.name: rec.state for rec in run.steps} if run else {}
    typer.echo(f"runbook prod-deploy on {stage}, dry run: nothing is changed")
    for step in STEPS:
        state = states.get(step.name)
        note = f"{state}, would be skipped" if state in ("done", "skipped") else state
        typer.echo("\n" + plan_text(step, stage, options, note))


@app.command("status", epilog=examples("animl-ingest runbook status",
                                       "animl-ingest runbook status --stage dev --json"))
def status(stage: RunbookStageOpt = "prod", json_out: JsonOpt = False) -> None:
    """The saved run's steps with their state (pending, done, failed, skipped) and times, and whether
    the run is complete (--json: one object with stage, complete and steps)."""
    from rich.table import Table

    from animl_ingest_cli.context import open_stage
    from animl_ingest_cli.runbook import runner

    ctx = open_stage(stage)
    report = runner.status(ctx.stage)
    if json_out:
        emit_json(report)
        return
    if report["run_id"] is None:
        typer.echo(f"no runbook run saved for {ctx.stage}")
    else:
        state = "complete" if report["complete"] else "not complete"
        typer.echo(f"run {report['run_id']} on {ctx.stage}, started {report['started']}: {state}")
    table = Table()
    for col in ("#", "step", "state", "started (UTC)", "finished (UTC)"):
        table.add_column(col, no_wrap=True)
    table.add_column("detail", overflow="fold")
    for s in report["steps"]:
        table.add_row(str(s["number"]), s["name"], s["state"], _short_time(s["started"]),
                      _short_time(s["finished"]), s["detail"] or "")
    out_console.print(table)


def _short_time(iso: str | None) -> str:
    """`2025-05-06T17:02:11+00:00` as `05-06 17:02:11` (the header has the year)."""
    return f"{iso[5:10]} {iso[11:19]}" if iso else ""
