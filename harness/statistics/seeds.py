"""Training seeds: each seed is its own tuned model, and every number is a mean over seeds whose interval counts
both sources of variance: which seed (initialisation, data order, dropout) and which test items.

Estimator (documented in docs/statistics.md). With S seeds scored on the same n test items, the reported value
is the mean over seeds of the per-seed metric. Its variance has two parts, each source counted once:
- seed: the sample variance of the S per-seed values, over S (for a difference of two independently trained
  sides, the sum of both sides' parts). Each per-seed value carries its own item noise (the seed-by-item
  interaction, and a 0/1 score's coin flip), so this part already holds that noise over S.
- items: what the seeds share, the variance of the seed mean (or of the seed-mean difference) over resampled items
  (the same item draw applied to every seed of both sides: paired on items), less each side's seed-by-item part,
  which the seed part holds: per side, the resampled spread of each seed around the seed mean, summed over seeds,
  over (S - 1) S. Corpus metrics are recomputed on each resample from their per-item statistics
  (harness/statistics/paired.py), never approximated by per-item scores.
The interval is estimate +- t * se, se = sqrt(seed part + item part), t with S - 1 degrees of freedom, S the
fewest seeds on a side that estimates its own seed variance. Not Welch-Satterthwaite's plug-in df: it grows
without bound when the seeds happen to agree (the item part then dominates the plug-in), so t fell to 1.96 exactly
when the seed variance was underestimated. S - 1 is exact for one side and Welch's own lower bound for two, so the
interval errs wide. A resampling-over-seeds bootstrap would have only 10 distinct multisets of 3 seeds and would
understate the seed variance by a factor 2/3.

A side with one seed beside a side with several (a 3-seed candidate against a one-seed baseline) cannot show its
seed spread, and counting none made the gate fail an unchanged model in 11.15% of runs: it takes the seeded side's
seed variance (same recipe, so the same spread is assumed; the test string says so). With one seed on every side
there is no seed part: the interval is the item-only one, and reports say that the verdict rests on one seed.
Gates read these statistics from 3 seeds up (MIN_GATE_SEEDS): with 2 the seed variance has one degree of freedom,
t(0.95) is 6.31, and a regression gate, which blocks only on evidence, could then block nothing.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from harness.results.model import MetricScore
from harness.statistics.intervals import change_interval
from harness.statistics.paired import basis, resample_counts, statistic

# The interval method text stored in results.json names the module by its path before harness/statistics/ existed;
# kept so stored and new results read the same.
METHOD_PATH = "harness/seeds.py"
MIN_GATE_SEEDS = 3  # fewest seeds on a seeded side that a gate reads (module docstring)


@dataclass(frozen=True)
class SeedAware:
    """A seed-aware estimate. The fields are floats, or arrays of one shape for many estimates at once (the
    calibration tests pass (trials,) arrays through the same code)."""
    estimate: float
    se: float
    df: float  # inf when only the item part is present
    seed_sd: float | None  # sd over seeds of one side (of the candidate, for a difference); None with one seed
    floor: float = 0.0  # the smallest p the R item resamples can show, 1 / (R + 1): no p is ever 0
    borrowed: int | None = None  # the side whose seed variance a one-seed side took, when one did

    def interval(self, level: float = 0.95) -> tuple[Any, Any]:
        half = self.t(1 - (1 - level) / 2) * self.se  # NaN se: NaN bounds
        return (self.estimate - half, self.estimate + half)

    def t(self, q: float) -> Any:
        return sps.t.ppf(q, self.df)  # df inf: the normal quantile

    def p_below(self, threshold: float) -> Any:
        """One-sided p-value of H0: true value <= threshold (small: the estimate is clearly above it)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (self.estimate - threshold) / self.se
        p = np.where(np.asarray(self.se) > 0, sps.t.sf(z, self.df), np.where(z > 0, 0.0, 1.0))
        return np.maximum(p, self.floor)[()]

    def p_above(self, threshold: float) -> Any:
        """One-sided p-value of H0: true value >= threshold."""
        flipped = SeedAware(-np.asarray(self.estimate), self.se, self.df, self.seed_sd, self.floor)  # type: ignore[arg-type]
        return flipped.p_below(-threshold)

    def p_two_sided(self) -> Any:
        return np.minimum(1.0, 2 * np.minimum(self.p_below(0.0), self.p_above(0.0)))[()]


def combine(sides: Sequence[Any], draws: Sequence[Any]) -> SeedAware:
    """Seed-aware estimate of mean(sides[0]) - mean(sides[1]) (or of mean(sides[0]) alone), module docstring.

    sides[k]: side k's per-seed values, shape (..., S_k); draws[k]: (..., S_k, R) each seed's value on R bootstrap
    resamples of the shared items (the same resamples for every seed and side). Leading axes, when present, are
    separate estimates computed at once."""
    values = [np.asarray(v, dtype=float) for v in sides]
    resampled = [np.asarray(d, dtype=float) for d in draws]
    sizes = [v.shape[-1] for v in values]
    estimate = values[0].mean(axis=-1) - (values[1].mean(axis=-1) if len(values) > 1 else 0.0)
    mean_draws = resampled[0].mean(axis=-2) - (resampled[1].mean(axis=-2) if len(resampled) > 1 else 0.0)
    r = mean_draws.shape[-1]
    item = np.var(mean_draws, axis=-1, ddof=1) if r > 1 else np.zeros(np.shape(estimate))
    for d, s in zip(resampled, sizes):
        if s > 1 and r > 1:  # the seed-by-item part, in both the seed part and the resamples: keep it in the seed part
            spread = np.var(d - d.mean(axis=-2, keepdims=True), axis=-1, ddof=1).sum(axis=-1) / (s - 1)
            item = item - spread / s
    item = np.maximum(item, 0.0)
    seeded = [k for k, s in enumerate(sizes) if s > 1]
    variances = {k: values[k].var(axis=-1, ddof=1) for k in seeded}
    borrowed = seeded[0] if seeded and len(seeded) < len(sizes) else None  # a one-seed side takes the other's
    seed_part = sum((variances[k] / sizes[k] if k in variances else variances[seeded[0]]) for k in range(len(sizes))
                    if seeded)
    df = float(min(sizes[k] - 1 for k in seeded)) if seeded else float("inf")
    sd = np.sqrt(variances[0])[()] if 0 in variances else None
    return SeedAware(estimate[()], np.sqrt(item + seed_part)[()], df, sd, 1 / (r + 1) if r else 0.0, borrowed)


def too_few_seeds(sizes: Sequence[int]) -> str:
    """Why a gate cannot rest on these seed counts (one per side), or "" when it can: every side with several
    seeds needs MIN_GATE_SEEDS (a one-seed side beside such a side borrows its spread)."""
    few = [s for s in sizes if 1 < s < MIN_GATE_SEEDS]
    if not few:
        return ""
    return (f"{' vs '.join(str(s) for s in sizes)} training seeds: a seed-aware gate needs {MIN_GATE_SEEDS} or more "
            f"on a side with several (with 2, the seed variance has 1 degree of freedom and t(0.95) is 6.31, so the "
            f"gate could not tell a regression from noise); set recipe.seeds: {MIN_GATE_SEEDS}")


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


def method(sa: SeedAware, seeds: int) -> str:
    return f"{seeds} seeds x items: seed-aware t (df {sa.df:.0f}; {METHOD_PATH})"


def _float(x: Any) -> float | None:
    return None if x is None else float(x)


def combine_change(per_seed_diffs: Sequence[Sequence[float]], resamples: int, seed: int) -> dict[str, Any]:
    """A paired change over S seeds (forgetting = before - after per probe item; bias = flips after - before per
    pair): mean over seeds, seed-aware interval (change_bounds), each seed's value and the sd."""
    diffs = [np.asarray(d, dtype=float) for d in per_seed_diffs]
    values = [float(d.mean()) for d in diffs]
    sa = combine([values], [item_draws("accuracy", diffs, None, resamples, seed)])  # "accuracy": a per-item mean
    pooled = np.concatenate(diffs)
    low, high = change_bounds(sa, (pooled > 0).sum(), (pooled < 0).sum(), len(pooled))
    return {"value": float(np.mean(values)), "ci_low": float(low), "ci_high": float(high), "seeds": values,
            "seed_sd": _float(sa.seed_sd), "ci_method": method(sa, len(values))}


def change_bounds(sa: SeedAware, up: Any, down: Any, n: Any) -> tuple[Any, Any]:
    """The seed-aware 95% interval of a change, never narrower than the score interval of the change over every
    seed's items pooled (`up`, `down`: items that moved up or down, of n; harness/statistics/intervals.py
    change_interval): with no item changed under any seed the seed-aware interval alone is [0, 0]."""
    low, high = sa.interval()
    floor = change_interval(up, down, n)
    return np.minimum(low, floor[0]), np.maximum(high, floor[1])


def paired(metric: str, a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], a_values: Sequence[float],
           b_values: Sequence[float], a_stats: Sequence[Any] | None = None, b_stats: Sequence[Any] | None = None,
           resamples: int = 2000, seed: int = 0) -> SeedAware:
    """Seed-aware estimate of metric(a) - metric(b) for two independently trained sides scored on the same items:
    a and b are each side's per-seed per-item scores (one row for a single seed)."""
    if {len(r) for r in (*a, *b)} != {len(a[0])}:
        raise ValueError("both sides must score the same items under every seed")
    da = item_draws(metric, a, a_stats, resamples, seed)
    db = item_draws(metric, b, b_stats, resamples, seed)
    return combine([a_values, b_values], [da, db])


def per_seed_items(entry: MetricScore) -> list[list[float]]:
    """A metric's per-seed per-item scores: `per_seed`, or its one `per_item` row."""
    return entry.per_seed or [entry.per_item or []]


def seed_values(entry: MetricScore) -> list[float]:
    return entry.seeds or [entry.number]


def is_seeded(entry: MetricScore) -> bool:
    """Whether a metric carries several training seeds (then tests must use the seed-aware path)."""
    return len(entry.per_seed or []) > 1


def _borrowed(sizes: tuple[int, int], names: tuple[str, str], sa: SeedAware) -> str:
    if sa.borrowed is None:
        return ""
    return (f"the one-seed {names[1 - sa.borrowed]} takes the seed variance of the {sizes[sa.borrowed]}-seed "
            f"{names[sa.borrowed]}")


def _test_name(sizes: tuple[int, int], names: tuple[str, str], sa: SeedAware, corpus: bool, metric: str) -> str:
    """What was compared (NOT ... when it is not the metric itself: harness/statistics/paired.py basis), per seed."""
    borrowed = _borrowed(sizes, names, sa)
    return (f"{basis(metric, corpus)} per seed; seed-aware t over {sizes[0]} vs {sizes[1]} training seeds and shared "
            f"items (df {sa.df:.0f}{'; ' + borrowed if borrowed else ''}; {METHOD_PATH})")


def paired_difference_seeds(metric: str, ea: MetricScore, eb: MetricScore, resamples: int = 2000,
                            seed: int = 0, a_stats: Sequence[Any] | None = None,
                            b_stats: Sequence[Any] | None = None) -> dict[str, Any]:
    """harness.statistics.paired.paired_difference for entries with several seeds: the same keys, a two-sided
    p-value and a 95% interval that count the seed variance of both sides."""
    a, b = per_seed_items(ea), per_seed_items(eb)
    va, vb = seed_values(ea), seed_values(eb)
    sa = paired(metric, a, b, va, vb, a_stats, b_stats, resamples, seed)
    low, high = sa.interval()
    return {"a": float(np.mean(va)), "b": float(np.mean(vb)), "diff": float(sa.estimate), "ci_low": float(low),
            "ci_high": float(high), "p_value": float(sa.p_two_sided()),
            "test": _test_name((len(a), len(b)), ("a", "b"), sa, a_stats is not None, metric), "n": len(a[0])}


def non_inferiority_seeds(ec: MetricScore, eb: MetricScore, margin: float, alpha: float = 0.05,
                          higher_is_better: bool = True, *, metric: str = "", resamples: int = 2000, seed: int = 0,
                          candidate_stats: Sequence[Any] | None = None,
                          baseline_stats: Sequence[Any] | None = None) -> dict[str, Any]:
    """harness.statistics.paired.non_inferiority with the seed-aware test: `passed` iff the one-sided (1 - alpha)
    lower bound of the gain (candidate - baseline, sign-flipped for lower-is-better metrics) is above -margin;
    `regressed` iff the upper bound is below -margin. Same keys as non_inferiority, plus `borrowed`: which side's
    seed variance a one-seed side took, or ""."""
    c, b = per_seed_items(ec), per_seed_items(eb)
    vc, vb = seed_values(ec), seed_values(eb)
    sa = paired(metric, c, b, vc, vb, candidate_stats, baseline_stats, resamples, seed)
    decision = non_inferiority_decision(sa, margin, alpha, higher_is_better)
    return decision | {"diff": float(sa.estimate), "candidate": float(np.mean(vc)), "baseline": float(np.mean(vb)),
                       "margin": margin, "alpha": alpha, "n": len(c[0]), "se": float(sa.se), "df": float(sa.df),
                       "resamples": resamples, "seeds": (len(c), len(b)),
                       "borrowed": _borrowed((len(c), len(b)), ("candidate", "baseline"), sa),
                       "test": _test_name((len(c), len(b)), ("candidate", "baseline"), sa,
                                          candidate_stats is not None, metric)}


def non_inferiority_decision(sa: SeedAware, margin: float, alpha: float, higher_is_better: bool = True
                             ) -> dict[str, Any]:
    """The non-inferiority verdicts of a seed-aware difference (candidate - baseline): `passed`, `regressed`,
    their p-values and the one-sided (1 - alpha) bounds. Works on arrays of estimates too (the calibration tests)."""
    sign = 1 if higher_is_better else -1
    gain = SeedAware(sign * np.asarray(sa.estimate), sa.se, sa.df, sa.seed_sd, sa.floor)  # type: ignore[arg-type]
    p_value, p_regression = gain.p_below(-margin), gain.p_above(-margin)
    half = gain.t(1 - alpha) * gain.se
    low, high = gain.estimate - half, gain.estimate + half
    ci_low, ci_high = (low, high) if higher_is_better else (-high, -low)
    out = {"passed": p_value < alpha, "regressed": p_regression < alpha, "ci_low": ci_low, "ci_high": ci_high,
           "p_value": p_value, "p_regression": p_regression}
    if np.ndim(p_value) == 0:
        out = {k: (bool(v) if k in ("passed", "regressed") else float(v)) for k, v in out.items()}
    return out
