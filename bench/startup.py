"""Start-up time of the command: `animl-ingest --help`, `--version` and `ingest --help`.

Each is started `--runs` times (default 15) as a user starts it, the installed `animl-ingest` script
(else `python -m animl_ingest_cli`), with stdout to a pipe. Wall time and CPU time (user + system,
from wait4) per run; the best and the median are reported against the 0.3 s goal. CPU time is the
figure to trust on a loaded machine: wall time there includes waiting for a core.

    python bench/startup.py            # the table; bench/out/startup.json has every run
    python bench/startup.py --runs 30
    python bench/startup.py --compare ../old-checkout   # also that checkout's code, side by side
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_S = 0.3
OUT = Path(__file__).resolve().parent / "out"
CASES = (["--help"], ["--version"], ["ingest", "--help"])


def command() -> list[str]:
    installed = (shutil.which("animl-ingest", path=str(Path(sys.executable).parent))
                 or shutil.which("animl-ingest"))
    return [installed] if installed else [sys.executable, "-m", "animl_ingest_cli"]


def one_run(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """One start; with `env` (a compared checkout) from that checkout's folder, since `python -m` puts
    the current folder first on sys.path."""
    start = time.perf_counter()
    cwd = env["PYTHONPATH"] if env else None
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=env, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.communicate()
    return wall, usage.ru_utime + usage.ru_stime, proc.returncode


def measure(label: str, base: list[str], runs: int, env: dict[str, str] | None = None) -> dict | None:
    results = {}
    for case in CASES:
        outcome = [one_run([*base, *case], env) for _ in range(runs)]
        bad = [r for r in outcome if r[2] != 0]
        if bad:
            print(f"{label} {' '.join(case)} exited {bad[0][2]}", file=sys.stderr)
            return None
        walls, cpus = [r[0] for r in outcome], [r[1] for r in outcome]
        name = f"{label} {' '.join(case)}"
        r = results[name] = {"wall_s": walls, "cpu_s": cpus, "best_wall_s": min(walls),
                             "median_wall_s": statistics.median(walls), "best_cpu_s": min(cpus),
                             "median_cpu_s": statistics.median(cpus)}
        ok = "ok" if r["median_cpu_s"] < GOAL_S else "OVER"
        print(f"{name:<40} {r['best_wall_s']:>9.3f}s {r['median_wall_s']:>11.3f}s {r['best_cpu_s']:>8.3f}s "
              f"{r['median_cpu_s']:>10.3f}s  {ok} (< {GOAL_S} s)")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--compare", metavar="CHECKOUT",
                        help="another checkout of the project, run with `python -m` from its folder")
    args = parser.parse_args()
    base = command()
    one_run([*base, "--version"])  # warm the page cache and the .pyc files
    print(f"{'command':<40} {'best wall':>10} {'median wall':>12} {'best CPU':>9} {'median CPU':>11}  goal")
    results = measure("animl-ingest", base, args.runs)
    if results is None:
        return 1
    if args.compare:
        env = dict(os.environ, PYTHONPATH=str(Path(args.compare).resolve()))
        other = [sys.executable, "-m", "animl_ingest_cli"]
        one_run([*other, "--version"], env)
        compared = measure(f"({Path(args.compare).name})", other, args.runs, env)
        results.update(compared or {})
    load = os.getloadavg()[0]
    print(f"({args.runs} runs each, {os.cpu_count()} CPUs, load average {load:.1f}; {' '.join(base)}). "
          f"CPU time is the figure on a loaded machine: wall time there includes waiting for a core.")
    OUT.mkdir(exist_ok=True)
    (OUT / "startup.json").write_text(json.dumps({"command": base, "runs": args.runs, "load": load,
                                                  "goal_s": GOAL_S, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
