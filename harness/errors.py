"""Errors that end a run, each mapped to one documented exit code.

0 all gates pass, 1 a gate failed, 2 usage/config/data error, 3 runtime failure.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_RUNTIME = 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class SftbenchError(Exception):
    """An error with a one-line message for the user and the exit code it maps to."""

    exit_code = EXIT_RUNTIME

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        return f"{where}{self.message}"


class ConfigError(SftbenchError):
    """A malformed bake-off config, benchmark spec or probe suite."""

    exit_code = EXIT_USAGE


class DataError(SftbenchError):
    """A data file that is missing, unreadable, empty or lacking a column."""

    exit_code = EXIT_USAGE


class ModelError(SftbenchError):
    """A candidate that cannot be resolved or loaded."""

    exit_code = EXIT_USAGE


class RunFailure(SftbenchError):
    """Something broke while running (NaN loss, out of memory, a crash inside a library)."""

    exit_code = EXIT_RUNTIME


def did_you_mean(name: str, known: Iterable[str] | Mapping[str, str]) -> str:
    """`; did you mean 'x'?` for the closest name in `known` (difflib's ratio 0.6 or more), else ''. With a
    mapping, `name` is matched against its keys and the value is shown (a metric matched, `bench.metric` shown)."""
    shown = known if isinstance(known, Mapping) else {k: k for k in known}
    close = difflib.get_close_matches(name, list(shown), n=1)
    return f"; did you mean '{shown[close[0]]}'?" if close else ""
