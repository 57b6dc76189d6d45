"""Reading data files exactly: JSONL, JSON, CSV, TSV and Parquet rows, each named by the line it starts on.

CSV and TSV are read as RFC 4180 by the csv module from the whole decoded file (never from split lines), so a
quoted cell keeps its line breaks, and CRLF rows read as LF rows. A UTF-8 BOM (Excel's "CSV UTF-8") is dropped.
TSV quoting is `auto` by default: a TSV written by pandas or Python's csv module quotes the fields holding a tab,
a quote or a line break (or every field), and those quotes are removed; a plain TSV (SST-2, AG News), where a quote
is just a character, is read as it is. A spec's `quoting: minimal | none` overrides the guess. JSONL is split on
"\\n" only: `str.splitlines()` also splits on U+2028, U+2029, \\x85 and other separators that may stand inside a
JSON string. A folder saved by Hugging Face `datasets` (`Dataset.save_to_disk`: Arrow stream files named in its
state.json, beside dataset_info.json) is read with pyarrow, so `datasets` itself is not needed to read one.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import DataError

QUOTING = ("auto", "minimal", "none")
FORMATS = (".jsonl", ".json", ".csv", ".tsv", ".parquet")
# line breaks of str.splitlines() beyond \n and \r: the reader of sftbench 0.1 split CSV/TSV lines on them too
OTHER_BREAK = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# a field quoted the csv way: opened after a tab, a line break or the file's start, closed before one or the end
QUOTED_FIELD = re.compile(r'(?<![^\t\r\n])"((?:[^"]|"")*)"(?![^\t\r\n])')

Rows = list[tuple[int | None, dict[str, Any]]]


@dataclass(frozen=True)
class Table:
    rows: Rows  # (line the row starts on, row); the line is None where a format has no lines (JSON list, Parquet)
    # sftbench 0.1 read CSV/TSV from split lines: True when it read this file's rows differently (a BOM, a
    # multi-line or separator-holding cell, a quoted TSV), so a data hash of its bytes alone would reuse units
    # computed from the misread rows. (JSONL such a reader misread failed outright, so no unit was kept.)
    revised: bool = False


def read_table(path: Path, columns: tuple[str, ...] | None = None, quoting: str = "auto") -> Table:
    """The rows of one data file. Every error is one line naming the file (and the line, where known)."""
    if path.is_dir():
        return Table(_saved_dataset_rows(path))
    if not path.is_file():
        raise DataError("data file not found", path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return Table(_parquet_rows(path))
    if suffix not in FORMATS:
        raise DataError(f"unsupported data format '{suffix}' (use {', '.join(FORMATS)})", path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        hint = " (from Excel, save it as \"CSV UTF-8\")" if suffix in (".csv", ".tsv") else ""
        raise DataError(f"not UTF-8 text{hint}", path, data[: err.start].count(b"\n") + 1) from None
    bom = text.startswith("\ufeff")
    text = text.removeprefix("\ufeff")
    if suffix == ".jsonl":
        return Table(_jsonl_rows(text, path))
    if suffix == ".json":
        return Table(_json_rows(text, path))
    delimiter = "\t" if suffix == ".tsv" else ","
    mode = quoting if quoting != "auto" else "minimal" if delimiter == "," or quoted_tsv(text) else "none"
    rows = _delimited_rows(text, path, delimiter, columns, mode)
    revised = (bom or OTHER_BREAK.search(text) is not None or (delimiter == "\t" and mode == "minimal" and '"' in text)
               or (mode == "minimal" and any("\n" in v or "\r" in v for _, row in rows for v in row.values())))
    return Table(rows, revised)


def quoted_tsv(text: str) -> bool:
    """Whether a TSV was written with csv-style quoting. A minimal-quoting writer (pandas, csv.writer) quotes only
    fields holding a tab, a quote or a line break, and an all-quoting one quotes every field; the file must also
    parse strictly, with one width. Anything else (a field that merely starts and ends with a quote) is plain."""
    if '"' not in text:
        return False
    try:
        widths = [len(r) for r in csv.reader(io.StringIO(text, newline=""), delimiter="\t", strict=True) if r]
    except csv.Error:
        return False
    if len(set(widths)) != 1:
        return False
    fields = QUOTED_FIELD.findall(text)
    needed = any(c in f for f in fields for c in ('\t', '\n', '\r', '""'))
    return needed or len(fields) == sum(widths)


def _parquet_rows(path: Path) -> Rows:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading Parquet needs pyarrow (a dependency of sftbench): pip install pyarrow",
                        path) from None
    try:
        return [(None, row) for row in pq.read_table(path).to_pylist()]
    except Exception as err:  # pyarrow raises its own error kinds (ArrowInvalid, OSError) for a bad file
        raise DataError(f"cannot read Parquet: {' '.join(str(err).split())}", path) from None


def _jsonl_rows(text: str, path: Path) -> Rows:
    rows: Rows = []
    for number, line in enumerate(text.split("\n"), 1):  # "\n" only: see the module docstring
        if not line.strip():
            continue
        try:
            row = json.loads(line)  # a CRLF line's "\r" is whitespace to JSON
        except json.JSONDecodeError as err:
            raise DataError(f"invalid JSON: {err.msg}", path, number) from None
        if not isinstance(row, dict):
            raise DataError("each JSON line must be an object", path, number)
        rows.append((number, row))
    return rows


def _json_rows(text: str, path: Path) -> Rows:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"invalid JSON: {err.msg}", path, err.lineno) from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError("a .json data file must hold a list of objects", path)
    return [(None, row) for row in data]


def _delimited_rows(text: str, path: Path, delimiter: str, columns: tuple[str, ...] | None, mode: str) -> Rows:
    # newline="": the csv module sees every "\r\n" and every line break inside a quoted cell as written
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                        quoting=csv.QUOTE_NONE if mode == "none" else csv.QUOTE_MINIMAL)
    rows: Rows = []
    start = 1  # a quoted cell may span lines: a row is named by the line it starts on
    try:
        header = list(columns) if columns else next(reader, [])
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not cells:
                continue
            if len(cells) != len(header):
                spans = f"; the row runs to line {reader.line_num}: a quote not closed?" if reader.line_num > line \
                    else ""
                raise DataError(f"expected {len(header)} columns, found {len(cells)}{spans}", path, line)
            rows.append((line, dict(zip(header, cells))))
    except csv.Error as err:
        raise DataError(f"cannot read {'TSV' if delimiter == chr(9) else 'CSV'}: {err}", path, start) from None
    return rows


def file_digest(path: Path) -> str:
    """sha256 of a data file's bytes, or of a saved dataset folder's Arrow files (in their state.json order)."""
    if not path.is_dir():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    digest = hashlib.sha256()
    for arrow in _arrow_files(path):
        with arrow.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _arrow_files(folder: Path) -> list[Path]:
    """The Arrow files of a `save_to_disk` folder, as its state.json lists them."""
    if (folder / "dataset_dict.json").is_file():
        names = sorted(p.name for p in folder.iterdir() if (p / "state.json").is_file())
        raise DataError(f"a saved DatasetDict: name one of its splits' folders ({', '.join(names)})", folder)
    state = folder / "state.json"
    if not state.is_file():
        raise DataError("a folder, but not one saved by datasets' save_to_disk (no state.json)", folder)
    try:
        files = [folder / str(entry["filename"]) for entry in json.loads(state.read_text())["_data_files"]]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise DataError("state.json does not list the dataset's _data_files", state) from None
    missing = next((f for f in files if not f.is_file()), None)
    if missing is not None:
        raise DataError(f"state.json names {missing.name}, which is not in the folder", folder)
    return files


def _saved_dataset_rows(folder: Path) -> Rows:
    import pyarrow as pa

    rows: Rows = []
    for arrow in _arrow_files(folder):
        try:
            with pa.memory_map(str(arrow)) as source:
                rows += [(None, row) for row in pa.ipc.open_stream(source).read_all().to_pylist()]
        except pa.ArrowInvalid as err:
            raise DataError(f"cannot read Arrow stream: {' '.join(str(err).split())}", arrow) from None
    return rows
