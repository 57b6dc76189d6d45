"""Benchmark and probe specs (`benchmark.yaml`, `probe.yaml`) and the data files they name.

A spec names its data files relative to itself, maps file columns to fields, and declares its task
kind, labels or references, prompt template, metrics and `version`. Every loaded split carries the
sha256 of the bytes it was read from, so stored results can say exactly what they were scored on (folded with
how it was read where that differs from the default: a `quoting:` setting, a carved split, harness/data/carve.py).
Files are read by harness/data/files.py.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any

from harness.config import BUNDLED_DIR, SuiteRef, read_yaml
from harness.data.benchmark import SCORED_SPLITS as SCORED_SPLITS
from harness.data.benchmark import SPLITS, TASK_KINDS, BenchmarkSpec, Example, Split, SplitSource
from harness.data.carve import carve_digest, carve_rows, parse_carve
from harness.data.files import QUOTING, file_digest, read_table
from harness.data.hub import hub_rows, parse_hub
from harness.data.prompting import (
    Turn,
    chat_prompt,
    chat_turns,
    compose,
    draw_shots,
    parse_encoder_input,
    parse_few_shot,
)
from harness.data.rows import field_text, label_key, row_error
from harness.errors import ConfigError, DataError
from harness.scoring.metrics import METRICS

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(template: str) -> list[str]:
    return PLACEHOLDER.findall(template)


def render(template: str, values: dict[str, str]) -> str:
    """`{name}` replaced by values[name], in one pass: a value that itself contains `{x}` stays as it is."""
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def render_example(spec: BenchmarkSpec, values: dict[str, str], target: str, references: tuple[str, ...] = (),
                   raw: dict[str, Any] | None = None, line: int | None = None,
                   shots: list[tuple[str, str]] | None = None) -> Example:
    """The one place where a row becomes each kind's input: the causal LM's prompt (with the spec's system prompt
    and the (prompt, answer) shots before it), and the encoder's text (or text pair) without the instruction
    wording, which a classification head over a sentence encoder cannot use."""
    missing = [name for name in spec.input_fields if name not in values]
    if missing:
        raise DataError(f"no value for input field '{missing[0]}'", spec.path, line)
    encoder = tuple(render(t, values) for t in spec.encoder_input)
    prompt, turns = compose(spec.system, shots or [], render(spec.prompt, values))
    return Example(prompt=prompt, encoder_text=encoder[0] if len(encoder) == 1 else (encoder[0], encoder[1]),
                   target=target, references=references, raw=raw if raw is not None else {}, line=line, turns=turns)


def chat_example(spec: BenchmarkSpec, turns: tuple[Turn, ...], raw: dict[str, Any], line: int | None) -> Example:
    """A chat row: the turns before its last assistant turn are the prompt (the spec's system prompt first, unless
    the row has its own), the last assistant turn the target and the only reference."""
    if spec.system and turns[0][0] != "system":
        turns = (("system", spec.system), *turns)
    context, answer = turns[:-1], turns[-1][1]
    return Example(prompt=chat_prompt(context), encoder_text=chat_prompt(context), target=answer, references=(answer,),
                   raw=raw, line=line, turns=context, learn_turns=True)


def find_spec(ref: str, base: Path, filename: str) -> Path:
    """A bundled name (`support_intents`) or a path to a YAML spec (or to its folder)."""
    candidates = [base / ref, Path(ref), BUNDLED_DIR / ref]
    for c in candidates:
        if c.is_file():
            return c.resolve()
        if c.is_dir() and (c / filename).is_file():
            return (c / filename).resolve()
    bundled = sorted(p.parent.name for p in BUNDLED_DIR.glob(f"*/{filename}"))
    raise ConfigError(f"no {filename} found for '{ref}'; bundled: {', '.join(bundled)}")


def load_benchmark_spec(ref: str, base: Path) -> BenchmarkSpec:
    path = find_spec(ref, base, "benchmark.yaml")
    raw = read_yaml(path)
    try:
        return _parse_benchmark(raw, path)
    except ConfigError as err:
        raise ConfigError(err.message, path) from None


def _require(raw: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in raw:
        raise ConfigError(f"missing required key '{key}'")
    if not isinstance(raw[key], kind):
        raise ConfigError(f"'{key}' has the wrong type ({type(raw[key]).__name__})")
    return raw[key]


BENCHMARK_KEYS = {"name", "version", "task", "description", "prompt", "encoder_input", "fields", "labels", "metrics",
                  "main_metric", "splits", "columns", "max_new_tokens", "stop", "quoting", "system", "few_shot",
                  "few_shot_seed"}
TARGET_KEYS = ("target", "references")  # every other key of `fields` is an input: template variable -> column


def _parse_benchmark(raw: dict[str, Any], path: Path) -> BenchmarkSpec:
    unknown = sorted(set(raw) - BENCHMARK_KEYS)
    if unknown:
        raise ConfigError(f"unknown key '{unknown[0]}'; known: {', '.join(sorted(BENCHMARK_KEYS))}")
    task = _require(raw, "task", str)
    if task not in TASK_KINDS:
        raise ConfigError(f"unknown task kind '{task}'; known: {', '.join(TASK_KINDS)}")
    fields = _require(raw, "fields", dict)
    if "messages" in fields:
        return _parse_chat(raw, path, fields)
    inputs = {str(k): v for k, v in sorted(fields.items(), key=lambda kv: kv[0] != "input") if k not in TARGET_KEYS}
    if not inputs:
        raise ConfigError("fields.input must name the input column")
    bad = next((k for k, v in inputs.items() if not isinstance(v, str)), None)
    if bad is not None:
        raise ConfigError(f"fields.{bad} must name a column")
    refs = fields.get("references") or ([fields["target"]] if isinstance(fields.get("target"), str) else [])
    if isinstance(refs, str):
        refs = [refs]
    target = fields.get("target")
    named = [*refs, *([target] if target else [])] if isinstance(refs, list) and refs else []
    if not named or not all(isinstance(r, str) for r in named):
        raise ConfigError("fields.target (or fields.references) must name the target column(s)")
    labels: dict[str, str] = {}
    if task == "classification":
        raw_labels = _require(raw, "labels", (dict, list))
        labels = ({str(k): str(v) for k, v in raw_labels.items()} if isinstance(raw_labels, dict)
                  else {str(x): str(x) for x in raw_labels})
        if len(labels) < 2:
            raise ConfigError("a classification benchmark needs at least two labels")
        if len(set(labels.values())) != len(labels):
            raise ConfigError("label texts must be distinct")
    splits = _splits(_require(raw, "splits", dict), path, task, raw.get("quoting", "auto"))
    prompt = _require(raw, "prompt", str)
    encoder_input = parse_encoder_input(raw.get("encoder_input"), inputs)
    for key, templates in (("prompt", (prompt,)), ("encoder_input", encoder_input)):
        used = [name for t in templates for name in placeholders(t)]
        if not used:
            names = ", ".join("{" + name + "}" for name in inputs)
            raise ConfigError(f"{key} must contain {names}" if len(inputs) == 1 else
                              f"{key} must contain at least one of {names}")
        unknown_field = next((name for name in used if name not in inputs), None)
        if unknown_field:
            raise ConfigError(f"{key} uses {{{unknown_field}}}, which is not among fields ({', '.join(inputs)})")
    metrics, main, columns, max_new_tokens, stop, context = _common(raw, path.parent)
    return BenchmarkSpec(
        name=str(raw.get("name") or path.parent.name), version=str(_require(raw, "version", (str, int, float))),
        task=task, path=str(path), prompt=prompt, input_fields=inputs, encoder_input=encoder_input,
        target_field=target or refs[0], reference_fields=tuple(refs), labels=labels, metrics=metrics, main_metric=main,
        splits=splits, columns=columns, max_new_tokens=max_new_tokens, description=str(raw.get("description", "")),
        stop=stop, **context)


def _parse_chat(raw: dict[str, Any], path: Path, fields: dict[str, Any]) -> BenchmarkSpec:
    """A chat-data benchmark: `fields: {messages: <column>}`, a generation task with no prompt template."""
    column = fields["messages"]
    if set(fields) != {"messages"} or not isinstance(column, str):
        raise ConfigError("fields.messages must name the column of {role, content} messages, and be the only field "
                          "(the last assistant turn is the target)")
    if raw["task"] != "generation":
        raise ConfigError("chat data (fields.messages) is for a generation benchmark: set task: generation")
    for key in ("prompt", "encoder_input", "labels", "few_shot"):
        if key in raw:
            raise ConfigError(f"'{key}' does not apply to chat data (fields.messages): the messages are the prompt")
    splits = _splits(_require(raw, "splits", dict), path, "generation", raw.get("quoting", "auto"))
    metrics, main, columns, max_new_tokens, stop, context = _common(raw, path.parent)
    return BenchmarkSpec(
        name=str(raw.get("name") or path.parent.name), version=str(_require(raw, "version", (str, int, float))),
        task="generation", path=str(path), prompt="", input_fields={"messages": column}, encoder_input=("",),
        target_field=column, reference_fields=(column,), labels={}, metrics=metrics, main_metric=main, splits=splits,
        columns=columns, max_new_tokens=max_new_tokens, description=str(raw.get("description", "")), stop=stop,
        messages=column, **context)


def _common(raw: dict[str, Any], spec_dir: Path) -> tuple[tuple[str, ...], str, tuple[str, ...] | None, int,
                                                          tuple[str, ...], dict[str, Any]]:
    """The keys every benchmark shares: metrics (names, or evaluate modules relative to the spec's folder),
    main_metric, columns, max_new_tokens, stop, and the prompt's context (system, few_shot, few_shot_seed) with the
    evaluate metrics declared."""
    entries = _require(raw, "metrics", list)
    if not entries:
        raise ConfigError("'metrics' must name at least one metric")
    declared = []
    if any(isinstance(m, dict) and "evaluate" not in m for m in entries):
        raise ConfigError("a 'metrics' entry is a metric's name or {evaluate: MODULE, higher_is_better: ...}")
    if any(isinstance(m, dict) for m in entries):
        from harness.scoring.hf_evaluate import parse_entry

        declared = [parse_entry(m, spec_dir) for m in entries if isinstance(m, dict) and "evaluate" in m]
    named = iter(declared)
    metrics = tuple(next(named).name if isinstance(m, dict) and "evaluate" in m else str(m) for m in entries)
    for m in metrics:
        METRICS.get(m)
    main = raw.get("main_metric", metrics[0] if metrics else "")
    if main not in metrics:
        raise ConfigError(f"main_metric '{main}' is not among metrics")
    columns = raw.get("columns")
    if columns is not None and not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
        raise ConfigError("'columns' must be a list of column names")
    max_new_tokens = raw.get("max_new_tokens", 64)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ConfigError(f"'max_new_tokens' must be a positive integer (got {max_new_tokens!r})")
    stop = raw.get("stop") or []
    system = raw.get("system", "")
    if not isinstance(system, str):
        raise ConfigError(f"'system' must be a text (got {type(system).__name__})")
    seed = raw.get("few_shot_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"'few_shot_seed' must be an integer (got {seed!r})")
    context = {"system": system, "few_shot": parse_few_shot(raw.get("few_shot", 0)), "few_shot_seed": seed,
               "evaluate_metrics": tuple(declared)}
    return (metrics, main, tuple(columns) if columns else None, max_new_tokens,
            (stop,) if isinstance(stop, str) else tuple(str(x) for x in stop), context)


def _splits(raw: dict[str, Any], path: Path, task: str, quoting: Any) -> dict[str, SplitSource]:
    """`splits`: split name -> data file, or -> {from: train, fraction, seed, stratify} for a carved split."""
    if quoting not in QUOTING:
        raise ConfigError(f"quoting must be one of {', '.join(QUOTING)} (got {quoting!r})")
    for s in raw:
        if s not in SPLITS:
            raise ConfigError(f"unknown split '{s}'; known: {', '.join(SPLITS)}")
    for s in ("train", "test"):
        if s not in raw:
            raise ConfigError(f"missing split '{s}'")
    hubs = {s: parse_hub(s, f["dataset"]) for s, f in raw.items() if isinstance(f, dict) and "dataset" in f}
    files = {s: SplitSource(hubs[s].describe(), str(quoting), hub=hubs[s]) if s in hubs else
             SplitSource(str((path.parent / str(f)).resolve()), str(quoting)) for s, f in raw.items()
             if s in hubs or not isinstance(f, dict)}
    if "train" not in files:
        raise ConfigError("splits.train must name a data file, a saved dataset folder or a hub dataset")
    splits = {}
    for s, f in raw.items():  # the spec's order, as before carving existed
        carve = parse_carve(s, f, task) if isinstance(f, dict) and s not in hubs else None
        splits[s] = dataclasses.replace(files[carve.source], carve=carve) if carve else files[s]
    return splits


def _examples(spec: BenchmarkSpec, split: str, path: Path, rows: list[tuple[int, int | None, dict[str, Any]]],
              pool: list[tuple[str, str]] | None = None) -> list[Example]:
    """(row number, file line, row) -> examples rendered through the prompt, every field checked; with a pool of
    (prompt, answer) train shots, spec.few_shot of them before each prompt."""
    # training splits need the target; scored splits need every reference (multi-reference test sets)
    needed = (spec.target_field,) if split in ("train", "validation") else spec.reference_fields
    examples = []
    for index, (number, line, row) in enumerate(rows):
        if spec.messages:
            if spec.messages not in row:
                raise row_error(f"no column '{spec.messages}' (columns: {', '.join(map(str, row))})", path, line,
                                number)
            examples.append(chat_example(spec, chat_turns(row[spec.messages], spec.messages, (str(path), line)), row,
                                         line))
            continue
        values = {name: field_text(row, column, path, line, number) for name, column in spec.input_fields.items()}
        refs = tuple(field_text(row, k, path, line, number) for k in needed)
        target = field_text(row, spec.target_field, path, line, number) if spec.target_field in row else refs[0]
        if spec.task == "classification":
            target = label_key(spec.labels, spec.labels_by_index, target, path, line, number)
            refs = tuple(label_key(spec.labels, spec.labels_by_index, r, path, line, number) for r in refs)
        shots = draw_shots(pool, spec.few_shot, spec.few_shot_seed, index, render(spec.prompt, values)) if pool else []
        examples.append(render_example(spec, values, target, refs, row, line, shots))
    return examples


def _shot_pool(spec: BenchmarkSpec, train: Split) -> list[tuple[str, str]]:
    """The train rows as few-shot (prompt, answer) pairs: the prompt without system or shots, the answer a causal
    LM is tuned to give."""
    return [(render(spec.prompt, {name: str(ex.raw[column]) for name, column in spec.input_fields.items()}),
             spec.labels[ex.target] if spec.task == "classification" else ex.target) for ex in train.examples]


def load_split(spec: BenchmarkSpec, split: str, limit: int | None = None, train: Split | None = None) -> Split:
    """Read one split, render inputs through the prompt template, check every field is present. A scored split of
    a few-shot spec draws its shots from `train` (the train split as the run uses it), whose hash joins its own."""
    source = spec.splits[split]
    path = Path(source.path)
    if source.hub:
        table, digest = hub_rows(source.hub, spec.name, source.carve.source if source.carve else split, spec.path)
    else:
        table = read_table(path, spec.columns, source.quoting)
        digest = file_digest(path)  # the bundled files' hashes are exactly the sha256 of their bytes
    if not table.rows:
        raise DataError(f"split '{split}' is empty", path)
    rows = [(number, line, row) for number, (line, row) in enumerate(table.rows, 1)]
    if table.revised:  # read differently from sftbench 0.1: units kept from the misread rows are not reused
        digest = hashlib.sha256(f"{digest}:read exactly".encode()).hexdigest()
    if source.quoting != "auto":
        digest = hashlib.sha256(f"{digest}:quoting {source.quoting}".encode()).hexdigest()
    carves = {name: c for name, c in spec.carves().items() if c.source == (source.carve.source if source.carve
                                                                         else split)}
    if carves:
        targets = [ex.target for ex in _examples(spec, "train", path, rows)]
        rows = [rows[i] for i in carve_rows(carves, targets, path)[split]]
        digest = carve_digest(digest, carves, split)
    pool = _shot_pool(spec, train) if spec.few_shot and train is not None and split != "train" else None
    examples = _examples(spec, split, path, rows, pool)
    if limit is not None and limit < len(examples):
        examples = examples[:limit]
        digest = hashlib.sha256(f"{digest}:first{limit}".encode()).hexdigest()
    if pool:
        digest = hashlib.sha256(f"{digest}:few_shot {spec.few_shot} seed {spec.few_shot_seed} from "
                                f"{train.sha256 if train else ''}".encode()).hexdigest()
    return Split(name=split, examples=examples, sha256=digest, path=str(path),
                 carved_from=source.carve.source if source.carve else None)


def load_benchmark(ref: SuiteRef, base: Path) -> tuple[BenchmarkSpec, dict[str, Split]]:
    if ref.lm_eval:  # an lm-eval task, read through lm-eval's TaskManager (the `lmeval` extra)
        from harness.data.lmeval import load_task_benchmark

        return load_task_benchmark(ref, base)
    spec = load_benchmark_spec(ref.spec, base)
    caps = {"train": ref.max_train, "validation": ref.max_validation, "test": ref.max_test, "shifted": ref.max_test}
    train = load_split(spec, "train", caps["train"])
    return spec, {s: train if s == "train" else load_split(spec, s, caps[s], train) for s in spec.splits}
