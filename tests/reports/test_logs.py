"""reports/logs.py: --log-file keeps sftbench's records down to debug, timestamped, and library warnings (not
their chatter); --verbose shows sftbench's records on the terminal; with neither, logging prints nothing."""
from __future__ import annotations

import io
import logging
import re

import pytest
from rich.console import Console

from reports.logs import setup
from reports.progress import LineProgress


@pytest.fixture(autouse=True)
def _restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    setup(Console(file=io.StringIO()))  # removes what a test added
    root.handlers[:], root.level = handlers, level
    logging.captureWarnings(False)


def _emit() -> None:
    logging.getLogger("harness.execution.runner").debug("unit a/b: kept (score-123)")
    logging.getLogger("harness.storage.locks").info("waiting for x (held by another run)")
    logging.getLogger("urllib3.connectionpool").debug("library chatter")
    logging.getLogger("urllib3.connectionpool").warning("a library warning")


def test_the_log_file_keeps_ours_to_debug_with_timestamps_and_the_terminal_shows_them_with_verbose(tmp_path):
    terminal = io.StringIO()
    console = Console(file=terminal, width=200)
    setup(console, verbose=True, log_file=tmp_path / "logs" / "run.log")
    _emit()
    LineProgress(console).stage("m", "tuning")
    kept = (tmp_path / "logs" / "run.log").read_text()
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} DEBUG harness.execution.runner: unit a/b: kept "
                     r"\(score-123\)$", kept, re.M)
    assert "INFO sftbench.progress: m: tuning" in kept and "WARNING urllib3.connectionpool: a library warning" in kept
    assert "library chatter" not in kept
    shown = terminal.getvalue()
    assert "unit a/b: kept (score-123)" in shown and "waiting for x" in shown
    assert "library" not in shown and shown.count("m: tuning") == 1  # progress lines are printed once


def test_without_verbose_or_a_log_file_nothing_is_shown(tmp_path, capsys):
    terminal = io.StringIO()
    setup(Console(file=terminal, width=200))
    logging.getLogger("harness.execution.runner").info("unit a/b: started")
    assert terminal.getvalue() == "" and capsys.readouterr().err == ""
    setup(Console(file=terminal, width=200), log_file=tmp_path / "run.log")  # a file only: the terminal stays quiet
    _emit()
    assert terminal.getvalue() == "" and "unit a/b: kept" in (tmp_path / "run.log").read_text()
