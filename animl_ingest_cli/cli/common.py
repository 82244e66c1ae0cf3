"""Shared CLI pieces: options, confirmations, output, progress. No AWS and no business rules here.

Start-up matters (`animl-ingest --help` must print in well under a second): this module and every
command module import only typer at the top; rich, the core and boto3 are imported inside the
commands that use them.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from animl_ingest_cli.errors import RefusedError
from animl_ingest_cli.redact import redact

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


class _LazyConsole:
    """A rich Console made on first use (importing rich costs a tenth of a second of start-up)."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def get(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, highlight=False)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


# Messages and progress go to stderr; stdout carries only results (tables or JSON Lines).
err_console: Any = _LazyConsole(stderr=True)
out_console: Any = _LazyConsole(stderr=False)


def new_app(help: str, epilog: str | None = None) -> typer.Typer:  # noqa: A002 - typer's name
    """A command family: plain click help (reflowed paragraphs, no `<bool>` after flags, fast)."""
    return typer.Typer(help=help, epilog=epilog, no_args_is_help=True, rich_markup_mode=None,
                       context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})


def examples(*lines: str) -> str:
    """An epilog of example command lines, kept as they are (click's `\\b` stops the reflow)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


StageOpt = Annotated[str | None, typer.Option(
    "--stage", "-s", envvar="ANIML_STAGE", show_envvar=True, metavar="STAGE",
    help="Stage: local (default, no AWS), dev or prod.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Write JSON Lines to stdout.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")]


def emit_json(obj: Any) -> None:
    """One compact JSON object on one line of stdout."""
    sys.stdout.write(redact(json.dumps(obj, default=str, ensure_ascii=False, separators=(",", ":"))) + "\n")
    sys.stdout.flush()


def info(message: str) -> None:
    err_console.print(redact(message), markup=False, soft_wrap=True)


def warn(message: str) -> None:
    err_console.print(f"warning: {redact(message)}", style="yellow", markup=False, soft_wrap=True)


def _read_answer(prompt: str) -> str:
    err_console.print(prompt, end="", markup=False)
    line = sys.stdin.readline()
    if not line:
        raise RefusedError("no answer on stdin: not confirmed (use --yes to skip)")
    return line.strip()


def confirm_stage(stage: str, action: str, yes: bool) -> None:
    """Changes to prod need the operator to type the stage name; other stages go ahead."""
    if stage != "prod" or yes:
        return
    answer = _read_answer(f"{action} on {stage}. Type the stage name ({stage}) to go on: ")
    if answer != stage:
        raise RefusedError(f"not confirmed: expected {stage!r}")


def ask_yes_no(question: str) -> bool:
    """y/yes or n/no on stdin, so that a person or a pipe can answer."""
    while True:
        answer = _read_answer(f"{question} [y/n]: ").lower()
        if answer in ("y", "yes"):
            return True
        if answer in ("n", "no"):
            return False
        err_console.print("please answer y or n", markup=False)


def progress_enabled(json_mode: bool = False) -> bool:
    """Progress only for a person: stderr is a terminal and the output is not JSON."""
    return bool(err_console.is_terminal) and not json_mode


class Bar:
    """A progress bar on stderr: done/total (once the total is known), items per second and time left.

    It shows only to a person: stderr a terminal and no --json; otherwise every call does nothing.
    Thread-safe (rich's Progress is). `set_total` can come late: a folder or an S3 prefix is counted
    while the work has already started."""

    def __init__(self, description: str, unit: str, *, json_mode: bool = False,
                 total: int | None = None) -> None:
        self.unit = unit
        self._progress: Progress | None = None
        self._task: Any = None
        if progress_enabled(json_mode):
            self._progress = _make_progress(unit)
            self._task = self._progress.add_task(description, total=total)

    @property
    def shown(self) -> bool:
        return self._progress is not None

    def __enter__(self) -> Bar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def update(self, done: int, total: int | None) -> None:
        """Where the work is: `done` items, of `total` when known (else the total stays as it is)."""
        if self._progress is not None:
            if total is None:
                self._progress.update(self._task, completed=done)
            else:
                self._progress.update(self._task, completed=done, total=total)

    def set_total(self, total: int | None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, total=total)

    def describe(self, description: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=description)


def _make_progress(unit: str) -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Items per second over the last half minute (rich's own estimate)."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.1f} {unit}/s" if speed else f"- {unit}/s", style="progress.data.speed")

    class LeftColumn(ProgressColumn):
        """Time left, or `?` while the total is not known yet."""

        def __init__(self) -> None:
            super().__init__()
            self._inner = TimeRemainingColumn()

        def render(self, task: Task) -> Text:
            if task.total is None:
                return Text("left ?", style="progress.remaining")
            inner = self._inner.render(task)
            return Text(f"left {inner.plain}", style="progress.remaining")

    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), RateColumn(), TimeElapsedColumn(), LeftColumn(),
                    console=err_console.get(), transient=True, refresh_per_second=4)
