"""The command line as a whole: every family listed, help everywhere, errors as one line."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import typer.main

from animl_ingest_cli.cli import app

FAMILIES = ["ingest", "inspect", "maintenance", "queues", "batches", "unpark", "deadletter", "runbook",
            "config"]


def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "animl_ingest_cli", *args], capture_output=True,
                          text=True, input=input, timeout=120)


def test_help_lists_every_family() -> None:
    r = run("--help")
    assert r.returncode == 0
    for fam in FAMILIES:
        assert fam in r.stdout


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("animl-ingest ")


def _walk(cmd: Any, path: str = "") -> list[tuple[str, Any]]:
    out = [(path, cmd)]
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            out.extend(_walk(sub, f"{path} {name}".strip()))
    return out


@pytest.mark.parametrize("path,cmd", _walk(typer.main.get_command(app))[1:],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_has_help_text(path: str, cmd: Any) -> None:
    assert (cmd.help or cmd.short_help or "").strip(), f"{path} has no help text"
    assert "not built yet" not in (cmd.help or "").lower(), f"{path} is still a stub"


def test_wrong_stage_is_one_line_and_exit_2() -> None:
    r = run("config", "--stage", "production")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert "stage" in r.stderr
