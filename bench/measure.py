"""Run a command and measure it: wall time, CPU seconds of its whole process tree, peak memory.

CPU and the single-process peak come from the kernel (`os.wait4`): the rusage of a reaped child
includes every descendant it reaped in turn, so worker processes are counted in the CPU seconds.
`ru_maxrss` is the peak of the largest single process of the tree, not a sum, so a sampler thread
also reads /proc every 20 ms and records the peak of the tree's summed PSS (proportional set size:
pages shared between a parent and its forked workers are split between them, not counted twice),
the command's own peak RSS (its VmHWM: `ru_maxrss` also counts the memory of the process that
started it, which the child shares between its fork and its exec) and the bytes the tree has
written to disk (`write_bytes` of /proc/<pid>/io: a reaped child's are added to its parent's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

SAMPLE_SECONDS = 0.02


@dataclass
class Measured:
    """What one run cost. `tree_peak_mb` is sampled (may miss a spike shorter than 20 ms);
    `maxrss_mb` is exact but covers only the largest single process."""

    argv: list[str]
    returncode: int
    wall_s: float
    cpu_s: float
    user_s: float
    sys_s: float
    maxrss_mb: float
    tree_peak_mb: float
    max_processes: int
    hwm_mb: float = 0.0  # the command's own peak RSS (VmHWM), sampled
    disk_written_mb: float = 0.0  # written to disk by the whole tree, sampled
    stdout: str = field(repr=False, default="")
    stderr: str = field(repr=False, default="")

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("stdout")
        d["stderr_tail"] = self.stderr[-2000:]
        d.pop("stderr")
        return d


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
            except OSError:
                continue
            out.extend(int(c) for c in text.split())
    except OSError:
        pass
    return out


def _proc_field(path: str, field_name: str) -> int | None:
    """The number after `field_name` in a /proc file (kB in status and smaps_rollup, bytes in io)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field_name):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _pss_kb(pid: int) -> int:
    """PSS of one process from smaps_rollup; RSS from status when smaps_rollup is unreadable."""
    pss = _proc_field(f"/proc/{pid}/smaps_rollup", "Pss:")
    if pss is None:
        pss = _proc_field(f"/proc/{pid}/status", "VmRSS:")
    return pss or 0


def tree_pids(root: int) -> list[int]:
    seen, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        todo.extend(_children(pid))
    return seen


class _Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kb = 0
        self.hwm_kb = 0
        self.written = 0
        self.max_procs = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pids = tree_pids(self.pid)
            total = sum(_pss_kb(p) for p in pids)
            self.peak_kb = max(self.peak_kb, total)
            self.hwm_kb = max(self.hwm_kb, _proc_field(f"/proc/{self.pid}/status", "VmHWM:") or 0)
            written = sum(_proc_field(f"/proc/{p}/io", "write_bytes:") or 0 for p in pids)
            self.written = max(self.written, written)
            self.max_procs = max(self.max_procs, len(pids))
            self.stop.wait(SAMPLE_SECONDS)


def run_measured(argv: list[str], *, env: dict[str, str] | None = None, cwd: str | Path | None = None,
                 timeout: float = 3600) -> Measured:
    """Start `argv`, sample its tree until it exits, reap it with wait4 and return the figures."""
    start = time.perf_counter()
    out_f = _tmpfile()
    err_f = _tmpfile()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out_f, stderr=err_f, stdin=subprocess.DEVNULL)
    sampler = _Sampler(proc.pid)
    sampler.start()
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    wall = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
    out_f.seek(0)
    err_f.seek(0)
    stdout, stderr = out_f.read().decode("utf-8", "replace"), err_f.read().decode("utf-8", "replace")
    out_f.close()
    err_f.close()
    return Measured(argv=[str(a) for a in argv], returncode=proc.returncode, wall_s=wall,
                    cpu_s=usage.ru_utime + usage.ru_stime, user_s=usage.ru_utime, sys_s=usage.ru_stime,
                    maxrss_mb=usage.ru_maxrss / 1024, tree_peak_mb=sampler.peak_kb / 1024,
                    max_processes=sampler.max_procs, hwm_mb=sampler.hwm_kb / 1024,
                    disk_written_mb=sampler.written / 2**20, stdout=stdout, stderr=stderr)


def _tmpfile():  # noqa: ANN202
    import tempfile

    return tempfile.TemporaryFile()


def parse_jsonl(stdout: str) -> tuple[list[dict], dict | None]:
    """A `--json` command's output: its item objects, and its summary (or None): the value of a
    `{"summary": {...}}` line, or a whole line flagged `{"summary": true, ...}`."""
    items, summary = [], None
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if "summary" in obj:
            summary = obj["summary"] if isinstance(obj["summary"], dict) else obj
        else:
            items.append(obj)
    return items, summary


def fake_aws_env(scratch: Path, **extra: str) -> dict[str, str]:
    """This environment without any AWS setting, profile or stage of the user's: fake credentials
    and config files that do not exist, so a run can never reach a real account."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k not in ("ANIML_STAGE", "API_KEY", "ANIML_API_KEY")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-west-2",
               AWS_REGION="us-west-2", AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=str(scratch / "no-aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(scratch / "no-aws-credentials"),
               ANIML_STATE_DIR=str(scratch / "state"))
    env.update(extra)
    return env


def exit_status(failed: str | None, moves: dict[str, list[dict]]) -> int:
    """A bench's exit status, after its report: 1, with `BENCH FAILED: why` on stderr, when a part
    failed (`failed`) or a move run did not move every object intact (`moves`: tool -> its runs,
    each with `exit` and `problems`: `unpark` and `aws s3 mv`); 0 otherwise."""
    bad = sorted({tool for tool, runs in moves.items() for r in runs if r.get("exit") or r["problems"]})
    if bad and not failed:
        failed = f"{', '.join(bad)} did not move every object intact (see above)"
    if failed:
        print(f"\nBENCH FAILED: {failed}", file=sys.stderr)
        return 1
    return 0
