"""The data lints of `sftbench validate` and of every run: warnings about the rows of a loaded benchmark, each a
Finding (the config-level checks that use them are harness/execution/preflight.py).

Each is a warning, a data problem a run survives but a reader of its numbers should know about:
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
Lints look at the rows a run uses, after the config's max_train/max_test caps. preflight's `validate`/`lint` load
everything themselves; `run_warnings` lints suites a run has already loaded, for its results.json. Every finding is
returned: each warning carries its kind, and the terminal and the reports list a few of each kind
(reports/format.py capped), the run writing them all to warnings.txt beside results.json.
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from harness.config import BakeoffConfig
from harness.data.specs import SCORED_SPLITS, BenchmarkSpec, Split

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


def run_warnings(cfg: BakeoffConfig, benchmarks: list[tuple[BenchmarkSpec, dict[str, Split]]]) -> list[Finding]:
    """The warnings a run can store in results.json, from the benchmarks it has already loaded."""
    return [f for spec, splits in benchmarks for f in lint_benchmark(spec, splits, cfg.recipe.max_length)]


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
