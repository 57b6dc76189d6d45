"""A Ctrl-C that lands inside a finaliser is swallowed by Python ("Exception ignored in ..."); harness/interrupts.py
records it so the run still stops at its next step or unit (tests/harness/test_cache.py interrupts a real run)."""
from __future__ import annotations

import gc
import os
import signal
import sys

import pytest

from harness import interrupts


class _InterruptedWhileCollected:
    """An object whose finaliser is running when SIGINT arrives, as a tensor's or a file's can be."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # bytecode for the handler to run in, inside the finaliser
            pass


def _swallow() -> None:
    _InterruptedWhileCollected()  # freed at once: its __del__ runs, the KeyboardInterrupt is printed and dropped
    gc.collect()


@pytest.fixture
def dropped(monkeypatch):
    """The exceptions Python drops in finalisers (it hands them to sys.unraisablehook, which prints them)."""
    seen: list[type] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_type))
    return seen


@pytest.fixture
def default_sigint():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a test run in the background ignores it
    yield
    signal.signal(signal.SIGINT, previous)


def test_python_itself_drops_a_ctrl_c_inside_a_finaliser(default_sigint, dropped):
    _swallow()  # no KeyboardInterrupt reaches here: the reason harness/interrupts.py exists
    assert dropped == [KeyboardInterrupt]
    interrupts.check()  # and nothing was recorded outside honoured()


def test_a_swallowed_ctrl_c_is_raised_again_at_the_next_check(default_sigint, dropped):
    with interrupts.honoured():
        _swallow()
        assert dropped == []  # recorded, and not printed as a traceback
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
    interrupts.check()  # the record ends with the run
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    _swallow()
    assert dropped == [KeyboardInterrupt]  # the hook is Python's again


def test_a_ctrl_c_elsewhere_still_raises_where_it_lands(default_sigint):
    with interrupts.honoured(), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10**6):
            pass


def test_an_ignored_sigint_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job: Ctrl-C is not meant for it
    try:
        with interrupts.honoured():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
