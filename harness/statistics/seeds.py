"""Training seeds: each seed is its own tuned model, and every number is a mean over seeds whose interval counts
both sources of variance: which seed (initialisation, data order, dropout) and which test items.

Estimator (documented in docs/statistics.md). With S seeds scored on the same n test items, the reported value
is the mean over seeds of the per-seed metric. Its variance has two parts:
- seed: the sample variance of the S per-seed values, over S (for a difference of two independently trained
  sides, the sum of both sides' parts);
- items: the bootstrap variance, over resampled items, of the seed-mean (or of the seed-mean difference, the
  same item draw applied to every seed of both sides: paired on items). Corpus metrics are recomputed on each
  resample from their per-item statistics (harness/statistics/paired.py), never approximated by per-item scores.
The interval is estimate +- t * se with se = sqrt(seed part + item part) and Welch-Satterthwaite degrees of
freedom (S - 1 for each seed part, infinite for the item part). With 3 seeds the seed part has 2 degrees of
freedom, so t is up to 4.30 instead of 1.96: intervals are honest about how little three draws say about the
seed spread, and they widen rather than pretend. A resampling-over-seeds bootstrap would have only 10 distinct
multisets of 3 seeds and would understate the seed variance by a factor 2/3.

The per-seed values on shared items slightly double-count the seed-by-item interaction (it is in both parts),
which errs wide. With one seed there is no seed part: the interval is the item-only one, and reports say that
the verdict rests on one training seed.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from harness.scoring.metrics import MetricValue
from harness.statistics.paired import resample_counts, statistic

# The interval method text stored in results.json names the module by its path before harness/statistics/ existed;
# kept so stored and new results read the same.
METHOD_PATH = "harness/seeds.py"


@dataclass(frozen=True)
class SeedAware:
    estimate: float
    se: float
    df: float  # inf when only the item part is present
    seed_sd: float | None  # sd over seeds of one side (of the candidate, for a difference); None with one seed

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        if not np.isfinite(self.se):
            return (float("nan"), float("nan"))
        half = self.t(1 - (1 - level) / 2) * self.se
        return (self.estimate - half, self.estimate + half)

    def t(self, q: float) -> float:
        return float(sps.norm.ppf(q) if not np.isfinite(self.df) else sps.t.ppf(q, self.df))

    def p_below(self, threshold: float) -> float:
        """One-sided p-value of H0: true value <= threshold (small: the estimate is clearly above it)."""
        if self.se == 0:
            return 0.0 if self.estimate > threshold else 1.0
        z = (self.estimate - threshold) / self.se
        return float(sps.norm.sf(z) if not np.isfinite(self.df) else sps.t.sf(z, self.df))

    def p_two_sided(self) -> float:
        return min(1.0, 2 * min(self.p_below(0.0), 1 - self.p_below(0.0)))


def combine(sides: Sequence[Sequence[float]], item_resamples: np.ndarray) -> SeedAware:
    """Seed-aware estimate of mean(sides[0]) - mean(sides[1]) (or of mean(sides[0]) alone).

    sides: the per-seed metric values of each side (one or two sides); item_resamples: (R,) values of the same
    estimate on R bootstrap resamples of the shared items, with each seed's metric recomputed on the resample."""
    values = [np.asarray(s, dtype=float) for s in sides]
    estimate = float(values[0].mean() - (values[1].mean() if len(values) > 1 else 0.0))
    item_var = float(np.var(item_resamples, ddof=1)) if len(item_resamples) > 1 else 0.0
    parts = [(float(v.var(ddof=1)) / len(v), len(v) - 1) for v in values if len(v) > 1]
    total = item_var + sum(p for p, _ in parts)
    denominator = sum(p * p / d for p, d in parts)
    df = total * total / denominator if denominator > 0 else float("inf")
    sd = float(values[0].std(ddof=1)) if len(values[0]) > 1 else None
    return SeedAware(estimate, float(np.sqrt(total)), df, sd)


def item_draws(metric: str, per_seed_items: Sequence[Sequence[float]] | Sequence[np.ndarray],
               per_seed_stats: Sequence[Any] | None,
               resamples: int, seed: int) -> np.ndarray:
    """(S, R): each seed's metric on the same R bootstrap resamples of the shared items (resample_counts with one
    seed gives every seed, and both sides of a comparison, the same item draws: paired on items)."""
    n = len(per_seed_items[0])
    stats = per_seed_stats or [None] * len(per_seed_items)
    rows = []
    for items, st in zip(per_seed_items, stats):
        fn = statistic(metric, np.asarray(items, dtype=float), st)
        rows.append(np.concatenate([fn(c) for c in resample_counts(n, resamples, seed)]))
    return np.stack(rows)


def combine_metric(metric: str, per_seed: Sequence[MetricValue], per_seed_stats: Sequence[Any] | None,
                   resamples: int, seed: int) -> MetricValue:
    """One metric value over S seeds: the mean of the per-seed values, its seed-aware interval (module docstring),
    each seed's value and their sd, the per-item mean over seeds, and each seed's per-item scores."""
    from harness.scoring.metrics import METRICS

    values = [v.value for v in per_seed]
    items = [v.per_item for v in per_seed]
    if len(per_seed) == 1 or not all(items) or len({len(i) for i in items}) != 1:
        return per_seed[0]
    draws = item_draws(metric, items, per_seed_stats, resamples, seed).mean(axis=0)
    sa = combine([values], draws)
    low, high = sa.interval()
    registered = METRICS.get(metric)
    if not registered.from_losses:  # bounded scores: the t interval can overshoot 0 or the top of the scale
        low, high = max(low, 0.0), min(high, registered.scale)
    return MetricValue(float(np.mean(values)), low, high, per_seed[0].n,
                       f"{len(values)} seeds x items: seed-aware t (df {sa.df:.1f}; {METHOD_PATH})",
                       np.mean(np.asarray(items, dtype=float), axis=0).tolist(), per_seed[0].signature,
                       [float(v) for v in values], sa.seed_sd, [list(i) for i in items])


def combine_change(per_seed_diffs: Sequence[Sequence[float]], resamples: int, seed: int) -> dict[str, Any]:
    """A paired change over S seeds (forgetting = before - after per probe item; bias = flips after - before per
    pair): mean over seeds, seed-aware interval, each seed's value and the sd."""
    diffs = [np.asarray(d, dtype=float) for d in per_seed_diffs]
    values = [float(d.mean()) for d in diffs]
    draws = item_draws("accuracy", diffs, None, resamples, seed).mean(axis=0)  # "accuracy": a per-item mean
    sa = combine([values], draws)
    low, high = sa.interval()
    return {"value": float(np.mean(values)), "ci_low": low, "ci_high": high, "seeds": values, "seed_sd": sa.seed_sd,
            "ci_method": f"{len(values)} seeds x items: seed-aware t (df {sa.df:.1f}; {METHOD_PATH})"}


def paired(metric: str, a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], a_values: Sequence[float],
           b_values: Sequence[float], a_stats: Sequence[Any] | None = None, b_stats: Sequence[Any] | None = None,
           resamples: int = 2000, seed: int = 0) -> SeedAware:
    """Seed-aware estimate of metric(a) - metric(b) for two independently trained sides scored on the same items:
    a and b are each side's per-seed per-item scores (one row for a single seed)."""
    if {len(r) for r in (*a, *b)} != {len(a[0])}:
        raise ValueError("both sides must score the same items under every seed")
    da = item_draws(metric, a, a_stats, resamples, seed).mean(axis=0)
    db = item_draws(metric, b, b_stats, resamples, seed).mean(axis=0)
    return combine([a_values, b_values], da - db)


def per_seed_items(entry: dict[str, Any]) -> list[list[float]]:
    """A stored metric entry's per-seed per-item scores: `per_seed`, or its one `per_item` row."""
    return entry.get("per_seed") or [entry.get("per_item") or []]


def seed_values(entry: dict[str, Any]) -> list[float]:
    return entry.get("seeds") or [entry["value"]]


def is_seeded(entry: dict[str, Any]) -> bool:
    """Whether a stored metric entry carries several training seeds (then tests must use the seed-aware path)."""
    return len(entry.get("per_seed") or []) > 1


def _test_name(a: Sequence[Any], b: Sequence[Any], sa: SeedAware, corpus: bool, metric: str) -> str:
    basis = f"corpus {metric} per seed" if corpus else f"mean of per-item {metric} per seed"
    return (f"{basis}; seed-aware t over {len(a)} vs {len(b)} training seeds and shared items (df {sa.df:.1f}; "
            f"{METHOD_PATH})")


def paired_difference_seeds(metric: str, ea: dict[str, Any], eb: dict[str, Any], resamples: int = 2000,
                            seed: int = 0, a_stats: Sequence[Any] | None = None,
                            b_stats: Sequence[Any] | None = None) -> dict[str, Any]:
    """harness.statistics.paired.paired_difference for entries with several seeds: the same keys, a two-sided
    p-value and a 95% interval that count the seed variance of both sides."""
    a, b = per_seed_items(ea), per_seed_items(eb)
    va, vb = seed_values(ea), seed_values(eb)
    sa = paired(metric, a, b, va, vb, a_stats, b_stats, resamples, seed)
    low, high = sa.interval()
    return {"a": float(np.mean(va)), "b": float(np.mean(vb)), "diff": sa.estimate, "ci_low": low, "ci_high": high,
            "p_value": sa.p_two_sided(), "test": _test_name(a, b, sa, a_stats is not None, metric), "n": len(a[0])}


def non_inferiority_seeds(ec: dict[str, Any], eb: dict[str, Any], margin: float, alpha: float = 0.05,
                          higher_is_better: bool = True, *, metric: str = "", resamples: int = 2000, seed: int = 0,
                          candidate_stats: Sequence[Any] | None = None,
                          baseline_stats: Sequence[Any] | None = None) -> dict[str, Any]:
    """harness.statistics.paired.non_inferiority with the seed-aware test: `passed` iff the one-sided (1 - alpha)
    lower bound of the gain (candidate - baseline, sign-flipped for lower-is-better metrics) is above -margin;
    `regressed` iff the upper bound is below -margin. Same keys as non_inferiority."""
    c, b = per_seed_items(ec), per_seed_items(eb)
    vc, vb = seed_values(ec), seed_values(eb)
    sa = paired(metric, c, b, vc, vb, candidate_stats, baseline_stats, resamples, seed)
    sign = 1 if higher_is_better else -1
    gain = SeedAware(sign * sa.estimate, sa.se, sa.df, sa.seed_sd)
    p_value = gain.p_below(-margin)
    half = gain.t(1 - alpha) * gain.se
    low, high = gain.estimate - half, gain.estimate + half
    ci_low, ci_high = (low, high) if higher_is_better else (-high, -low)
    return {"passed": p_value < alpha, "regressed": 1 - p_value < alpha, "diff": sa.estimate, "ci_low": ci_low,
            "ci_high": ci_high, "p_value": p_value, "p_regression": 1 - p_value, "candidate": float(np.mean(vc)),
            "baseline": float(np.mean(vb)), "margin": margin, "alpha": alpha, "n": len(c[0]),
            "test": _test_name(c, b, sa, candidate_stats is not None, metric)}
