"""Ctrl-C: the first one stops the command cleanly, a second one never kills it half-way.

The first SIGINT raises KeyboardInterrupt in the main thread as Python does by default; the command
then lets the work under way finish, saves its state (journal, runbook state, summary) and exits 130.
While it does, further Ctrl-Cs only say that it is finishing: a KeyboardInterrupt raised again in
the middle of that clean-up (or in the interpreter's join of the worker threads at exit) would end
the process by SIGINT with the state half saved. `kill -9` still stops it at once, and every command
is safe to rerun after that too.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

_MESSAGE = (b"\nstill finishing what is under way and saving the state, please wait (kill -9 stops at "
            b"once, and a rerun completes the rest)\n")


def _again(signum: int, frame: FrameType | None) -> None:
    try:
        os.write(2, _MESSAGE)
    except OSError:
        pass


_seen = threading.Event()


def seen() -> bool:
    """A Ctrl-C arrived since `install` (typer hides the KeyboardInterrupt behind Exit(130))."""
    return _seen.is_set()


def _first(signum: int, frame: FrameType | None) -> None:
    _seen.set()
    signal.signal(signal.SIGINT, _again)
    raise KeyboardInterrupt


def install() -> Any:
    """Install the handler and return the one it replaced (for `restore`), unless SIGINT is ignored
    (a background job, `nohup`) or this is not the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        return None
    _seen.clear()
    signal.signal(signal.SIGINT, _first)
    return previous


def restore(previous: Any) -> None:
    """Put back what `install` replaced (the command's threads have all been joined by then).
    After a Ctrl-C the process is ending, and SIGINT is ignored from here on: a Ctrl-C still arriving
    (a key held down) would otherwise meet Python's own handler, which the interpreter puts back
    while it exits, and end the process by SIGINT (-2, not 130) after all was saved. (An ignored
    signal is the one disposition the interpreter leaves alone at exit; kill -9 still stops it.)"""
    if _seen.is_set():
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        return
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, previous)


def stop_on_next() -> None:
    """From now on a Ctrl-C only says the command is finishing (called once the first one is seen,
    whichever way it arrived: the handler, or a KeyboardInterrupt raised by other code)."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _again)
