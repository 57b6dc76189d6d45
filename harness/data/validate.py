"""`sftbench validate`: read the config, every benchmark, probe and bias suite and their data, check the
candidates and the tuner, and lint the data, all before any model is loaded (no torch import).

Errors are what `run` would refuse (exit 2). Warnings are data problems a run survives but a reader of its
numbers should know about:
- duplicate rows within a split, and train rows that reappear in validation/test/shifted (leakage; a split
  carved from train is checked against the train rows left, so a row the file holds twice is found),
  exact, equal after normalisation (lowercase, punctuation dropped, whitespace collapsed), or near
  (token-set Jaccard >= NEAR, found with prefix filtering: AG News, 10k train and 7.6k test rows, in ~2 s).
  A row is every field that reaches the model: all input fields of a multi-field prompt, compared field by field
  (NLI rows sharing a premise, with other hypotheses, are not duplicates; a near-duplicate is near in every field),
  and a chat row's messages as a whole;
- label imbalance in train (majority/minority > IMBALANCE) and declared labels with no train rows (when a scored
  split holds that label, the warning bears on the scores, and the reports show it beside them);
- rows whose rendered prompt plus target likely exceed recipe.max_length tokens. No tokenizer is loaded
  here (candidates differ and loading one is the slow part), so the count is estimated as the larger of
  chars/4 and words*4/3, the usual rates of English BPE vocabularies; it flags rows that will be truncated,
  it does not promise the others fit. Measured against the real tokenizers on the bundled intents and
  ticket data and AG News: median estimate/real 1.03-1.17 (SmolLM2 BPE and MiniLM WordPiece), and
  below the real count for 9-34% of rows; a chat template adds its own tokens on top.
Lints look at the rows a run uses, after the config's max_train/max_test caps. `validate`/`lint` load
everything themselves; `run_warnings` lints suites a run has already loaded, for its results.json. Every finding is
returned: each warning carries its kind, and the terminal and the reports list a few of each kind
(reports/format.py capped), the run writing them all to warnings.txt beside results.json.
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from harness.config import DEMO_CONFIG, BakeoffConfig, CandidateConfig, load_config
from harness.data.specs import SCORED_SPLITS, BenchmarkSpec, Split, load_benchmark
from harness.errors import ConfigError, SftbenchError, did_you_mean
from harness.execution import check_executor
from harness.scoring.bias import BiasSpec, load_bias_suite
from harness.scoring.probes import load_probe
from harness.scoring.tasks import metric_while_training, scored_metrics

NEAR = 0.9  # token-set Jaccard from which two inputs count as near-duplicates
IMBALANCE = 10.0  # majority/minority label count ratio that earns a warning
COMPARED = ("validation", "test", "shifted")  # splits checked against train for leakage


@dataclass(frozen=True)
class Finding:
    level: str  # warning | error
    path: str
    line: int | None
    message: str
    kind: str = ""  # what a listing counts findings of, per file: "duplicate rows in train"; "" for one of a kind
    benchmark: str = ""  # the benchmark a data warning is about
    scores: bool = False  # it bears on the benchmark's scores: the reports show it beside them

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.level}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """As results.json stores it: the keys left at their defaults are left out."""
        return {k: v for k, v in asdict(self).items()
                if k in ("level", "path", "line", "message") or v != Finding.__dataclass_fields__[k].default}


def validate(config: str | Path | None, overrides: list[str] | None = None) -> list[Finding]:
    """Every error and warning for a config file (the bundled demo when None)."""
    try:
        cfg = load_config(config, overrides)
    except SftbenchError as err:
        return [_error(err, str(config or DEMO_CONFIG))]  # the bundled demo, when no config was named
    return lint(cfg)


def lint(cfg: BakeoffConfig) -> list[Finding]:
    """Load every suite of a parsed config, check candidates and tuner, and lint the benchmark data."""
    source, base = cfg.source, cfg.base_dir
    findings: list[Finding] = []

    def attempt(load: Callable[[], Any]) -> Any:
        try:
            return load()
        except SftbenchError as err:  # one finding per failing suite; the others are still checked
            findings.append(_error(err, source))
            return None

    benchmarks = [b for ref in cfg.benchmarks if (b := attempt(partial(load_benchmark, ref, base)))]
    for ref in cfg.probes:
        attempt(partial(load_probe, ref, base))
    bias = [b for ref in cfg.bias if (b := attempt(partial(load_bias_suite, ref.spec, base)))]
    findings += cross_checks(cfg, benchmarks, [spec for spec, _, _ in bias])
    attempt(lambda: check_tuner(cfg.recipe.tuner))
    attempt(lambda: check_executor(cfg.executor.kind))
    for cand in cfg.candidates:
        findings += attempt(partial(check_candidate, cand)) or []
    return findings + run_warnings(cfg, benchmarks)


def run_warnings(cfg: BakeoffConfig, benchmarks: list[tuple[BenchmarkSpec, dict[str, Split]]]) -> list[Finding]:
    """The warnings a run can store in results.json, from the benchmarks it has already loaded."""
    return [f for spec, splits in benchmarks for f in lint_benchmark(spec, splits, cfg.recipe.max_length)]


def _error(err: SftbenchError, source: str) -> Finding:
    # an error raised without a file (an unknown name) is about the config that named it
    return Finding("error", err.path or source, err.line, err.message)


def cross_checks(cfg: BakeoffConfig, benchmarks: list[tuple[BenchmarkSpec, dict[str, Split]]],
                 bias: list[BiasSpec]) -> list[Finding]:
    """Errors between suites that each loaded fine: a bias suite's benchmark missing from the config, a
    sweep over a benchmark with no validation split, early stopping on a metric a benchmark does not evaluate
    while training, a gate on a metric no benchmark produces."""
    names = {spec.name for spec, _ in benchmarks}
    findings = [Finding("error", cfg.source, None, f"bias suite '{b.name}' needs benchmark '{b.benchmark}', which "
                        "the config does not list") for b in bias if b.benchmark not in names]
    findings += gate_errors(cfg, benchmarks)
    if any(len(cfg.settings(c)) > 1 for c in cfg.candidates):
        findings += [Finding("error", cfg.source, None, f"a sweep picks settings on validation data, and benchmark "
                             f"'{spec.name}' has no validation split") for spec, splits in benchmarks
                     if "validation" not in splits]
    if cfg.recipe.monitor == "metric":
        for spec, splits in benchmarks:
            n = len(splits["validation"].examples) if "validation" in splits else 0
            if why := metric_while_training(spec, n, cfg.recipe.eval_metric):
                findings.append(Finding("error", cfg.source, None, f"recipe.monitor is metric, but benchmark "
                                        f"'{spec.name}' does not evaluate {spec.main_metric} while training: {why}"))
    return findings


def check_tuner(name: str) -> None:
    """A registered tuner (tuners/<name>/): checked by name, without importing it, which would import torch."""
    from tuners import TUNERS

    if name not in TUNERS:
        raise ConfigError(f"unknown tuner '{name}'; known: {', '.join(TUNERS)}")


def check_candidate(cand: CandidateConfig) -> list[Finding]:
    """What `run` checks before loading weights, without converting, downloading or hashing them."""
    from harness.errors import ModelError
    from harness.models.loading import (
        ALIASES,
        check_adapter,
        gguf_unsupported,
        inspect_folder,
        package_dir,
        source_of,
    )

    source = source_of(cand.model)
    if cand.adapter:
        check_adapter(Path(cand.adapter).expanduser().resolve())
    if source == "alias":
        alias = ALIASES.get(cand.model)
        package_dir(alias.package, alias.pip)
    elif source == "local":
        inspect_folder(Path(cand.model).expanduser().resolve(), cand.trust_remote_code, cand.allow_pickle)
    elif source == "gguf":  # its metadata only: the conversion waits for `run`
        unsupported = gguf_unsupported(Path(cand.model).expanduser())
        if unsupported:
            raise ModelError(unsupported, cand.model)
    else:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(cand.model, "config.json", revision=cand.revision)
        if not isinstance(cached, str):
            what, hint = ("", "") if "/" in cand.model else \
                ("not a bundled alias or a local path, so a hub id, and ", did_you_mean(cand.model, ALIASES))
            return [Finding("warning", cand.model, None, f"{what}not in the local Hugging Face cache: `run` downloads "
                            f"it (needs the network), so it was not checked{hint}")]
        inspect_folder(Path(cached).parent, cand.trust_remote_code, cand.allow_pickle)
    return []


def gate_errors(cfg: BakeoffConfig, benchmarks: list[tuple[BenchmarkSpec, dict[str, Split]]]) -> list[Finding]:
    """A metric gate (threshold or baseline) on a benchmark, metric or split that no benchmark of the config
    produces would fail closed after all the training: a config error, with the closest name the config does
    produce. (When a benchmark failed to load, its error is already reported.)"""
    if len(benchmarks) < len(cfg.benchmarks):
        return []
    scored = {spec.name: (scored_metrics(spec), [s for s in SCORED_SPLITS if s in splits])
              for spec, splits in benchmarks}
    findings = []
    for gate in (g for g in cfg.gates if g.metric):
        bench, metric, *split = gate.metric.split(".")
        metrics, splits = scored.get(bench, ((), []))
        on = f".{split[0]}" if split else ""
        if bench not in scored:
            why = f"no benchmark '{bench}' in the config ({', '.join(scored)})"
            hint = did_you_mean(gate.metric, [f"{b}.{m}{on}" for b, (ms, _) in scored.items() for m in ms])
        elif metric not in metrics:
            why = f"benchmark '{bench}' does not compute '{metric}' ({', '.join(metrics)})"
            hint = did_you_mean(metric, {m: f"{bench}.{m}{on}" for m in metrics})
        elif split and split[0] not in splits:
            why = f"benchmark '{bench}' scores no '{split[0]}' split ({', '.join(splits)})"
            hint = f"; did you mean '{bench}.{metric}' (the test split)?"
        else:
            continue
        findings.append(Finding("error", cfg.source, None, f"gate '{gate.name}': {why}{hint}"))
    return findings


# ---- data lints ----------------------------------------------------------------------------------------

def lint_benchmark(spec: BenchmarkSpec, splits: dict[str, Split], max_length: int) -> list[Finding]:
    """Warnings about one loaded benchmark: duplicates, leakage, label balance, over-long rows."""
    rows = {name: model_text(spec, split) for name, split in splits.items()}
    findings = []
    for name, split in splits.items():
        findings += _duplicates(spec, split, rows[name])
    for name in COMPARED:
        if name in splits and "train" in splits:
            findings += _leakage(spec, splits["train"], rows["train"], splits[name], rows[name])
    if spec.task == "classification" and "train" in splits:
        findings += _balance(spec, splits)
    for split in splits.values():
        findings += _lengths(split, max_length)
    return [replace(f, benchmark=spec.name) for f in findings]


Row = tuple[str, ...]  # the text of each field of a row that reaches the model, in the spec's field order


def model_text(spec: BenchmarkSpec, split: Split) -> list[Row]:
    """What the duplicate and leakage lints compare: every input field of a row (a chat row: its messages, the
    answer included, as one text)."""
    if spec.messages:
        return [(f"{ex.prompt} {ex.target}",) for ex in split.examples]
    return [tuple(str(ex.raw[column]) for column in spec.input_fields.values()) for ex in split.examples]


def normalise(text: str) -> str:
    """Lowercase, punctuation dropped, whitespace collapsed: 'Refund, please!' == 'refund please'."""
    return " ".join(re.sub(r"[^\w\s]|_", " ", text.lower()).split())


def near_pairs(left: list[frozenset[str]], right: list[frozenset[str]] | None = None,
               threshold: float = NEAR) -> list[tuple[int, int, float]]:
    """(i, j, jaccard) for token sets with Jaccard >= threshold: i in left, j in right, or i < j within
    left when right is None. Prefix filtering: order each set's tokens rarest first; two sets with
    Jaccard >= t share a token among the first |s| - ceil(t|s|) + 1 of each, so only sets sharing such a
    token are compared (and only when their sizes are within a factor t)."""
    self_join = right is None
    probe_sets = left
    indexed = left if right is None else right
    freq = Counter(t for s in (left if self_join else left + indexed) for t in s)

    def prefix(s: frozenset[str]) -> list[str]:
        return sorted(s, key=lambda t: (freq[t], t))[: len(s) - math.ceil(threshold * len(s)) + 1]

    index: dict[str, list[int]] = defaultdict(list)
    if not self_join:
        for j, s in enumerate(indexed):
            for t in prefix(s):
                index[t].append(j)
    pairs = []
    for i, s in enumerate(probe_sets):
        if not s:
            continue
        head = prefix(s)
        seen: set[int] = set()
        for t in head:
            for j in index.get(t, ()):
                other = indexed[j]
                if j in seen or not threshold * len(s) <= len(other) <= len(s) / threshold:
                    continue
                seen.add(j)
                jaccard = len(s & other) / len(s | other)
                if jaccard >= threshold:
                    pairs.append((j, i, jaccard) if self_join else (i, j, jaccard))
        if self_join:
            for t in head:
                index[t].append(i)
    return pairs


def _tokens(row: Row) -> list[frozenset[str]]:
    """Each field's normalised token set."""
    return [frozenset(field.split()) for field in row]


def _tagged(fields: list[frozenset[str]]) -> frozenset[str]:
    """The fields' tokens in one set, each tagged with its field, so a premise word never matches a hypothesis word.
    Rows near in every field (Jaccard >= t each) are near in this set too, so it finds every candidate pair."""
    return frozenset(f"{k}\x00{t}" for k, tokens in enumerate(fields) for t in tokens)


def _jaccard(a: list[frozenset[str]], b: list[frozenset[str]]) -> float:
    """The least of the fields' Jaccard similarities (two empty fields are equal)."""
    return min(len(x & y) / len(x | y) if x | y else 1.0 for x, y in zip(a, b))


def _matches(rows: list[Row], others: list[Row] | None) -> dict[int, tuple[int, str]]:
    """For each row of `rows`, the first matching row of `others` (or an earlier row of `rows` when others is None)
    and how it matches: exact, after normalisation, or near (Jaccard >= NEAR in every field)."""
    pool = rows if others is None else others
    norm = [tuple(normalise(f) for f in row) for row in pool]
    first: dict[Row, int] = {}
    for j, n in enumerate(norm):
        first.setdefault(n, j)
    found: dict[int, tuple[int, str]] = {}
    reps = sorted(set(first.values()))  # one representative per normalised row for the Jaccard pass
    for i, row in enumerate(rows):
        n = tuple(normalise(f) for f in row) if others is not None else norm[i]
        hit = first.get(n)
        if hit is not None and (others is not None or hit < i):
            same = [f.strip() for f in pool[hit]] == [f.strip() for f in row]
            found[i] = (hit, "exact duplicate" if same else "duplicate after normalisation")
    fields = [_tokens(norm[j]) for j in reps]
    sets = [_tagged(f) for f in fields]
    if others is None:
        pairs = [(reps[b], reps[a], _jaccard(fields[b], fields[a])) for a, b, _ in near_pairs(sets)]
    else:
        probe = [_tokens(tuple(normalise(f) for f in row)) for row in rows]
        pairs = [(i, reps[b], _jaccard(probe[i], fields[b])) for i, b, _ in near_pairs([_tagged(p) for p in probe],
                                                                                        sets)]
    for i, j, jac in pairs:
        if jac >= NEAR:
            found.setdefault(i, (j, f"near-duplicate (Jaccard {jac:.2f})"))
    return found


def _label_note(spec: BenchmarkSpec, here: Split, i: int, there: Split, j: int) -> str:
    a, b = here.examples[i].target, there.examples[j].target
    return f", with a different label ('{a}' here, '{b}' there)" if spec.task == "classification" and a != b else ""


def _duplicates(spec: BenchmarkSpec, split: Split, rows: list[Row]) -> list[Finding]:
    found = _matches(rows, None)
    return [Finding("warning", split.path, split.examples[i].line,
                    f"{how} of {_row(split, j)} in {split.name}{_label_note(spec, split, i, split, j)}",
                    f"duplicate rows in {split.name}")
            for i, (j, how) in sorted(found.items())]


def _leakage(spec: BenchmarkSpec, train: Split, train_rows: list[Row], other: Split, rows: list[Row]) -> list[Finding]:
    found = _matches(rows, train_rows)
    # a split carved from train (harness/data/carve.py) shares its file: a match is a row the file holds twice (or
    # nearly so), one copy carved out and one left in train
    carved = f", {other.name} carved from the same file" if other.carved_from else ""
    return [Finding("warning", other.path, other.examples[i].line,
                    f"leakage: {how} of train {_row(train, j)} ({Path(train.path).name}{carved})"
                    f"{_label_note(spec, other, i, train, j)}", f"{other.name} rows that also appear in train")
            for i, (j, how) in sorted(found.items())]


def _row(split: Split, j: int) -> str:
    line = split.examples[j].line
    return f"line {line}" if line else f"row {j + 1}"


def _balance(spec: BenchmarkSpec, splits: dict[str, Split]) -> list[Finding]:
    train = splits["train"]
    counts = Counter(ex.target for ex in train.examples)
    findings = []
    for label in (x for x in spec.labels if x not in counts):
        held = {name: n for name, split in splits.items() if name in COMPARED
                and (n := sum(ex.target == label for ex in split.examples))}
        rows = " and ".join(f"{n} {name}" for name, n in held.items())
        scored = [name for name in held if name in SCORED_SPLITS]
        why = (f", but {rows} row(s): no tuned model can learn it, and its {' and '.join(scored)} rows count against "
               "every candidate" if scored else f", but {rows} row(s): no tuned model can learn it" if held else
               ": the model never sees it")
        findings.append(Finding("warning", train.path, None, f"label '{label}' has no train rows{why}",
                                "labels with no train rows", scores=bool(scored)))
    (top, most), (low, least) = counts.most_common()[0], counts.most_common()[-1]
    if most / least > IMBALANCE:
        findings.append(Finding("warning", train.path, None, f"label imbalance in train: '{top}' has {most} rows, "
                                f"'{low}' {least} (ratio {most / least:.1f} > {IMBALANCE:g})"))
    return findings


def estimate_tokens(text: str) -> int:
    """A tokenizer-free token count: the larger of chars/4 and words*4/3 (English BPE rates)."""
    return math.ceil(max(len(text) / 4, len(text.split()) * 4 / 3))


def _lengths(split: Split, max_length: int) -> list[Finding]:
    findings = []
    for ex in split.examples:
        tokens = estimate_tokens(ex.prompt + " " + ex.target)
        if tokens > max_length:
            findings.append(Finding("warning", split.path, ex.line, f"about {tokens} tokens (estimated) with its "
                                    f"target, over recipe.max_length {max_length}: it will be truncated",
                                    f"{split.name} rows over recipe.max_length"))
    return findings
