"""The package's layers, read from its imports (at the top and inside functions alike): no import
cycle, the core never imports the CLI's libraries, the CLI never imports boto3."""

from __future__ import annotations

import ast

from tests.conftest import REPO

PACKAGE = REPO / "animl_ingest_cli"


def _imports() -> dict[str, set[str]]:
    """Module -> every module it imports (package modules by name, others by their top name)."""
    mods = {}
    for p in PACKAGE.rglob("*.py"):
        name = ".".join(p.relative_to(REPO).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    graph[m].add(full if full in mods else node.module)
            elif isinstance(node, ast.Import):
                graph[m].update(a.name for a in node.names)
    return graph


def test_no_import_cycle() -> None:
    graph = _imports()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt == goal:
                    return True
                if nxt in graph and nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    assert [m for m in graph if reaches(m, m)] == []


def test_the_core_never_imports_the_cli_and_the_cli_never_boto3() -> None:
    for module, imported in _imports().items():
        tops = {i.split(".")[0] for i in imported}
        if module.startswith("animl_ingest_cli.cli") or module == "animl_ingest_cli.__main__":
            assert not tops & {"boto3", "botocore"}, f"{module} imports boto3"
        else:
            assert not tops & {"typer", "rich", "click"}, f"{module} imports the CLI's libraries"
            cli = [i for i in imported if i.split(".")[:2] == ["animl_ingest_cli", "cli"]]
            assert not cli, f"{module} imports the CLI: {cli}"
