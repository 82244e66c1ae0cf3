"""Progress bars as a person sees them: in a real pseudo-terminal, with the total, the rate and the
time left; never under --json, never when stderr is a pipe."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.conftest import EXAMPLES

N = 24
BAR = re.compile(r"(\d+\.\d|-) images/s|left [\d?]")  # what only the bar shows


def many_images(folder: Path, n: int = N) -> Path:
    """`n` different images: the examples with trailing bytes after the JPEG's end (another hash)."""
    folder.mkdir(parents=True)
    examples = sorted(EXAMPLES.iterdir())
    for i in range(n):
        src = examples[i % len(examples)]
        (folder / f"img{i:03}.jpg").write_bytes(src.read_bytes() + b"\0" * (i + 1))
    return folder


def run_in_pty(args: list[str], env: dict[str, str], timeout: float = 180) -> tuple[int, str]:
    """The installed command with stdin, stdout and stderr on a pseudo-terminal of 160 columns;
    everything it wrote to the terminal, and its exit code."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its controlling tty
        try:
            os.execve(sys.executable, [sys.executable, "-m", "animl_ingest_cli", *args], env)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    out = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out.extend(chunk)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"ANIML_LOCAL_DIR": str(tmp_path / "animl-local"), "COLUMNS": "160", "TERM": "xterm-256color"})
    env.pop("NO_COLOR", None)
    return env


def test_ingest_bar_shows_total_rate_and_time_left_on_a_terminal(tmp_path: Path) -> None:
    folder = many_images(tmp_path / "cards")
    code, out = run_in_pty(["ingest", str(folder), "--concurrency", "1"], _env(tmp_path))
    assert code == 0, out
    assert re.search(rf"(?<!\d)\d+/{N}(?!\d)", out), out  # done/total
    assert re.search(r"\d+\.\d images/s", out), out  # the rate
    assert re.search(r"left \d+:\d\d:\d\d", out), out  # time left
    assert "ingest on local" in out  # the summary table follows


def test_no_bar_under_json_or_when_piped(tmp_path: Path) -> None:
    folder = many_images(tmp_path / "cards", 8)
    code, out = run_in_pty(["ingest", str(folder), "--json", "--concurrency", "1"], _env(tmp_path))
    assert code == 0, out
    assert not BAR.search(out) and "ingesting" not in out
    shutil.rmtree(tmp_path / "animl-local")
    r = subprocess.run([sys.executable, "-m", "animl_ingest_cli", "ingest", str(folder),
                        "--concurrency", "1"], capture_output=True, text=True, env=_env(tmp_path),
                       timeout=180)
    assert r.returncode == 0, r.stderr
    assert not BAR.search(r.stderr + r.stdout) and "ingesting" not in r.stderr
    assert "\x1b[" not in r.stderr  # no cursor movement or colour sent into a pipe


def test_unpark_bar_on_the_local_stage(tmp_path: Path) -> None:
    env = _env(tmp_path)
    lot = tmp_path / "animl-local" / "buckets" / "animl-images-parkinglot-local"
    lot.mkdir(parents=True)
    for i in range(300):
        (lot / f"cam/IMG_{i:04}.JPG").parent.mkdir(exist_ok=True)
        (lot / f"cam/IMG_{i:04}.JPG").write_bytes(b"x" * 10 + bytes([i % 256]))
    code, out = run_in_pty(["unpark", "--concurrency", "1"], env)
    assert code == 0, out
    assert "moved 300, already there 0, failed 0 on local" in out
    assert re.search(r"(?<!\d)\d+/300(?!\d)", out) and "objects/s" in out, out
