"""The Reliability figures (docs/reliability.md): what the suite tried, counted as it runs.

Every fault, crash point (in-process), kill -9 (of the installed CLI) and hostile input the suite
injects is counted here; the invariant checker
counts the objects it followed and any it found lost. The totals are printed at the end of the run
(`pytest tests/reliability`), and written as JSON to $RELIABILITY_FIGURES when that is set.
"""

from __future__ import annotations

import threading
from collections import Counter

NAMES = ("faults injected", "crash points", "kill -9", "hostile inputs", "races run", "actors",
         "objects followed", "objects lost")
_lock = threading.Lock()
_counts: Counter[str] = Counter()


def add(name: str, n: int = 1) -> None:
    assert name in NAMES, name
    with _lock:
        _counts[name] += n


def snapshot() -> dict[str, int]:
    with _lock:
        return {name: _counts[name] for name in NAMES}
