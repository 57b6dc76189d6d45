"""The generalisation gap: the main metric on the in-distribution test split minus the same metric on the
benchmark's `shifted` split, with a 95% interval. The two splits hold different items, so each is resampled on
its own (independent samples); a corpus metric is recomputed on each resample from predictions and references;
with several training seeds the interval is seed-aware. Also the overfitting signal: last validation loss minus
last training loss.

Inputs are a benchmark's row of the results model (its scores, predictions and training record) and the run's
references.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.results.model import BenchmarkRow, MetricScore
from harness.statistics.paired import CORPUS, corpus_stats, resample_counts, seed_stats, statistic
from harness.statistics.seeds import combine, is_seeded, item_draws, per_seed_items, seed_values


def _corpus_gap(bench: BenchmarkRow, metric: str, references: dict[str, Any], resamples: int,
                seed: int) -> tuple[float, float] | None:
    """The gap's interval for a corpus metric (macro-F1, BLEU, chrF): the corpus score recomputed on each split's
    own resamples (independent samples) from the predictions and references, as the metric itself is computed.
    None when the predictions or references are not at hand."""
    preds = bench.predictions or {}
    if metric not in CORPUS or not all(preds.get(s) and (references.get(s) or {}).get("items") for s in
                                       ("test", "shifted")):
        return None
    sides = []
    for offset, split in enumerate(("test", "shifted")):
        items = references[split]["items"]
        per_item = np.asarray(bench.scores[split][metric].per_item, dtype=float)
        stat = statistic(metric, per_item, corpus_stats(metric, preds[split], items))
        sides.append(np.concatenate([stat(c) for c in resample_counts(len(items), resamples, seed + offset)]))
    diffs = sides[0] - sides[1]
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def _seeded_gap(bench: BenchmarkRow, metric: str, references: dict[str, Any], resamples: int,
                seed: int, bound: float | None) -> dict[str, Any] | None:
    """The gap over several training seeds: each seed's gap (its model on both splits), a seed-aware interval
    (harness/statistics/seeds.py) whose item part resamples the two splits independently. None with one seed."""
    entries = [bench.scores[s][metric] for s in ("test", "shifted")]
    if not all(is_seeded(e) for e in entries):
        return None
    draws = [item_draws(metric, per_seed_items(e), seed_stats(metric, bench, split, (references.get(split) or {})
                                                               .get("items")), resamples, seed + offset)
             for offset, (split, e) in enumerate(zip(("test", "shifted"), entries))]  # (S, R) each
    gaps = [a - b for a, b in zip(seed_values(entries[0]), seed_values(entries[1]))]
    sa = combine([gaps], [draws[0] - draws[1]])  # each seed's gap on independent resamples of the two splits
    low, high = (float(x) for x in sa.interval())
    if bound is not None:  # a gap of bounded scores lies within +-scale; few seeds' t overshoots it
        low, high = max(low, -bound), min(high, bound)
    sd = None if sa.seed_sd is None else float(sa.seed_sd)
    return {"gap_ci_low": low, "gap_ci_high": high, "gap_seeds": gaps, "gap_seed_sd": sd}


def _gap(bench: BenchmarkRow, metric: str, test: MetricScore, shifted: MetricScore, references: dict[str, Any],
         resamples: int, seed: int, bound: float | None) -> dict[str, Any]:
    gap = test.number - shifted.number
    seeded = _seeded_gap(bench, metric, references, resamples, seed, bound)
    corpus = _corpus_gap(bench, metric, references, resamples, seed)
    if seeded:
        return {"metric": metric, "gap": gap, **seeded}
    if corpus:
        return {"metric": metric, "gap": gap, "gap_ci_low": corpus[0], "gap_ci_high": corpus[1]}
    # independent samples: the gap's interval comes from resampling each split separately
    a, b = np.asarray(test.per_item), np.asarray(shifted.per_item)
    rng = np.random.Generator(np.random.PCG64(seed))  # PCG64 named: default_rng's bit generator may change
    diffs = [a[rng.integers(0, len(a), len(a))].mean() - b[rng.integers(0, len(b), len(b))].mean()
             for _ in range(resamples)]
    return {"metric": metric, "gap": gap, "gap_ci_low": float(np.percentile(diffs, 2.5)),
            "gap_ci_high": float(np.percentile(diffs, 97.5))}


def generalisation(bench: BenchmarkRow, main_metric: str, resamples: int, seed: int,
                   references: dict[str, Any] | None = None, *, bound: float | None) -> dict[str, Any]:
    """`bound`: the top of the main metric's scale (scoring/metrics.py scale_bound), None for an unbounded one."""
    out: dict[str, Any] = {}
    test, shifted = bench.score("test", main_metric), bench.score("shifted", main_metric)
    if test is not None and shifted is not None:
        out.update(_gap(bench, main_metric, test, shifted, references or {}, resamples, seed, bound))
    train = bench.train
    # no validation split: every validation loss is NaN, and there is no overfitting signal to report
    if train and train["train_loss"] and len(train["val_loss"]) > 1 and math.isfinite(train["val_loss"][-1]):
        out["overfit_loss_gap"] = train["val_loss"][-1] - train["train_loss"][-1]
    return out
