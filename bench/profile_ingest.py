"""cProfile of `animl-ingest ingest`, every thread included.

cProfile only sees the thread that enabled it, and the ingest command works in a pool, so each
thread's `run` is wrapped in its own profiler and the profiles are merged at the end. The clock is
each thread's CPU time (`time.thread_time`), not wall time: a thread blocked on a lock, a queue or a
disk costs nothing, so the figures say where the CPU goes (the main thread waiting on the pool
would otherwise show up as the biggest item). Work done in
worker processes (if the command ever forks them) is not seen: profile with one worker.

usage: python profile_ingest.py OUT.prof OUT.txt -- ingest FOLDER --stage local --json --concurrency 1
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import threading
import time

TOP = 25


def main() -> int:
    prof_path, text_path = sys.argv[1], sys.argv[2]
    cli_args = sys.argv[sys.argv.index("--") + 1:]
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        p = cProfile.Profile(time.thread_time)
        with lock:
            profiles.append(p)
        p.enable()
        try:
            original_run(self)
        finally:
            p.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main_prof = cProfile.Profile(time.thread_time)
    sys.argv = ["animl-ingest", *cli_args]
    code = 0
    main_prof.enable()
    try:
        from animl_ingest_cli.cli import main as cli_main

        cli_main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        main_prof.disable()
    stats = pstats.Stats(main_prof)
    for p in profiles:
        try:
            stats.add(p)
        except TypeError:  # a thread that never ran anything
            pass
    stats.dump_stats(prof_path)
    buf = io.StringIO()
    for order in ("cumulative", "tottime"):
        buf.write(f"==== top {TOP} by {order}, CPU seconds (main + {len(profiles)} threads merged) ====\n")
        pstats.Stats(prof_path, stream=buf).strip_dirs().sort_stats(order).print_stats(TOP)
    with open(text_path, "w") as f:
        f.write(buf.getvalue())
    return code


if __name__ == "__main__":
    sys.exit(main())
