"""Help that reads well: every command has help and examples, flags show no `<bool>`, options their
metavar rather than a Python type, and no paragraph is broken mid-sentence by a docstring's hard line
breaks. Also the README's start-up promise: `--help` and `--version` load no heavy module."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest
import typer.main

from animl_ingest_cli.cli import app

WIDE = 5000  # wide enough that click never wraps: every paragraph is then exactly one line


def _walk(cmd: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = [(path, cmd)]
    for name, sub in getattr(cmd, "commands", {}).items():
        out.extend(_walk(sub, (*path, name)))
    return out


COMMANDS = _walk(typer.main.get_command(app))


def help_text(path: tuple[str, ...], width: int = WIDE) -> str:
    """`animl-ingest PATH --help` as the installed command prints it, at `width` columns."""
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, [*path, "--help"], terminal_width=width, max_content_width=width)
    assert r.exit_code == 0, r.output
    return r.output


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "(root)")
def test_help_reads_well(path: tuple[str, ...]) -> None:
    text = help_text(path)
    assert "<bool>" not in text and "<str>" not in text
    assert not re.search(r"<(int|float|list|path)[^>]*>", text), text  # Python types as metavars
    usage, description = text.split("\n\n", 2)[0], text.split("\n\n", 2)[1:]
    assert usage.startswith("Usage: animl-ingest")
    # the description: every paragraph on one line, and it ends a sentence
    body = "\n\n".join(description).split("\nOptions:")[0].split("\nArguments:")[0].split("\nCommands:")[0]
    for paragraph in [p for p in body.split("\n\n") if p.strip()]:
        lines = paragraph.strip("\n").splitlines()
        assert len(lines) == 1, f"a paragraph of {' '.join(path)} --help is broken mid-sentence:\n{paragraph}"
        assert lines[0].rstrip()[-1] in ".:)", f"{' '.join(path)}: paragraph does not end a sentence: {lines}"
    # options: one line each (a continuation line means a hard break in an option's help)
    if "\nOptions:\n" in text:
        block = text.split("\nOptions:\n", 1)[1].split("\n\n", 1)[0]
        for line in block.splitlines():
            assert line.startswith("  -"), f"{' '.join(path)}: option help broken over lines: {line!r}"


@pytest.mark.parametrize("path,cmd", COMMANDS[1:], ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_command_has_help_a_short_line_and_examples(path: tuple[str, ...], cmd: Any) -> None:
    assert (cmd.help or "").strip(), f"{' '.join(path)} has no help text"
    text = help_text(path, width=100)
    assert "Examples:\n    animl-ingest " in text, f"{' '.join(path)} has no example"
    for line in text.split("Examples:\n", 1)[1].splitlines():
        if line.strip():
            assert line.startswith("    animl-ingest "), line


def test_the_command_list_shows_whole_short_lines() -> None:
    text = help_text((), width=100)
    listed = text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    assert "..." not in listed  # click cuts a long first sentence with "..."
    for name in ("ingest", "inspect", "maintenance", "queues", "unpark", "deadletter", "runbook", "config"):
        assert re.search(rf"^  {name}\s+\S", listed, re.M), name


def test_installed_help_and_version_import_nothing_heavy() -> None:
    """What `--help` loads: no boto3/botocore, no Pillow, no requests, no rich, no pydantic, and none
    of the core's working modules."""
    probe = ("import sys, runpy\n"
             "sys.argv = ['animl-ingest'] + sys.argv[1:]\n"
             "try:\n"
             "    runpy.run_module('animl_ingest_cli', run_name='__main__')\n"
             "except SystemExit:\n"
             "    pass\n"
             "import json\n"
             "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n")
    for args in (["--help"], ["--version"], ["ingest", "--help"], ["queues", "drain", "--help"]):
        r = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True,
                           timeout=60)
        loaded = set(json.loads(r.stderr.strip().splitlines()[-1]))
        heavy = {m for m in loaded if m.split(".")[0] in (
            "boto3", "botocore", "PIL", "requests", "rich", "pydantic", "urllib3")}
        # the core's working modules (leaf modules of names and rules, stdlib only, may load)
        working = ("ingest", "context", "aws", "stores", "params", "images", "metadata", "api",
                   "api_local", "pool", "ops", "sources", "batchjob", "batches", "preflight",
                   "runbook.runner")
        core = {m for m in loaded for w in working
                if m == f"animl_ingest_cli.{w}" or m.startswith(f"animl_ingest_cli.{w}.")}
        assert not heavy and not core, (args, sorted(heavy | core))


def test_flags_take_no_value_in_usage() -> None:
    text = help_text(("ingest",), width=100)
    assert re.search(r"^  --dry-run\s+Show", text, re.M)
    assert re.search(r"^  -s, --stage STAGE\s+", text, re.M)
    assert "Usage: animl-ingest ingest [OPTIONS] {SOURCE}..." in text
