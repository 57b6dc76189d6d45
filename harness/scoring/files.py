"""Score a file of predictions against one or more reference files with any registered text metric, so
outputs made outside sftbench (another harness, an API model) are scored the same way as our own.

File formats, chosen by name:
- plain text (any name not ending in .jsonl): UTF-8 (a leading BOM is ignored), one item a line, lines separated
  by "\\n" only (a "\\r" before it is dropped, so CRLF files work; other Unicode line breaks stay inside the item).
  A trailing newline does not make an extra item; "\\n" alone is one empty item.
- JSONL (name ends in .jsonl): one JSON value a line, either a string or an object holding the text under
  "prediction" (predictions file) or "reference" (reference files), else under "text". The role decides the key,
  so one JSONL file with both keys can be passed as predictions and as references.
Reference file k gives reference k of every item. In the second and later reference files an empty line (JSONL:
null) means "this item has no k-th reference", which is how items get different numbers of references; the first
reference file must give every item a reference.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import cast

from harness.errors import ConfigError, DataError
from harness.scoring.metrics import LOSS_METRICS, METRICS, score

_KEYS = {"prediction": ("prediction", "text"), "reference": ("reference", "text")}


def score_files(metric: str, predictions: Path, references: list[Path], resamples: int = 1000,
                seed: int = 0) -> dict:
    """Read the files, check they line up, score; returns metric, value, ci_low, ci_high, n, signature."""
    METRICS.get(metric)  # an unknown name fails before any file is read
    if metric in LOSS_METRICS:
        raise ConfigError(f"metric '{metric}' needs per-item losses, not text files")
    if not references:
        raise DataError("no reference files given", predictions)
    preds = cast("list[str]", read_texts(Path(predictions), "prediction"))  # not optional, so never None
    columns = [read_texts(Path(path), "reference", optional=k > 0) for k, path in enumerate(references)]
    for path, column in zip(references, columns):
        if len(column) != len(preds):
            raise DataError(f"{len(column)} items but the predictions file {predictions} has {len(preds)}", path)
    refs = [[text for column in columns if (text := column[i]) is not None] for i in range(len(preds))]
    value = score(metric, preds, refs, resamples, seed)
    return {"metric": metric, "value": value.value, "ci_low": value.ci_low, "ci_high": value.ci_high,
            "n": value.n, "signature": value.signature or ""}


def read_texts(path: Path, role: str, optional: bool = False) -> list[str | None]:
    """One entry per item; None marks a missing reference, allowed only when `optional`."""
    lines = _read_lines(path)
    if path.name.lower().endswith(".jsonl"):
        return [_json_text(line, role, optional, path, number) for number, line in enumerate(lines, 1)]
    return [None if optional and line == "" else line for line in lines]


def _read_lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path) from None
    except OSError as err:
        raise DataError(f"cannot read: {err.strerror}", path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError("not valid UTF-8", path, raw[:err.start].count(b"\n") + 1) from None
    if text == "":
        raise DataError("file is empty", path)
    # split("\n"), not splitlines(): splitlines also breaks on \x0b, \x1c, \u2028 and others that can sit
    # inside a model's output, which would shift every later item.
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _json_text(line: str, role: str, optional: bool, path: Path, number: int) -> str | None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"bad JSON: {err.msg}", path, number) from None
    keys = _KEYS[role]
    if isinstance(value, dict):
        key = next((k for k in keys if k in value), None)
        if key is None:
            raise DataError(f"JSON object has no '{keys[0]}' or '{keys[1]}' key", path, number)
        value = value[key]
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise DataError(f"expected a JSON string (or an object with a '{keys[0]}' or '{keys[1]}' string), "
                        f"got {type(value).__name__}", path, number)
    return value
