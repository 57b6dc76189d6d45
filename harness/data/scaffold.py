"""`sftbench init --from data.csv`: a benchmark spec and a bake-off config from a CSV of text and label.

The text and label columns are found by name (or given); the labels are the values the data holds. Validation and
test are carved from the file by the spec itself (`splits: {validation: {from: train, fraction: 0.1, seed: 0,
stratify: true}}`, harness/data/carve.py), so the carving is reproducible, in the data hash, and checked for leakage
by `sftbench validate`. The spec reads the user's file where it is; only when some rows lack a text or a label are
the usable rows written beside the spec (`rows.jsonl`), since a run refuses an empty field.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.data.carve import Carve, carve_rows
from harness.data.files import read_table
from harness.errors import ConfigError, DataError

TEXT_NAMES = ("text", "sentence", "review", "content", "message", "body", "input", "utterance", "document",
              "comment", "tweet", "query", "question", "prompt")
LABEL_NAMES = ("label", "labels", "class", "category", "intent", "sentiment", "target", "y", "tag", "topic")
FRACTIONS = {"validation": 0.1, "test": 0.2}  # of each label's rows, carved in this order; the rest is train
SEED = 0


@dataclass(frozen=True)
class Scaffold:
    """What `init` wrote and read: the files, the columns, each label's count, each split's size."""

    benchmark: Path
    config: Path
    data: Path  # the file the spec's train split reads
    text: str
    label: str
    labels: dict[str, int]
    splits: dict[str, int]
    dropped: int  # rows without a text or a label (left out of `data`)


def pick_column(header: list[str], given: str | None, names: tuple[str, ...], what: str, flag: str,
                path: Path) -> str:
    """The given column, else the first column whose name is one of `names` (case-insensitive)."""
    if given is not None:
        if given not in header:
            raise ConfigError(f"no column '{given}' ({flag}); columns: {', '.join(header)}", path)
        return given
    by_lower = {h.strip().lower(): h for h in header}
    found = next((by_lower[n] for n in names if n in by_lower), None)
    if found is None:
        raise ConfigError(f"no {what} column found by name (looked for {', '.join(names[:6])}...); columns: "
                          f"{', '.join(header)}; name it with {flag} COL", path)
    return found


def init(data: Path, out: Path | None = None, text: str | None = None, label: str | None = None,
         force: bool = False) -> Scaffold:
    """Write benchmark.yaml and bakeoff.yaml into `out` (default: a folder named after the data file, beside it),
    then load the benchmark as a run would, for the split sizes."""
    if data.suffix.lower() not in (".csv", ".tsv"):
        raise DataError(f"init reads a .csv or .tsv file (got '{data.suffix or data.name}')", data)
    rows = [row for _, row in read_table(data).rows]
    if not rows:
        raise DataError("no data rows (a header row, then one row per example)", data)
    header = list(rows[0])
    text_col = pick_column(header, text, TEXT_NAMES, "text", "--text", data)
    label_col = pick_column(header, label, LABEL_NAMES, "label", "--label", data)
    if text_col == label_col:
        raise ConfigError(f"the text and the label column are both '{text_col}'", data)
    usable = [r for r in rows if str(r[text_col]).strip() and str(r[label_col]).strip()]
    counts = Counter(str(r[label_col]) for r in usable)
    if len(counts) < 2:
        raise DataError(f"column '{label_col}' holds {len(counts)} distinct label(s); a classifier needs two or more",
                        data)
    carves = {s: Carve("train", f, SEED, True) for s, f in FRACTIONS.items()}
    carve_rows(carves, [str(r[label_col]) for r in usable], data)  # too few rows to carve: say so before writing
    name = re.sub(r"[^a-z0-9]+", "_", data.stem.lower()).strip("_") or "my_benchmark"
    out = out or data.parent / name
    source = out / "rows.jsonl" if len(usable) < len(rows) else data
    files = {"benchmark.yaml": benchmark_yaml(name, data, source, out, text_col, label_col, sorted(counts)),
             "bakeoff.yaml": bakeoff_yaml(name)}
    if source != data:
        files["rows.jsonl"] = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in usable)
    there = [f for f in files if (out / f).exists()]
    if there and not force:
        raise ConfigError(f"{', '.join(there)} already there; --force overwrites", out)
    out.mkdir(parents=True, exist_ok=True)
    for filename, content in files.items():
        (out / filename).write_text(content, encoding="utf-8")
    from harness.config import SuiteRef
    from harness.data.specs import load_benchmark

    _, splits = load_benchmark(SuiteRef(spec=str(out / "benchmark.yaml")), out)
    return Scaffold(out / "benchmark.yaml", out / "bakeoff.yaml", source, text_col, label_col,
                    dict(sorted(counts.items())), {s: len(split.examples) for s, split in splits.items()},
                    len(rows) - len(usable))


def label_texts(values: list[str]) -> dict[str, str]:
    """Label -> the words the model reads (`account_access` -> `account access`), unless that would merge two."""
    texts = {v: v.replace("_", " ").strip() for v in values}
    return texts if len(set(texts.values())) == len(texts) else {v: v for v in values}


def benchmark_yaml(name: str, data: Path, source: Path, out: Path, text: str, label: str, labels: list[str]) -> str:
    texts = label_texts(labels)
    carved = {s: {"from": "train", "fraction": f, "seed": SEED, "stratify": True} for s, f in FRACTIONS.items()}
    spec = {
        "name": name,
        "version": 1,
        "task": "classification",
        "description": f"Written by `sftbench init` from {data.name}: validation and test carved from it, "
                       "stratified by label.",
        "prompt": f"Classify this text as one of: {', '.join(texts.values())}.\nText: {{input}}\nLabel:",
        "fields": {"input": text, "target": label},
        "labels": texts,
        "metrics": ["accuracy", "macro_f1"],
        "splits": {"train": Path(os.path.relpath(source.resolve(), out.resolve())).as_posix(), **carved},
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
