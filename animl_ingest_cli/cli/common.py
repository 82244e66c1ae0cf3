"""Shared CLI pieces: options, confirmations, output. No AWS and no business rules here."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from animl_ingest_cli.errors import RefusedError
from animl_ingest_cli.redact import redact

# Messages and progress go to stderr; stdout carries only results (tables or JSON Lines).
err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)

StageOpt = Annotated[str | None, typer.Option(
    "--stage", "-s", envvar="ANIML_STAGE", show_envvar=True,
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
    return err_console.is_terminal
