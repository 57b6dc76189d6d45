"""Where log records go: `--log-file PATH` keeps everything (sftbench's own records down to debug detail, every
line printed, library warnings), each line timestamped; `--verbose` also shows sftbench's records on the
terminal (a unit's start and finish, kept units reused, unit keys, waits for another run's lock). Without either,
the terminal shows only sftbench's own warnings and errors that were not printed already.

A line the CLI prints and also logs (an error, a progress line, the leaderboard) carries `extra=PRINTED`, so the
terminal never shows it twice. Every record ends at a handler set up here, never at Python's last-resort handler
(which would print a second copy of each warning and error on stderr).

The harness logs with `logging.getLogger(__name__)` and never configures logging; the CLI calls `setup` once per
command and `reset` when the command ends.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.logging import RichHandler

OURS = ("harness", "sftbench", "reports", "tuners")  # loggers kept down to debug; others from warning up
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PRINTED = {"printed": True}  # `log.info(line, extra=PRINTED)`: the line is on the terminal already


class _Ours(logging.Filter):
    def __init__(self, level_for_others: int):
        super().__init__()
        self.level_for_others = level_for_others

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".")[0] in OURS or record.levelno >= self.level_for_others


def setup(console: Console, verbose: bool = False, log_file: Path | None = None) -> None:
    """Send log records to `log_file` (all of ours, with timestamps) and ours to `console`: with `verbose` down to
    debug, else warnings and errors only; lines already printed are not shown again."""
    reset()
    root = logging.getLogger()
    _add(root, logging.NullHandler())  # with a quiet console and no file: records end here, not in print
    if log_file is not None or verbose:
        root.setLevel(logging.DEBUG)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, mode="w", encoding="utf-8")
        to_file.setFormatter(logging.Formatter(FORMAT))
        to_file.addFilter(_Ours(logging.WARNING))
        _add(root, to_file)
        logging.captureWarnings(True)  # Python warnings become records (py.warnings), so the file keeps them
    if not console.quiet:
        # on a terminal, above the live bars; in a log, plain lines like the progress lines
        to_console: logging.Handler = RichHandler(console=console, show_path=False, markup=False) \
            if console.is_terminal else logging.StreamHandler(console.file)
        if not console.is_terminal:
            to_console.setFormatter(logging.Formatter("[%(asctime)s] %(name)s: %(message)s", "%H:%M:%S"))
        to_console.setLevel(logging.DEBUG if verbose else logging.WARNING)
        to_console.addFilter(_Ours(logging.CRITICAL + 1))  # only ours: library chatter stays off the terminal
        to_console.addFilter(lambda record: not getattr(record, "printed", False))
        _add(root, to_console)


def reset() -> None:
    """Remove what `setup` added (a second `setup` replaces it; a finished command leaves nothing behind)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "sftbench", False)]:
        root.removeHandler(handler)
        handler.close()
    logging.captureWarnings(False)


def _add(root: logging.Logger, handler: logging.Handler) -> None:
    handler.sftbench = True  # type: ignore[attr-defined]
    root.addHandler(handler)


def say(line: str, file: Any = None, level: int = logging.INFO) -> None:
    """Print a line for the person at the terminal, and keep it in the log (--log-file)."""
    print(line, file=file or sys.stdout)
    logging.getLogger("sftbench").log(level, line, extra=PRINTED)
