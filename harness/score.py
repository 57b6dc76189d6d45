"""Metrics: a registry with direction, each computed by the field's reference library, each with a
95% interval and per-item scores kept for paired comparisons."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.registry import Registry
from harness.stats import bootstrap_ci, wilson


@dataclass(frozen=True)
class MetricValue:
    value: float
    ci_low: float
    ci_high: float
    n: int
    method: str  # how the interval was computed
    per_item: list[float] = field(default_factory=list, repr=False)
    signature: str = ""

    def to_dict(self, per_item: bool = True) -> dict:
        out = {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n, "ci_method": self.method}
        if self.signature:
            out["signature"] = self.signature
        if per_item:
            out["per_item"] = self.per_item
        return out


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    compute: Callable[[Sequence[str], Sequence[Sequence[str]], int, int], MetricValue]
    description: str


METRICS: Registry[Metric] = Registry("metric")


def register_metric(name: str, higher_is_better: bool, description: str):
    def decorator(fn):
        METRICS.add(name, Metric(name, higher_is_better, fn, description))
        return fn

    return decorator


def score(name: str, predictions: Sequence[str], references: Sequence[Sequence[str]],
          resamples: int = 1000, seed: int = 0) -> MetricValue:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    return METRICS.get(name).compute(list(predictions), [list(r) for r in references], resamples, seed)


@register_metric("accuracy", True, "share of predictions equal to the label (scikit-learn accuracy_score); Wilson interval")
def _accuracy(preds, refs, resamples, seed):
    from sklearn.metrics import accuracy_score

    gold = [r[0] for r in refs]
    n = len(gold)
    if n == 0:
        return MetricValue(float("nan"), float("nan"), float("nan"), 0, "wilson")
    value = float(accuracy_score(gold, preds))
    per_item = [float(p == g) for p, g in zip(preds, gold)]
    low, high = wilson(sum(per_item), n)
    return MetricValue(value, low, high, n, "wilson", per_item)


@register_metric("macro_f1", True, "unweighted mean of per-class F1 over the gold labels (scikit-learn f1_score, "
                 "average='macro', zero_division=0); seeded bootstrap interval")
def _macro_f1(preds, refs, resamples, seed):
    from sklearn.metrics import f1_score

    gold = [r[0] for r in refs]
    n = len(gold)
    if n == 0:
        return MetricValue(float("nan"), float("nan"), float("nan"), 0, "bootstrap")
    labels = sorted(set(gold))
    g, p = np.array(gold, dtype=object), np.array(preds, dtype=object)

    def f1(idx: np.ndarray) -> float:
        return float(f1_score(g[idx], p[idx], labels=labels, average="macro", zero_division=0))

    value = f1(np.arange(n))
    low, high = bootstrap_ci(f1, n, resamples, seed)
    per_item = [float(a == b) for a, b in zip(preds, gold)]  # F1 is not itemwise; keep correctness for pairing
    return MetricValue(value, low, high, n, f"bootstrap(resamples={resamples},seed={seed})", per_item)
