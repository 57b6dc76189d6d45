"""Paired comparisons on per-item scores: two runs, or a candidate and its promoted baseline, scored the
same items, so every interval and test resamples item indices once and applies them to both sides.

Which test, by metric:
- 0/1 per item (accuracy, exact_match, probe correctness): exact McNemar p-value (two-sided), with a
  paired bootstrap interval of the difference in means.
- means of per-item scores (rouge*): paired bootstrap interval, and a two-sided bootstrap p-value from the
  resampled differences shifted to the null: (1 + #{|d* - d| >= |d|}) / (B + 1).
- corpus metrics (bleu, chrf, macro_f1): the same paired bootstrap, recomputing the corpus score on each
  resample from sacrebleu's per-sentence sufficient statistics or from predictions and gold (`corpus_stats`).
  Without them `paired_difference` compares the per-item mean instead (sentence BLEU/chrF, or correctness for
  macro_f1) and its `test` string starts with NOT; loss and perplexity likewise (unweighted per-item means,
  token counts are not stored). `compare_runs` (harness/results/compare.py) never shows such a number under the metric's
  name: it recomputes corpus metrics from each run's stored predictions and references, and omits a row it
  cannot compute (with the reason), as it omits loss and perplexity.

Differences are always first minus second: a - b, candidate - baseline. Bootstrap intervals are
percentile intervals; the seed fixes the resamples, so the same inputs give the same numbers.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.results.model import BenchmarkRow
from harness.statistics.intervals import mcnemar_exact

PROBE_METRIC = "probe_correct"  # a probe item answered correctly by the tuned model (0/1)
BINARY = {"accuracy", "exact_match", PROBE_METRIC}
CORPUS = {"bleu", "chrf", "macro_f1"}
UNWEIGHTED = {"loss", "perplexity"}

Statistic = Callable[[np.ndarray], np.ndarray]  # (resamples, n) item draw counts -> (resamples,) metric values


def reference_streams(refs: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """sacrebleu's layout: stream k holds reference k of every item. Items with fewer references are padded with
    None, which sacrebleu drops when it caches references (an empty string would instead count as a real, empty
    reference and change BLEU's closest reference length)."""
    width = max(len(r) for r in refs)
    return [[r[k] if k < len(r) else None for r in refs] for k in range(width)]


def corpus_stats(metric: str, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> Any:
    """What `paired_difference` needs to recompute a corpus metric on resamples: an (n, k) int array of
    sacrebleu sufficient statistics for bleu/chrf, or (predictions, gold labels) for macro_f1."""
    if len(predictions) != len(references):
        raise DataError(f"{len(predictions)} predictions but {len(references)} references")
    if metric == "macro_f1":
        return list(predictions), [r[0] for r in references]
    stats = _sacrebleu(metric)._extract_corpus_statistics(list(predictions), reference_streams(references))
    return np.asarray(stats, dtype=np.int64)  # (n, k)


def _sacrebleu(metric: str) -> Any:
    from sacrebleu.metrics import BLEU, CHRF

    if metric == "bleu":
        return BLEU()  # the corpus scorer harness.scoring.metrics uses: same defaults, same numbers
    if metric == "chrf":
        return CHRF()
    raise ValueError(f"no sacrebleu statistics for metric '{metric}'")


def resample_counts(n: int, resamples: int, seed: int, chunk: int = 256) -> Iterator[np.ndarray]:
    """Seeded bootstrap resamples of n items as draw counts, in blocks of (chunk, n): row r, column i says
    how often item i was drawn. Counts let one matrix product score a whole block of resamples."""
    rng = np.random.Generator(np.random.PCG64(seed))  # PCG64 named: default_rng's bit generator may change
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(rows, n)) + n * np.arange(rows)[:, None]
        yield np.bincount(idx.ravel(), minlength=rows * n).reshape(rows, n)


def _mean(values: np.ndarray) -> Statistic:
    return lambda counts: counts @ values / len(values)


def _sacrebleu_corpus(metric: str, stats: np.ndarray) -> Statistic:
    scorer = _sacrebleu(metric)

    def corpus(counts: np.ndarray) -> np.ndarray:
        sums = counts.astype(np.int64) @ stats  # (resamples, k); ints so the arithmetic is sacrebleu's own
        return np.array([scorer._compute_score_from_stats(row.tolist()).score for row in sums])

    return corpus


def _macro_f1(predictions: Sequence[str], gold: Sequence[str]) -> Statistic:
    """macro-F1 as harness.scoring.metrics computes it (scikit-learn, labels = the gold labels, zero_division=0):
    per class F1 = 2 tp / (2 tp + fp + fn), which is 2 tp / (#gold + #predicted) over resampled counts."""
    labels = sorted(set(gold))
    p, g = np.asarray(predictions, dtype=object), np.asarray(gold, dtype=object)
    is_gold = np.stack([g == label for label in labels], axis=1).astype(float)  # (n, classes)
    is_pred = np.stack([p == label for label in labels], axis=1).astype(float)
    hit = is_gold * is_pred

    def f1(counts: np.ndarray) -> np.ndarray:
        tp, denom = counts @ hit, counts @ is_gold + counts @ is_pred  # (resamples, classes)
        return np.divide(2 * tp, denom, out=np.zeros_like(denom), where=denom > 0).mean(axis=1)

    return f1


def statistic(metric: str, per_item: np.ndarray, stats: Any) -> Statistic:
    """The metric as a function of item draw counts: a per-item mean, or the corpus score recomputed."""
    if stats is None or metric not in CORPUS:
        return _mean(per_item)
    if metric == "macro_f1":
        preds, gold = stats
        if len(preds) != len(per_item) or len(gold) != len(per_item):
            raise DataError(f"macro_f1: {len(preds)} predictions for {len(per_item)} per-item scores")
        return _macro_f1(preds, gold)
    stats = np.asarray(stats, dtype=np.int64)
    if stats.ndim != 2 or len(stats) != len(per_item):
        raise DataError(f"{metric}: sufficient statistics of shape {stats.shape} for {len(per_item)} items")
    return _sacrebleu_corpus(metric, stats)


def _aligned(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise DataError(f"items do not align: {x.size} per-item scores against {y.size}; a paired comparison "
                        "needs the same items in the same order")
    if x.size == 0:
        raise DataError("no per-item scores to compare")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataError("per-item scores contain NaN or infinity")
    return x, y


def _paired(stat_a: Statistic, stat_b: Statistic, n: int, resamples: int, seed: int) -> tuple[float, float, np.ndarray]:
    """Full-sample values of both sides and the (resamples,) differences a - b on shared resamples."""
    full = np.ones((1, n), dtype=np.int64)
    diffs = np.concatenate([stat_a(c) - stat_b(c) for c in resample_counts(n, resamples, seed)])
    return float(stat_a(full)[0]), float(stat_b(full)[0]), diffs


def basis(metric: str, corpus: bool) -> str:
    """What is actually compared; starts with NOT when it is not the metric itself."""
    if corpus:
        if metric == "macro_f1":
            return "macro-F1 from predictions and gold"
        return f"corpus {metric} from sacrebleu statistics"
    if metric == "macro_f1":
        return "NOT macro-F1 (no predictions/gold supplied): per-item correctness, i.e. accuracy"
    if metric in CORPUS:
        return f"NOT corpus {metric} (no sufficient statistics supplied): mean of sentence-level {metric}"
    if metric in UNWEIGHTED:
        return f"NOT token-weighted {metric} (token counts are not stored): unweighted per-item mean"
    return f"mean of per-item {metric or 'scores'}"


def paired_difference(metric: str, a_per_item: Sequence[float], b_per_item: Sequence[float], resamples: int = 2000,
                      seed: int = 0, a_stats: Any = None, b_stats: Any = None) -> dict[str, Any]:
    """metric(a) - metric(b) on the same items, with a 95% paired bootstrap interval and a two-sided p-value.
    a_stats/b_stats (from `corpus_stats`) let bleu, chrf and macro_f1 be recomputed as corpus scores."""
    a, b = _aligned(a_per_item, b_per_item)
    if (a_stats is None) != (b_stats is None):
        raise ValueError("pass corpus statistics for both sides or for neither")
    corpus = metric in CORPUS and a_stats is not None
    va, vb, diffs = _paired(statistic(metric, a, a_stats), statistic(metric, b, b_stats), len(a), resamples, seed)
    diff = va - vb
    mcnemar = not corpus and (metric in BINARY or metric == "macro_f1")
    if mcnemar:
        if not (np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all()):
            raise DataError(f"{metric}: per-item scores must be 0/1 for McNemar's test")
        p = mcnemar_exact(b.astype(int), a.astype(int))[2]
    else:
        p = (1 + int(np.sum(np.abs(diffs - diff) >= abs(diff) - 1e-12))) / (len(diffs) + 1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    test = (f"{basis(metric, corpus)}; {'McNemar exact' if mcnemar else 'null-shifted bootstrap'} p; paired "
            f"bootstrap 95% percentile interval (resamples={resamples}, seed={seed})")
    return {"a": va, "b": vb, "diff": diff, "ci_low": float(low), "ci_high": float(high), "p_value": min(1.0, p),
            "test": test, "n": len(a)}


def non_inferiority(candidate_per_item: Sequence[float], baseline_per_item: Sequence[float], margin: float,
                    alpha: float = 0.05, higher_is_better: bool = True, *, metric: str = "", resamples: int = 2000,
                    seed: int = 0, candidate_stats: Any = None, baseline_stats: Any = None) -> dict[str, Any]:
    """Is the candidate no worse than the baseline by `margin` or more (in the metric's units)?

    The rule, for higher-is-better metrics (mirrored for lower-is-better): with d = candidate - baseline and
    d* its B paired bootstrap resamples, `passed` iff p_value = (1 + #{d* <= -margin}) / (B + 1) is below alpha
    (a resampled p is never 0: the observed sample counts as one of the draws); equivalently iff the one-sided
    (1 - alpha) lower confidence bound of d, the j-th smallest d* with j = ceil(alpha (B + 1) - 1), is above -margin.
    The burden of proof is on the candidate: too few items to tell fails, and margin 0 means
    the candidate must be shown strictly better (use a positive margin for "no worse").
    `regressed` is the opposite claim, evidence that the candidate IS worse by more than the margin: the
    one-sided (1 - alpha) upper bound (the j-th largest d*) is below -margin, p_regression = (1 + #{d* >= -margin})
    / (B + 1) < alpha. On two identical models it fires in about alpha of trials (tests/harness/test_compare.py
    checks both rates). (ci_low, ci_high) are the two one-sided bounds, i.e. a (1 - 2 alpha) two-sided interval of d.
    """
    if margin < 0 or not 0 < alpha < 0.5:
        raise ValueError(f"need margin >= 0 and 0 < alpha < 0.5 (got margin={margin}, alpha={alpha})")
    c, b = _aligned(candidate_per_item, baseline_per_item)
    vc, vb, diffs = _paired(statistic(metric, c, candidate_stats), statistic(metric, b, baseline_stats), len(c),
                            resamples, seed)
    p_value, p_regression, low, high = bootstrap_decision(diffs if higher_is_better else -diffs, margin, alpha)
    ci_low, ci_high = (low, high) if higher_is_better else (-high, -low)
    return {"passed": p_value < alpha, "regressed": p_regression < alpha, "diff": vc - vb, "ci_low": ci_low,
            "ci_high": ci_high, "p_value": p_value, "p_regression": p_regression, "candidate": vc, "baseline": vb,
            "margin": margin, "alpha": alpha, "n": len(c), "se": float(np.std(diffs)), "df": math.inf,
            "resamples": resamples,
            "test": (f"{basis(metric, metric in CORPUS and candidate_stats is not None)}; paired bootstrap one-sided "
                     f"bounds (resamples={resamples}, seed={seed})")}


def bootstrap_decision(gain: np.ndarray, margin: float, alpha: float) -> tuple[Any, Any, Any, Any]:
    """non_inferiority's numbers from (..., B) resampled gains (> 0: the candidate is better): p_value,
    p_regression, and the one-sided (1 - alpha) lower and upper bounds of the gain, as floats, or arrays over the
    leading axes (the calibration tests decide thousands of trials at once)."""
    b = gain.shape[-1]
    p_value = (1 + np.sum(gain <= -margin, axis=-1)) / (b + 1)
    p_regression = (1 + np.sum(gain >= -margin, axis=-1)) / (b + 1)
    j = math.ceil(round(alpha * (b + 1) - 1, 9))  # p_value < alpha iff fewer than j resampled gains are <= -margin
    ordered = np.sort(gain, axis=-1)
    low = ordered[..., j - 1] if j >= 1 else np.full(gain.shape[:-1], -np.inf)
    high = ordered[..., b - j] if j >= 1 else np.full(gain.shape[:-1], np.inf)
    if gain.ndim == 1:
        return float(p_value), float(p_regression), float(low), float(high)
    return p_value, p_regression, low, high


CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def p_text(p: float, resamples: int) -> str:
    """A resampled p-value as printed: at its floor 1 / (B + 1) (no resample reached the threshold) the data say
    only that p is below about 1 / B, so it reads as that bound (`< 0.0005` for 2,000 resamples), never as 0."""
    if resamples and p <= 1 / (resamples + 1) * (1 + 1e-9):
        return f"< {1 / resamples:.2g}"
    return f"{p:.4g}"


def holm_adjusted(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values: with p sorted ascending, q_(k) = max_{j <= k} min(1, (m - j + 1) p_(j)).
    Rejecting q <= alpha is Holm's procedure, which controls the family-wise error rate. NaN stays NaN."""
    p, order, nan = _sorted(pvalues)
    q = np.maximum.accumulate(np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order]))
    return _unsort(q, order, nan)


def bh_adjusted(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values: q_(k) = min_{j >= k} min(1, m p_(j) / j). Rejecting q <= alpha is
    the step-up procedure, which controls the false discovery rate. NaN stays NaN (and counts in m)."""
    p, order, nan = _sorted(pvalues)
    scaled = np.minimum(1.0, len(p) * p[order] / np.arange(1, len(p) + 1))
    return _unsort(np.minimum.accumulate(scaled[::-1])[::-1], order, nan)


def adjust(pvalues: Sequence[float], correction: str) -> list[float]:
    """Adjusted p-values for `correction` holm, bh or none (the p-values unchanged)."""
    methods = {"holm": holm_adjusted, "bh": bh_adjusted, "none": lambda p: [float(x) for x in p]}
    if correction not in methods:
        raise ValueError(f"correction must be one of {', '.join(methods)} (got {correction!r})")
    return methods[correction](pvalues)


def _sorted(pvalues: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.asarray(pvalues, dtype=float)
    nan = np.isnan(p)
    p = np.where(nan, 1.0, p)  # sorts last and can lower nobody's adjusted p
    return p, np.argsort(p, kind="stable"), nan


def _unsort(q_sorted: np.ndarray, order: np.ndarray, nan: np.ndarray) -> list[float]:
    q = np.empty(len(order))
    q[order] = q_sorted
    return np.where(nan, np.nan, q).tolist()


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> list[bool]:
    """Holm's step-down rejections at family-wise level alpha. NaN never rejects."""
    return [q <= alpha for q in holm_adjusted(pvalues)]


def benjamini_hochberg(pvalues: Sequence[float], alpha: float = 0.05) -> list[bool]:
    """Benjamini-Hochberg step-up rejections at false discovery rate alpha. NaN never rejects."""
    return [q <= alpha for q in bh_adjusted(pvalues)]


def bench_stats(metric: str, bench: BenchmarkRow, split: str,
                references: dict[tuple[str, str], list[list[str]]] | None) -> Any:
    refs = (references or {}).get((bench.benchmark, split))
    preds = (bench.predictions or {}).get(split)
    if metric not in CORPUS or refs is None or preds is None or len(preds) != len(refs):
        return None
    return corpus_stats(metric, preds, refs)


def seed_stats(metric: str, bench: BenchmarkRow, split: str, refs: list[list[str]] | None) -> list[Any] | None:
    """`corpus_stats` under each training seed (one entry with a single seed), or None without references."""
    if metric not in CORPUS or refs is None:
        return None
    seeded, one = (bench.seed_predictions or {}).get(split), (bench.predictions or {}).get(split)
    preds = seeded or ([one] if one is not None else [])
    if not preds or any(len(p) != len(refs) for p in preds):
        return None
    return [corpus_stats(metric, p, refs) for p in preds]


