"""Counterfactual bias probe: pairs of inputs that differ only in a protected attribute (gender, name,
nationality, age) and share one gold label. A fair classifier predicts the same label for both sides of
a pair; the flip rate is the share of pairs whose two predictions differ.

The suite (`probe.yaml`, `kind: counterfactual`) names the classification benchmark whose prompt and
labels it uses. The caller renders both sides through that benchmark's prompt (render_pair_inputs),
predicts them with the task's own predict() on the base model and again on the tuned model, and
bias_report compares the two: did tuning make the model more sensitive to the attribute?
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import read_yaml
from harness.data.rows import read_numbered_rows
from harness.data.specs import BenchmarkSpec, Example, find_spec, load_benchmark_spec, render_example
from harness.errors import ConfigError, DataError
from harness.statistics.intervals import CHANGE_METHOD, change_interval, mcnemar_exact, wilson

BIAS_KINDS = ("counterfactual",)
BIAS_KEYS = {"name", "version", "kind", "benchmark", "data", "description"}
PAIR_FIELDS = ("a", "b", "attribute", "label")
MAX_EXAMPLES = 10


@dataclass(frozen=True)
class BiasSpec:
    name: str
    version: str
    kind: str
    path: str
    data: str  # resolved data file
    benchmark: str  # name of the classification benchmark whose prompt and labels the pairs use
    benchmark_path: str
    description: str = ""


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    attribute: str
    label: str  # gold label key, the same for both sides


def load_bias_suite(spec_ref: str, base: Path) -> tuple[BiasSpec, list[Pair], str]:
    """Read and check a counterfactual suite. Its `benchmark:` resolves like `data:`, relative to the
    probe.yaml first, then as a bundled name; every pair's label must be one of that benchmark's labels."""
    path = find_spec(spec_ref, base, "probe.yaml")
    raw = read_yaml(path)
    unknown = sorted(set(raw) - BIAS_KEYS)
    if unknown:
        raise ConfigError(f"unknown key '{unknown[0]}'; known: {', '.join(sorted(BIAS_KEYS))}", path)
    for key in ("version", "kind", "benchmark", "data"):
        if key not in raw:
            raise ConfigError(f"missing required key '{key}'", path)
    if raw["kind"] not in BIAS_KINDS:
        raise ConfigError(f"unknown bias probe kind '{raw['kind']}'; known: {', '.join(BIAS_KINDS)}", path)
    bench = load_benchmark_spec(str(raw["benchmark"]), path.parent)
    if bench.task != "classification":
        raise ConfigError(f"benchmark '{bench.name}' is a {bench.task} benchmark; counterfactual pairs need "
                          "a classification benchmark", path)
    spec = BiasSpec(name=str(raw.get("name") or path.parent.name), version=str(raw["version"]), kind=raw["kind"],
                    path=str(path), data=str((path.parent / str(raw["data"])).resolve()), benchmark=bench.name,
                    benchmark_path=bench.path, description=str(raw.get("description", "")))
    data = Path(spec.data)
    rows = read_numbered_rows(data)
    if not rows:
        raise DataError("bias suite is empty", data)
    pairs = [_pair(row, line, data, bench) for line, row in rows]
    return spec, pairs, hashlib.sha256(data.read_bytes()).hexdigest()


def _pair(row: dict[str, Any], line: int | None, path: Path, bench: BenchmarkSpec) -> Pair:
    for key in PAIR_FIELDS:
        if key not in row:
            raise DataError(f"pair has no '{key}' (fields: {', '.join(row)})", path, line)
        if not isinstance(row[key], str) or not row[key].strip():
            raise DataError(f"'{key}' must be a non-empty string", path, line)
    if row["label"] not in bench.labels:
        raise DataError(f"label '{row['label']}' is not among {bench.name}'s labels ({', '.join(bench.labels)})",
                        path, line)
    if row["a"] == row["b"]:
        raise DataError("'a' and 'b' are identical: a counterfactual pair must differ", path, line)
    return Pair(row["a"], row["b"], row["attribute"], row["label"])


def render_pair_inputs(spec: BenchmarkSpec, pairs: Sequence[Pair]) -> tuple[list[Example], list[Example]]:
    """Both sides of every pair rendered through the benchmark's prompt, ready for harness.scoring.tasks.predict."""
    def example(text: str, pair: Pair) -> Example:
        return render_example(spec, {next(iter(spec.input_fields)): text}, pair.label, (pair.label,),
                              {spec.input_field: text, "attribute": pair.attribute, "label": pair.label})

    return [example(p.a, p) for p in pairs], [example(p.b, p) for p in pairs]


def bias_report(before_a: Sequence[str], before_b: Sequence[str], after_a: Sequence[str], after_b: Sequence[str],
                pairs: Sequence[Pair]) -> dict[str, Any]:
    """Flip rates before and after tuning (Wilson), their paired change (a score interval on per-pair flips),
    per-attribute flip rates, accuracy on each side, McNemar on new vs vanished flips, flipped examples.

    The four prediction lists are label keys, one per pair, in the order of `pairs`."""
    n = len(pairs)
    if n == 0:
        raise ValueError("no pairs to report on")
    for name, preds in (("before_a", before_a), ("before_b", before_b), ("after_a", after_a), ("after_b", after_b)):
        if len(preds) != n:
            raise ValueError(f"{name} has {len(preds)} predictions for {n} pairs")
    flips_before = [int(x != y) for x, y in zip(before_a, before_b)]
    flips_after = [int(x != y) for x, y in zip(after_a, after_b)]
    vanished, new, p = mcnemar_exact(flips_before, flips_after)
    low, high = change_interval(new, vanished, n)  # not [0, 0] when no pair changed
    gold = [pair.label for pair in pairs]
    flipped = [i for i in range(n) if flips_after[i]]
    return {
        "n": n,
        "flip_rate_before": _rate(flips_before),
        "flip_rate_after": _rate(flips_after),
        "change": {"value": float(np.mean(flips_after) - np.mean(flips_before)), "ci_low": low, "ci_high": high,
                   "ci_method": CHANGE_METHOD},
        "new_flips": new, "vanished_flips": vanished, "mcnemar_p": p,
        "per_attribute": _per_attribute(pairs, flips_before, flips_after),
        "accuracy_before": {"a": _rate(_hits(before_a, gold)), "b": _rate(_hits(before_b, gold))},
        "accuracy_after": {"a": _rate(_hits(after_a, gold)), "b": _rate(_hits(after_b, gold))},
        "flipped_examples": [{"a": pairs[i].a, "b": pairs[i].b, "attribute": pairs[i].attribute,
                              "label": pairs[i].label, "pred_a": after_a[i], "pred_b": after_b[i]}
                             for i in flipped[:MAX_EXAMPLES]],
        "per_pair": {"before": flips_before, "after": flips_after},
    }


def _per_attribute(pairs: Sequence[Pair], before: list[int], after: list[int]) -> dict[str, Any]:
    groups: dict[str, list[int]] = {}
    for i, pair in enumerate(pairs):
        groups.setdefault(pair.attribute, []).append(i)
    return {attr: {"n": len(idx), "before": _rate([before[i] for i in idx]), "after": _rate([after[i] for i in idx])}
            for attr, idx in sorted(groups.items())}


def _hits(preds: Sequence[str], gold: Sequence[str]) -> list[int]:
    return [int(p == g) for p, g in zip(preds, gold)]


def _rate(indicators: list[int]) -> dict[str, Any]:
    low, high = wilson(sum(indicators), len(indicators))
    return {"value": sum(indicators) / len(indicators), "ci_low": low, "ci_high": high, "ci_method": "wilson",
            "count": sum(indicators)}
