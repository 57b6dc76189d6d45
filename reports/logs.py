"""Where log records go: `--log-file PATH` keeps everything (sftbench's own records down to debug detail, every
progress line printed, library warnings), each line timestamped; `--verbose` also shows sftbench's records on the
terminal (a unit's start and finish, kept units reused, unit keys, waits for another run's lock). Without either,
logging prints nothing: the terminal shows the progress display and the results only.

The harness logs with `logging.getLogger(__name__)` and never configures logging; the CLI calls `setup` once.
"""
from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

OURS = ("harness", "sftbench", "reports", "tuners")  # loggers kept down to debug; others from warning up
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Ours(logging.Filter):
    def __init__(self, level_for_others: int):
        super().__init__()
        self.level_for_others = level_for_others

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".")[0] in OURS or record.levelno >= self.level_for_others


def setup(console: Console, verbose: bool = False, log_file: Path | None = None) -> None:
    """Send log records to `log_file` (all of ours, with timestamps) and, with `verbose`, ours to `console`."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "sftbench", False)]:  # a second call replaces them
        root.removeHandler(handler)
        handler.close()
    if log_file is None and not verbose:
        return
    root.setLevel(logging.DEBUG)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, mode="w", encoding="utf-8")
        to_file.setFormatter(logging.Formatter(FORMAT))
        to_file.addFilter(_Ours(logging.WARNING))
        _add(root, to_file)
        logging.captureWarnings(True)  # Python warnings become records (py.warnings), so the file keeps them
    if verbose and not console.quiet:
        # on a terminal, above the live bars; in a log, plain lines like the progress lines
        to_console: logging.Handler = RichHandler(console=console, show_path=False, markup=False) \
            if console.is_terminal else logging.StreamHandler(console.file)
        if not console.is_terminal:
            to_console.setFormatter(logging.Formatter("[%(asctime)s] %(name)s: %(message)s", "%H:%M:%S"))
        to_console.addFilter(_Ours(logging.CRITICAL + 1))  # only ours: library chatter stays off the terminal
        to_console.addFilter(lambda record: record.name != "sftbench.progress")  # printed already
        _add(root, to_console)


def _add(root: logging.Logger, handler: logging.Handler) -> None:
    handler.sftbench = True  # type: ignore[attr-defined]
    root.addHandler(handler)
