"""The documentation keeps up with the code (as sqlite-utils' test_docs does): every command family
and subcommand is documented in the README, every link inside the repository leads somewhere, and
the package cites only documents the repository holds."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from animl_ingest_cli.cli import app
from tests.conftest import REPO

README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
_COMMAND = typer.main.get_command(app)
FAMILIES: dict[str, Any] = dict(getattr(_COMMAND, "commands", {}))
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _headings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#")]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.lstrip("#").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_the_readme_reads_in_ten_minutes() -> None:
    """Depth goes into docs/ (the README's documentation table links each file)."""
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < 300, f"README.md has {lines} lines: move depth into docs/"
    text = README.read_text(encoding="utf-8")
    unlinked = [d.name for d in DOCS if f"(docs/{d.name})" not in text]
    assert not unlinked, f"docs/ files the README does not link: {unlinked}"


def test_the_app_has_families() -> None:
    assert {"ingest", "inspect", "maintenance", "unpark", "deadletter", "config"} <= set(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_command_family_has_a_readme_heading(family: str) -> None:
    headings = [h for h in _headings(README.read_text(encoding="utf-8")) if f"`animl-ingest {family}" in h]
    assert headings, f"README.md has no heading naming `animl-ingest {family}`"
    subcommands = getattr(FAMILIES[family], "commands", None)
    if subcommands:
        named = set(re.split(r"[|` ]+", " ".join(headings)))
        missing = sorted(set(subcommands) - named)
        assert not missing, f"README.md's heading for {family} does not name {missing}"


@pytest.mark.parametrize("doc", [README, REPO / "RUNBOOK.md", *DOCS], ids=lambda p: p.name)
def test_links_inside_the_repository_lead_somewhere(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    anchors = {_slug(h) for h in _headings(text)}
    for target in _LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        if path:
            assert (doc.parent / path).exists(), f"{doc.name}: link to {target} leads nowhere"
        elif anchor:
            assert anchor in anchors, f"{doc.name}: no heading for #{anchor}"


def test_the_package_cites_only_what_the_repository_holds() -> None:
    outside = re.compile(r"\.\./shared|CONTRACT\.md|EXIF\.md|DESIGN\.md|REVIEW\.md")
    found = [f"{p.relative_to(REPO)}:{n}" for p in sorted((REPO / "animl_ingest_cli").rglob("*.py"))
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if outside.search(line)]
    found += [f"README.md:{n}" for n, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1)
              if outside.search(line)]
    assert not found, f"references to documents outside the repository: {found}"
