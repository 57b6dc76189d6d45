"""`sftbench init --from data.csv`: a benchmark spec and a bake-off config from a CSV of text and label.

The text and label columns are found by name (or given); the labels are the values the data holds. Validation and
test are carved from the file here, stratified by label with a fixed seed, and written as JSONL beside the spec, so the
result reads like any bundled benchmark and `sftbench validate` and `run` take it as it is. Rows with the same text go
to the same split (a copy in train and in test would be a leak the data lint reports).
"""
from __future__ import annotations

import csv
import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.errors import ConfigError, DataError

TEXT_NAMES = ("text", "sentence", "review", "content", "message", "body", "input", "utterance", "document",
              "comment", "tweet", "query", "question", "prompt")
LABEL_NAMES = ("label", "labels", "class", "category", "intent", "sentiment", "target", "y", "tag", "topic")
FRACTIONS = {"validation": 0.1, "test": 0.2}  # of each label's rows; the rest is train
SEED = 0


@dataclass(frozen=True)
class Scaffold:
    """What `init` wrote and read: the two files, the columns, each label's count, each split's size."""

    benchmark: Path
    config: Path
    text: str
    label: str
    labels: dict[str, int]
    splits: dict[str, int]
    dropped: int  # rows without a text or a label


def read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and (file line, row) pairs of a CSV or TSV, read as RFC 4180 from the file (quoted line breaks kept;
    the UTF-8 BOM Excel writes dropped)."""
    if not path.is_file():
        raise DataError("file not found", path)
    if path.suffix.lower() not in (".csv", ".tsv"):
        raise DataError(f"init reads a .csv or .tsv file (got '{path.suffix or path.name}')", path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            header = [h.strip() for h in next(reader, [])]
            rows, start = [], reader.line_num + 1
            for cells in reader:
                line, start = start, reader.line_num + 1
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    raise DataError(f"expected {len(header)} columns, found {len(cells)}", path, line)
                rows.append((line, dict(zip(header, cells))))
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", path) from None
    except csv.Error as err:
        raise DataError(f"unreadable CSV: {err}", path) from None
    if not header or not rows:
        raise DataError("no header row and data rows", path)
    return header, rows


def pick_column(header: list[str], given: str | None, names: tuple[str, ...], what: str, flag: str,
                path: Path) -> str:
    """The given column, else the first column whose name is one of `names` (case-insensitive)."""
    if given is not None:
        if given not in header:
            raise ConfigError(f"no column '{given}' ({flag}); columns: {', '.join(header)}", path)
        return given
    by_lower = {h.lower(): h for h in header}
    found = next((by_lower[n] for n in names if n in by_lower), None)
    if found is None:
        raise ConfigError(f"no {what} column found by name (looked for {', '.join(names[:6])}...); columns: "
                          f"{', '.join(header)}; name it with {flag} COL", path)
    return found


def carve(rows: list[dict[str, str]], text: str, label: str) -> dict[str, list[dict[str, str]]]:
    """Train, validation and test, stratified by label with a fixed seed; rows keep their file order in each split."""
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row[text], []).append(i)
    by_label: dict[str, list[list[int]]] = {}
    for members in groups.values():
        by_label.setdefault(rows[members[0]][label], []).append(members)
    where: dict[int, str] = {}
    rng = random.Random(SEED)
    for value in sorted(by_label):
        units = by_label[value]
        rng.shuffle(units)
        n = len(units)
        counts = {s: min(round(f * n), n - 1) for s, f in FRACTIONS.items()}  # train keeps at least one
        counts["validation"] = min(counts["validation"], n - 1 - counts["test"])
        order = ["test"] * counts["test"] + ["validation"] * counts["validation"]
        for split, members in zip(order + ["train"] * n, units):
            where.update({i: split for i in members})
    return {s: [rows[i] for i in sorted(where) if where[i] == s] for s in ("train", "validation", "test")}


def init(data: Path, out: Path | None = None, text: str | None = None, label: str | None = None,
         force: bool = False) -> Scaffold:
    """Write benchmark.yaml, its three split files and bakeoff.yaml into `out` (default: a folder named after the
    data file, beside it)."""
    header, numbered = read_table(data)
    text_col = pick_column(header, text, TEXT_NAMES, "text", "--text", data)
    label_col = pick_column(header, label, LABEL_NAMES, "label", "--label", data)
    if text_col == label_col:
        raise ConfigError(f"the text and the label column are both '{text_col}'", data)
    rows = [row for _, row in numbered if row[text_col].strip() and row[label_col].strip()]
    for row in rows:
        row[label_col] = row[label_col].strip()
    counts = Counter(row[label_col] for row in rows)
    if len(counts) < 2:
        raise DataError(f"column '{label_col}' holds {len(counts)} distinct label(s); a classifier needs two or more",
                        data)
    splits = carve(rows, text_col, label_col)
    empty = [s for s, part in splits.items() if not part]
    if empty:
        raise DataError(f"{len(rows)} rows are too few to carve {' and '.join(empty)} from (each label gives "
                        f"{FRACTIONS['validation']:.0%} to validation and {FRACTIONS['test']:.0%} to test)", data)
    name = re.sub(r"[^a-z0-9]+", "_", data.stem.lower()).strip("_") or "my_benchmark"
    out = out or data.parent / name
    files = {"benchmark.yaml": benchmark_yaml(name, data, text_col, label_col, sorted(counts)),
             "bakeoff.yaml": bakeoff_yaml(name),
             **{f"{s}.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part)
                for s, part in splits.items()}}
    there = [f for f in files if (out / f).exists()]
    if there and not force:
        raise ConfigError(f"{', '.join(there)} already there; --force overwrites", out)
    out.mkdir(parents=True, exist_ok=True)
    for filename, content in files.items():
        (out / filename).write_text(content, encoding="utf-8")
    return Scaffold(out / "benchmark.yaml", out / "bakeoff.yaml", text_col, label_col, dict(sorted(counts.items())),
                    {s: len(part) for s, part in splits.items()}, len(numbered) - len(rows))


def label_texts(values: list[str]) -> dict[str, str]:
    """Label -> the words the model reads (`account_access` -> `account access`), unless that would merge two."""
    texts = {v: v.replace("_", " ").strip() for v in values}
    return texts if len(set(texts.values())) == len(texts) else {v: v for v in values}


def benchmark_yaml(name: str, data: Path, text: str, label: str, labels: list[str]) -> str:
    texts = label_texts(labels)
    spec = {
        "name": name,
        "version": 1,
        "task": "classification",
        "description": f"Written by `sftbench init` from {data.name}: validation and test carved from it, stratified "
                       f"by label, seed {SEED}, {FRACTIONS['validation']:.0%} and {FRACTIONS['test']:.0%} of each "
                       "label's rows (rows with the same text kept together).",
        "prompt": f"Classify this text as one of: {', '.join(texts.values())}.\nText: {{input}}\nLabel:",
        "fields": {"input": text, "target": label},
        "labels": texts,
        "metrics": ["accuracy", "macro_f1"],
        "splits": {s: f"{s}.jsonl" for s in ("train", "validation", "test")},
    }
    return yaml.dump(spec, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the prompt) double-quoted on one line with `\\n`, as the bundled specs write them."""


_Dumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style='"' if "\n" in value else None))


def bakeoff_yaml(name: str) -> str:
    return f"""# Written by `sftbench init`. Check it with `sftbench validate bakeoff.yaml`, smoke-run it with
# `sftbench run bakeoff.yaml --limit 50`, then run it whole with `sftbench run bakeoff.yaml`.
name: {json.dumps(name)}
candidates:
  - model: smollm2-135m
    learning_rate: 1e-3
  - model: minilm-l6
    learning_rate: 5e-3   # a new classification head needs a higher rate
recipe:
  tuner: lora
  epochs: 1
  batch_size: 8
  max_length: 192
  seed: 0
benchmarks:
  - spec: benchmark.yaml
probes:
  - general_knowledge   # forgetting, for the causal LM
  - paraphrase_probe    # forgetting, for the encoder
gates:
  - forgetting: "*"     # at most 10 points forgotten on whichever probe a candidate ran
    max: 0.10
  # - metric: {name}.accuracy   # and a bar to clear, once you know what is good enough
  #   op: ">="
  #   value: 0.8
"""
