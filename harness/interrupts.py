"""A Ctrl-C that a run always honours.

Python turns SIGINT into a KeyboardInterrupt wherever the main thread happens to be. When that is inside a
finaliser (a tensor's or a file's `__del__`, a gc or weakref callback), Python prints "Exception ignored in ..."
and carries on, so a bake-off interrupted at that moment would run to its end. While `honoured()` is active the
handler also records the interrupt, and the loops that run for long (the executors between units, training
between steps) call `check()`, which raises it again: the run stops at once, or at the latest at the next step.
Python's "Exception ignored" traceback for such a dropped Ctrl-C is not printed: the user sees one line.
"""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_pending = False


def _handler(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending = True
    raise KeyboardInterrupt


@contextmanager
def honoured() -> Iterator[None]:
    """Record Ctrl-C while the block runs (main thread only; a SIGINT that was ignored stays ignored, as in a
    background job)."""
    global _pending
    _pending = False
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    unraisable = sys.unraisablehook

    def hook(info: sys.UnraisableHookArgs) -> None:
        if not (_pending and info.exc_type is KeyboardInterrupt):
            unraisable(info)

    signal.signal(signal.SIGINT, _handler)
    sys.unraisablehook = hook
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.unraisablehook = unraisable
        _pending = False


def check() -> None:
    """Raise the KeyboardInterrupt a Ctrl-C asked for, if a finaliser swallowed it."""
    if _pending:
        raise KeyboardInterrupt
