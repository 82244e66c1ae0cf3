"""The database backup of step 5: animl-api's own export script, run in an animl-api checkout.

`npm run export-db-<stage>` writes one JSON file per collection to `backups/animl-<stage>/<UTC
time>/` (docs/animl.md, The production deployment). Its exit code is not enough: it does not wait
on the export of each collection, so one that fails (`mongoexport` missing, say) leaves it at 0. The
backup counts only when a folder appeared, or was written anew, holding at least one `.json` file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animl_ingest_cli.errors import InputError, StoreError


def script_name(stage: str) -> str:
    return f"export-db-{stage}"


def backups_root(api_dir: Path, stage: str) -> Path:
    return api_dir / "backups" / f"animl-{stage}"


def check_checkout(api_dir: str | Path, stage: str) -> Path:
    """The checkout, once it is known to have the export script and the tools it needs, so a wrong
    path fails before the run changes anything."""
    path = Path(api_dir).expanduser().resolve()
    package = path / "package.json"
    try:
        scripts = json.loads(package.read_text(encoding="utf-8")).get("scripts") or {}
    except FileNotFoundError:
        raise InputError(f"--api-dir {path} is not an animl-api checkout (no package.json)") from None
    except (OSError, ValueError, AttributeError) as exc:
        raise InputError(f"--api-dir: cannot read {package}: {exc}") from None
    if script_name(stage) not in scripts:
        raise InputError(f"--api-dir: {package} has no script {script_name(stage)!r}")
    for tool in ("npm", "mongoexport"):
        if shutil.which(tool) is None:
            raise InputError(f"the database backup needs {tool!r}, which is not on PATH")
    return path


@dataclass
class Backup:
    folder: Path
    files: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "files": self.files, "bytes": self.bytes}


def _json_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if p.is_file())


def _written_since(folder: Path, since: float) -> bool:
    return any(p.stat().st_mtime >= since for p in _json_files(folder))


def export_db(api_dir: str | Path, stage: str, *, on_line: Callable[[str], None] = lambda _: None,
              clock: Callable[[], float] = time.time) -> Backup:
    """Run the export and return the folder it wrote. Raises StoreError when the script fails or
    no new folder with a `.json` file appears."""
    path = check_checkout(api_dir, stage)
    root = backups_root(path, stage)
    before = {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()
    # the folder is named to the minute: a rerun within it writes into the same folder again
    since = clock() - 2.0
    env = dict(os.environ)
    env.setdefault("AWS_PROFILE", "animl")
    cmd = ["npm", "run", script_name(stage)]
    on_line(f"$ cd {path} && AWS_PROFILE={env['AWS_PROFILE']} {' '.join(cmd)}")
    proc = subprocess.Popen(cmd, cwd=path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            on_line(line.rstrip("\n"))
        code = proc.wait()
    except BaseException:  # Ctrl-C: the export stops with us
        proc.terminate()
        proc.wait()
        raise
    if code != 0:
        raise StoreError(f"npm run {script_name(stage)} failed (exit {code}); see its output above")
    made = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    fresh = [p for p in made if p.name not in before or _written_since(p, since)]
    if not fresh:
        raise StoreError(f"npm run {script_name(stage)} ended but no new backup folder appeared in {root}")
    folder = max(fresh, key=lambda p: p.stat().st_mtime)
    files = _json_files(folder)
    if not files:
        raise StoreError(f"the backup folder {folder} holds no .json file")
    return Backup(folder, len(files), sum(p.stat().st_size for p in files))
