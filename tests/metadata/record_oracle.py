"""Record exiftool's answer for every layout of tests/metadata/layouts.py (run it where exiftool
12.57 is installed: `apt-get install libimage-exiftool-perl` on Debian bookworm).

    python -m tests.metadata.record_oracle            # rewrites tests/metadata/oracle/layouts.json

Each file is written under its layout's file name into an empty folder and exiftool runs from
there with the corpus command (../shared/corpus/SOURCES.md): `-json -G`, file-system tags left out.
The md5 of the bytes is recorded with the answer, so a test can tell when a builder (or Pillow's
encoder) no longer makes the bytes exiftool saw.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.metadata.layouts import LAYOUTS, build

ORACLE = Path(__file__).with_name("oracle") / "layouts.json"
EXCLUDE = ["File:FileModifyDate", "File:FileAccessDate", "File:FileInodeChangeDate", "File:FilePermissions",
           "File:Directory"]
VERSION = "12.57"


def exiftool_version() -> str | None:
    try:
        return subprocess.run(["exiftool", "-ver"], capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def run_exiftool(files: dict[str, bytes], one_run: bool = False) -> dict[str, dict[str, Any]]:
    """exiftool's JSON for each file (name -> bytes) and its exit status, one run per file (the
    status is per run), or with `one_run` a single run for all (quicker; no status)."""
    answers: dict[str, dict[str, Any]] = {}
    options = ["-json", "-G"] + [a for t in EXCLUDE for a in ("-x", t)] + ["--"]
    with tempfile.TemporaryDirectory() as tmp:
        for file_name, data in files.items():
            (Path(tmp) / file_name).write_bytes(data)
        if one_run:
            done = subprocess.run(["exiftool", *options, *files], cwd=tmp, capture_output=True, timeout=120,
                                  check=False)
            return {a["SourceFile"]: {"json": a} for a in json.loads(done.stdout)}
        for file_name in files:
            done = subprocess.run(["exiftool", *options, file_name], cwd=tmp, capture_output=True, timeout=60,
                                  check=False)
            answers[file_name] = {"status": done.returncode, "json": json.loads(done.stdout)[0]}
    return answers


def main() -> int:
    version = exiftool_version()
    if version != VERSION:
        print(f"exiftool {VERSION} is needed (found {version or 'none'})", file=sys.stderr)
        return 1
    oracle: dict[str, Any] = {"exiftool": version, "layouts": {}}
    built = {name: build(name) for name in LAYOUTS}
    answers = run_exiftool(dict(built.values()))
    for name, (file_name, data) in built.items():
        oracle["layouts"][name] = {"file": file_name, "md5": hashlib.md5(data).hexdigest(),
                                   **answers[file_name]}
    ORACLE.parent.mkdir(exist_ok=True)
    ORACLE.write_text(json.dumps(oracle, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(oracle['layouts'])} layouts recorded in {ORACLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
