"""A data row's checks, shared by benchmarks, probes and bias suites: its required text fields and its label, each
error one line naming the file and the row's line (or its number, in formats without lines)."""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.data.files import Rows, read_table
from harness.errors import DataError

INTEGER = re.compile(r"-?[0-9]+")


def read_rows(path: Path, columns: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Rows of a JSONL, JSON (list), CSV, TSV or Parquet file as dicts. Errors name file and line."""
    return [row for _, row in read_numbered_rows(path, columns)]


def read_numbered_rows(path: Path, columns: tuple[str, ...] | None = None) -> Rows:
    """(file line, row) pairs; the line is None for formats without lines (JSON list, Parquet)."""
    return read_table(path, columns).rows


def row_error(message: str, path: str | Path, line: int | None, number: int) -> DataError:
    """A DataError at a row's file line, or at its row number in formats without lines."""
    return DataError(message if line else f"row {number}: {message}", path, line)


def field_text(row: dict[str, Any], key: str, path: str | Path, line: int | None, number: int) -> str:
    """A required text field of a row: present, a string or number, and not blank."""
    if key not in row:
        raise row_error(f"no column '{key}' (columns: {', '.join(map(str, row))})", path, line, number)
    value = row[key]
    if not isinstance(value, (str, int, float)):
        kind = "null" if value is None else type(value).__name__
        raise row_error(f"'{key}' must be a string or a number, got {kind}", path, line, number)
    if not str(value).strip():
        raise row_error(f"'{key}' is empty", path, line, number)
    return str(value)


def label_key(labels: Mapping[str, Any], by_index: bool, value: str, path: str | Path, line: int | None,
              number: int) -> str:
    """The declared label a cell names: a label key, or (labels given as a list, `by_index`) its integer index."""
    if value in labels:
        return value
    keys = list(labels)
    if by_index and INTEGER.fullmatch(value.strip()):
        index = int(value)
        if 0 <= index < len(keys):
            return keys[index]
        raise row_error(f"label {index} is out of range: labels has {len(keys)} ("
                        f"{', '.join(f'{i}: {k}' for i, k in enumerate(keys))})", path, line, number)
    raise row_error(f"label '{value}' is not among the declared labels ({', '.join(keys)})", path, line, number)
