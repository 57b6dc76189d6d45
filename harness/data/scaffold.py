"""`sftbench init --from data.csv`: a benchmark spec and a bake-off config from a data file of text(s) and a label.

The file is CSV, TSV, JSONL, JSON or Parquet (read by harness/data/files.py). The text columns and the label column
are found by name (or given): a sentence pair (premise/hypothesis, sentence1/sentence2, question/answer, text_a/
text_b...) by its two names, else one text column; the labels are the values the data holds. Several text columns
are each a field of the spec: the causal LM's prompt names them all, and an encoder reads two as a text pair
(docs/benchmarks.md, "Several input fields"). Validation and test are carved from the file by the spec itself
(`splits: {validation: {from: train, fraction: 0.1, seed: 0, stratify: true}}`, harness/data/carve.py), so the
carving is reproducible, in the data hash, and checked for leakage by `sftbench validate`. The spec reads the
user's file where it is; only when some rows lack a text or a label are the usable rows written beside the spec
(`rows.jsonl`), since a run refuses an empty field.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.config import SuiteRef
from harness.data.carve import Carve, carve_rows
from harness.data.files import read_table
from harness.data.specs import load_benchmark
from harness.errors import ConfigError, DataError

TEXT_NAMES = ("text", "sentence", "review", "content", "message", "body", "input", "utterance", "document",
              "comment", "tweet", "query", "question", "prompt")
# two columns read together, first to second (NLI, paraphrase, question answering, retrieval): the first pair found
PAIR_NAMES = (("premise", "hypothesis"), ("sentence1", "sentence2"), ("sentence_a", "sentence_b"),
              ("text_a", "text_b"), ("text1", "text2"), ("question1", "question2"), ("question", "answer"),
              ("question", "context"), ("question", "passage"), ("question", "sentence"), ("query", "document"),
              ("query", "passage"), ("claim", "evidence"))
LABEL_NAMES = ("label", "labels", "class", "category", "intent", "sentiment", "target", "y", "tag", "topic",
               "gold_label")
FRACTIONS = {"validation": 0.1, "test": 0.2}  # of each label's rows, carved in this order; the rest is train
SEED = 0
RESERVED = ("target", "references", "messages")  # keys of a spec's `fields` that are not template variables


@dataclass(frozen=True)
class Scaffold:
    """What `init` wrote and read: the files, the columns used and left out, each label's count, each split's size."""

    benchmark: Path
    config: Path
    data: Path  # the file the spec's train split reads
    texts: tuple[str, ...]  # the text columns, in the order the model reads them
    label: str
    left_out: tuple[str, ...]  # columns of the file the model does not read
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


def pick_texts(header: list[str], given: list[str] | None, path: Path) -> tuple[str, ...]:
    """The given text columns (--text, repeated), else a sentence pair found by its two names, else one text
    column found by name."""
    if given:
        texts = tuple(pick_column(header, g, (), "text", "--text", path) for g in given)
        if len(set(texts)) < len(texts):
            raise ConfigError(f"--text names a column twice ({', '.join(texts)})", path)
        return texts
    by_lower = {h.strip().lower(): h for h in header}
    pair = next(((by_lower[a], by_lower[b]) for a, b in PAIR_NAMES if a in by_lower and b in by_lower), None)
    return pair or (pick_column(header, None, TEXT_NAMES, "text", "--text", path),)


def usable(value: Any) -> bool:
    """A cell a run reads as a field (harness/data/rows.py field_text): a string or number, not blank."""
    return isinstance(value, (str, int, float)) and bool(str(value).strip())


def init(data: Path, out: Path | None = None, text: list[str] | None = None, label: str | None = None,
         force: bool = False) -> Scaffold:
    """Write benchmark.yaml and bakeoff.yaml into `out` (default: a folder named after the data file, beside it),
    then load the benchmark as a run would, for the split sizes."""
    rows = [row for _, row in read_table(data).rows]
    if not rows:
        raise DataError("no data rows (a header row, then one row per example)", data)
    header = list(dict.fromkeys(str(k) for row in rows for k in row))  # JSONL rows may differ in their keys
    texts = pick_texts(header, text, data)
    label_col = pick_column(header, label, LABEL_NAMES, "label", "--label", data)
    if label_col in texts:
        raise ConfigError(f"the text and the label column are both '{label_col}'", data)
    kept = [r for r in rows if all(usable(r.get(c)) for c in (*texts, label_col))]
    counts = Counter(str(r[label_col]) for r in kept)
    if len(counts) < 2:
        raise DataError(f"column '{label_col}' holds {len(counts)} distinct label(s); a classifier needs two or more",
                        data)
    carves = {s: Carve("train", f, SEED, True) for s, f in FRACTIONS.items()}
    carve_rows(carves, [str(r[label_col]) for r in kept], data)  # too few rows to carve: say so before writing
    name = re.sub(r"[^a-z0-9]+", "_", data.stem.lower()).strip("_") or "my_benchmark"
    out = out or data.parent / name
    source = out / "rows.jsonl" if len(kept) < len(rows) else data
    files = {"benchmark.yaml": benchmark_yaml(name, data, source, out, texts, label_col, sorted(counts)),
             "bakeoff.yaml": bakeoff_yaml(name)}
    if source != data:
        files["rows.jsonl"] = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in kept)
    there = [f for f in files if (out / f).exists()]
    if there and not force:
        raise ConfigError(f"{', '.join(there)} already there; --force overwrites", out)
    out.mkdir(parents=True, exist_ok=True)
    for filename, content in files.items():
        (out / filename).write_text(content, encoding="utf-8")
    _, splits = load_benchmark(SuiteRef(spec=str(out / "benchmark.yaml")), out)
    return Scaffold(out / "benchmark.yaml", out / "bakeoff.yaml", source, texts, label_col,
                    tuple(h for h in header if h not in (*texts, label_col)), dict(sorted(counts.items())),
                    {s: len(split.examples) for s, split in splits.items()}, len(rows) - len(kept))


def label_texts(values: list[str]) -> dict[str, str]:
    """Label -> the words the model reads (`account_access` -> `account access`), unless that would merge two."""
    texts = {v: v.replace("_", " ").strip() for v in values}
    return texts if len(set(texts.values())) == len(texts) else {v: v for v in values}


def field_names(texts: tuple[str, ...]) -> dict[str, str]:
    """Template variable -> text column: `input` for one column; for several, each column's name as a variable
    (`premise`, `hypothesis`; `Sentence 1` -> `sentence_1`), made unique."""
    if len(texts) == 1:
        return {"input": texts[0]}
    names: dict[str, str] = {}
    for i, column in enumerate(texts, 1):
        var = re.sub(r"\W+", "_", column.strip().lower()).strip("_")
        var = var if var and not var[0].isdigit() and var not in RESERVED else f"text{i}"
        names[var if var not in names else f"{var}_{i}"] = column
    return names


def benchmark_yaml(name: str, data: Path, source: Path, out: Path, texts: tuple[str, ...], label: str,
                   labels: list[str]) -> str:
    shown = label_texts(labels)
    fields = field_names(texts)
    carved = {s: {"from": "train", "fraction": f, "seed": SEED, "stratify": True} for s, f in FRACTIONS.items()}
    choices = ", ".join(shown.values())
    if len(fields) == 1:
        prompt = f"Classify this text as one of: {choices}.\nText: {{input}}\nLabel:"
        encoder: dict[str, Any] = {}
    else:
        what = "pair" if len(fields) == 2 else "example"
        lines = "".join(f"\n{column.strip().replace('_', ' ').capitalize()}: {{{var}}}"
                        for var, column in fields.items())
        prompt = f"Classify this {what} as one of: {choices}.{lines}\nLabel:"
        # two fields: a text pair ([CLS] a [SEP] b [SEP]); more: one text, a field a line
        templates = ["{" + var + "}" for var in fields]
        encoder = {"encoder_input": templates if len(templates) == 2 else "\n".join(templates)}
    spec = {
        "name": name,
        "version": 1,
        "task": "classification",
        "description": f"Written by `sftbench init` from {data.name}: validation and test carved from it, "
                       "stratified by label.",
        "prompt": prompt,
        **encoder,
        "fields": {**fields, "target": label},
        "labels": shown,
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
