"""Coverage: do the 95% intervals the project reports contain the true value in about 95% of data sets?

Each check draws at least 1,000 data sets from a generative model whose true metric value is known exactly,
computes the interval harness/scoring/metrics.py reports, and counts how often it contains the truth. The claim checked
is the one in docs/statistics.md: 93-97% at the sample sizes named there (Wilson, accuracy: n >= 200 items;
percentile bootstrap, macro-F1: n >= 100 items; corpus BLEU: n >= 100 sentences).

Speed: the bootstrap intervals are the percentile interval of a statistic over `bootstrap_indices(n, B, seed)`.
Calling score() 2,000 times would run scikit-learn or sacrebleu two million times (minutes), so the coverage
tests compute the same interval vectorised over all B resamples at once; test_*_fast_path_is_the_reported_interval
checks on a few data sets that this is exactly the interval score() reports (same resamples, same percentiles).
B = 1000, the project's default (`bootstrap_resamples`), and seed 0 for every data set, as a run uses its
recipe seed for every split: the resamples are independent of the data, so coverage is still over fresh data.

Seeds (also for test_stats, test_compare's calibration and test_ties): data are drawn from
numpy.random.Generator(numpy.random.PCG64(seed)), not default_rng(seed). Today both give the same numbers, but
numpy promises a reproducible stream only for the same BitGenerator, seed and calls (its random compatibility
policy, NEP 19), and default_rng promises only "the default BitGenerator"; naming PCG64 pins the one thing these
tests can pin. A numpy upper bound in pyproject would pin more (a distribution's algorithm may still change in a
release) but would hold every user of sftbench back for the sake of its tests; these tests assert rates with
binomial slack, so a changed draw moves a count within the slack rather than breaking an exact number.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from harness.scoring.metrics import score
from harness.statistics.intervals import bootstrap_indices, wilson
from harness.statistics.paired import corpus_stats

B, SEED = 1000, 0
LOW, HIGH = 0.93, 0.97  # the documented claim


def rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def percentile_interval(values: np.ndarray) -> np.ndarray:
    """harness.statistics.intervals.bootstrap_ci's interval of (B,) or (..., B) resampled values: the 2.5 and 97.5 percentiles."""
    return np.percentile(values, [2.5, 97.5], axis=-1)


def draw_counts(n: int) -> np.ndarray:
    """(B, n): how often each item is drawn in each of the project's resamples (seed SEED)."""
    idx = bootstrap_indices(n, B, SEED)
    return np.bincount((idx + n * np.arange(B)[:, None]).ravel(), minlength=B * n).reshape(B, n)


def check_coverage(low: np.ndarray, high: np.ndarray, truth: float | np.ndarray) -> None:
    """The rate, and each tail: a central 95% interval misses about 2.5% on each side, so an interval shifted off
    the truth fails even when its width makes up the rate. 1-4% per tail: the small-n bias of a ratio statistic
    makes the tails unequal (BLEU at 100 sentences: 2.45% / 3.25%)."""
    below, above = float(np.mean(truth < low)), float(np.mean(truth > high))
    rate = 1 - below - above
    assert LOW <= rate <= HIGH, f"coverage {rate:.4f} ({below:.4f} of intervals above the truth, {above:.4f} below)"
    assert 0.01 <= below <= 0.04 and 0.01 <= above <= 0.04, (below, above)


# ----------------------------------------------------------------------------------------------------------------
# Accuracy: Wilson. Coverage of a binomial interval is a step function of p with known exact values, so it is
# checked exactly over a grid of p, then by simulation through score("accuracy").

def exact_wilson_coverage(n: int, p: np.ndarray) -> np.ndarray:
    """P(Wilson interval of Binomial(n, p) contains p), summed over the n + 1 outcomes, for each p."""
    low, high = np.array([wilson(k, n) for k in range(n + 1)]).T  # (n + 1,) each
    pmf = sps.binom.pmf(np.arange(n + 1)[None, :], n, p[:, None])  # (len(p), n + 1)
    inside = (low[None, :] <= p[:, None]) & (p[:, None] <= high[None, :])
    return (pmf * inside).sum(axis=1)


@pytest.mark.parametrize("n", [200, 500, 1000])
def test_wilson_exact_coverage_stays_within_93_97_for_every_p(n):
    """Over p in [0.05, 0.95] (0.005 apart) the exact coverage oscillates but stays inside the claim: measured
    0.9378-0.9672 at n=200, 0.9421-0.9590 at n=500, 0.9457-0.9562 at n=1000. At n=100 it dips to 0.9357 near
    p=0.945 (inherent to a binomial interval, not a bug), which is why docs/statistics.md claims n >= 200. Near 0
    and 1 the interval is Wilson's with the continuity correction (harness/statistics/intervals.py NEAR_EDGE;
    test_small_seed_calibration.py checks it there)."""
    coverage = exact_wilson_coverage(n, np.linspace(0.05, 0.95, 181))
    assert LOW <= coverage.min() and coverage.max() <= HIGH, (coverage.min(), coverage.max())
    assert abs(coverage.mean() - 0.95) < 0.003


def test_accuracy_interval_covers_the_true_accuracy():
    """2,000 test sets of 200 items, each from its own model with true accuracy p ~ Uniform(0.05, 0.95): the share
    of score("accuracy") intervals containing p (measured 0.9475) matches the exact prediction (0.9502 on these
    p) within 3 binomial SEs, and lies in 93-97%."""
    n, sets = 200, 2000
    r = rng(1)
    truth = r.uniform(0.05, 0.95, sets)
    right = r.random((sets, n)) < truth[:, None]  # (sets, items): the model answers the item correctly
    gold = np.where(r.random((sets, n)) < 0.5, "yes", "no")
    wrong = np.where(gold == "yes", "no", "yes")
    low, high = np.empty(sets), np.empty(sets)
    for s in range(sets):
        m = score("accuracy", np.where(right[s], gold[s], wrong[s]).tolist(), gold[s][:, None].tolist())
        assert m.value == right[s].mean()
        low[s], high[s] = m.ci_low, m.ci_high
    inside = (low <= truth) & (truth <= high)
    predicted = exact_wilson_coverage(n, truth).mean()
    assert abs(inside.mean() - predicted) <= 3 * np.sqrt(predicted * (1 - predicted) / sets)
    assert LOW <= inside.mean() <= HIGH


# ----------------------------------------------------------------------------------------------------------------
# Macro-F1: bootstrap. The model: gold class y ~ PRIOR, prediction j ~ CONFUSION[y]. The population macro-F1 is
# the limit of the sample macro-F1 as n grows: per class 2 P(y=k, pred=k) / (P(y=k) + P(pred=k)), averaged.
# (The sample value is a ratio, slightly biased at finite n; the interval is judged against the limit.)

PRIOR = np.array([0.5, 0.3, 0.2])
CONFUSION = np.array([[0.85, 0.10, 0.05],
                      [0.15, 0.75, 0.10],
                      [0.10, 0.20, 0.70]])  # row: gold class, column: predicted class
K = len(PRIOR)
CLASSES = np.array(["billing", "login", "refund"])  # sorted, so class k is scikit-learn's label k


def population_macro_f1() -> float:
    joint = PRIOR[:, None] * CONFUSION  # (gold, predicted)
    return float(np.mean(2 * np.diag(joint) / (joint.sum(axis=1) + joint.sum(axis=0))))


def draw_f1_sets(r: np.random.Generator, sets: int, n: int) -> np.ndarray:
    """(sets, n) confusion cells gold * K + predicted."""
    gold = r.choice(K, size=(sets, n), p=PRIOR)
    pred = (r.random((sets, n))[..., None] > CONFUSION[gold].cumsum(axis=-1)).sum(axis=-1)
    return gold * K + pred


def macro_f1_of_confusions(conf: np.ndarray) -> np.ndarray:
    """(..., K, K) confusion counts -> (...,) macro-F1 over the K gold classes, zero_division=0 (as scikit-learn)."""
    tp, denom = np.diagonal(conf, axis1=-2, axis2=-1), conf.sum(axis=-1) + conf.sum(axis=-2)
    return np.divide(2 * tp, denom, out=np.zeros(denom.shape), where=denom > 0).mean(axis=-1)


def macro_f1_intervals(cells: np.ndarray) -> np.ndarray:
    """(sets, n) cells -> (2, sets) bootstrap intervals: the confusion matrix of every resample of every set."""
    sets, n = cells.shape
    onehot = np.eye(K * K)[cells]  # (sets, n, K*K)
    conf = (draw_counts(n).astype(float) @ onehot).reshape(sets, B, K, K)  # (B, n) @ (sets, n, K*K)
    return percentile_interval(macro_f1_of_confusions(conf))


def test_population_macro_f1_is_the_large_sample_limit():
    cells = draw_f1_sets(rng(2), 1, 2_000_000)[0]
    conf = np.bincount(cells, minlength=K * K).reshape(K, K)
    assert abs(macro_f1_of_confusions(conf) - population_macro_f1()) < 2e-3  # sd of the sample value ~3e-4


def test_macro_f1_fast_path_is_the_reported_interval():
    cells = draw_f1_sets(rng(3), 2, 150)  # two: each score() call runs scikit-learn 1,000 times (~3 s)
    fast = macro_f1_intervals(cells)
    for s, row in enumerate(cells):
        m = score("macro_f1", CLASSES[row % K].tolist(), CLASSES[row // K][:, None].tolist(), resamples=B, seed=SEED)
        assert (m.ci_low, m.ci_high) == pytest.approx(tuple(fast[:, s]), abs=1e-12)


@pytest.mark.parametrize("n, sets", [(100, 2000), (400, 1000)])
def test_macro_f1_interval_covers_the_population_value(n, sets):
    """Measured 0.9455 at n=100 and 0.9520 at n=400 (2,000 / 1,000 sets, population macro-F1 0.7664). At 50 items
    it is 0.9380, too close to 93% to claim, hence n >= 100 in docs/statistics.md."""
    cells = draw_f1_sets(rng(4 + n), sets, n)
    low, high = np.concatenate([macro_f1_intervals(chunk) for chunk in np.array_split(cells, sets // 100)], axis=1)
    check_coverage(low, high, population_macro_f1())


# ----------------------------------------------------------------------------------------------------------------
# Corpus BLEU: bootstrap. The model: a reference of 4 + Poisson(10) Zipf-distributed words; the hypothesis keeps
# each word (65%), replaces it by a random word (20%), drops it (10%) or keeps it and inserts one (5%). A test set
# is n sentence pairs drawn with replacement from a POOL of such pairs, so the population is the pool itself and
# its BLEU is known exactly: corpus BLEU is a function of the summed sufficient statistics (hypothesis and
# reference lengths, n-gram matches and totals) through ratios only, so the large-n limit of a test set's BLEU is
# the BLEU of the pool's mean statistics, which equals sacrebleu's corpus BLEU of the whole pool.

VOCAB = 300


def pool(size: int, seed: int) -> tuple[list[str], list[list[str]]]:
    r = rng(seed)
    zipf = 1 / np.arange(1, VOCAB + 1)
    words = np.array([f"w{i}" for i in range(VOCAB)])
    hyps, refs = [], []
    for _ in range(size):
        ref = words[r.choice(VOCAB, 4 + r.poisson(10), p=zipf / zipf.sum())]
        fate, other = r.random(len(ref)), words[r.choice(VOCAB, len(ref), p=zipf / zipf.sum())]
        hyp = [w for w, f, o in zip(ref, fate, other) for w in
               ([w] if f < 0.65 else [o] if f < 0.85 else [] if f < 0.95 else [w, o])]
        hyps.append(" ".join(hyp))
        refs.append([" ".join(ref)])
    return hyps, refs


@pytest.fixture(scope="module")
def bleu_pool() -> tuple[list[str], list[list[str]], np.ndarray]:
    hyps, refs = pool(6000, seed=5)
    return hyps, refs, corpus_stats("bleu", hyps, refs).astype(float)  # (pool, 10)


def bleu_of_stats(s: np.ndarray) -> np.ndarray:
    """(..., 10) summed sacrebleu statistics [hyp_len, ref_len, matches 1-4, totals 1-4] -> (...,) BLEU 0-100,
    sacrebleu's formula when every n-gram order has a match (its exp smoothing then never applies)."""
    assert (s[..., 2:6] > 0).all(), "a zero n-gram match count: sacrebleu would smooth, this formula does not"
    hyp_len, ref_len = s[..., 0], s[..., 1]
    brevity = np.where(hyp_len < ref_len, np.exp(1 - ref_len / hyp_len), 1.0)
    return 100 * brevity * np.exp(np.log(s[..., 2:6] / s[..., 6:10]).mean(axis=-1))


def bleu_intervals(stats: np.ndarray) -> np.ndarray:
    """(sets, n, 10) per-sentence statistics -> (2, sets) bootstrap intervals."""
    summed = draw_counts(stats.shape[1]).astype(float) @ stats  # (B, n) @ (sets, n, 10) -> (sets, B, 10)
    return percentile_interval(bleu_of_stats(summed))


def test_bleu_fast_path_is_the_reported_interval(bleu_pool):
    hyps, refs, stats = bleu_pool
    assert bleu_of_stats(stats.sum(axis=0)) == pytest.approx(score("bleu", hyps, refs, resamples=0).value, abs=1e-9)
    pick = rng(6).integers(0, len(hyps), size=(3, 60))
    fast = bleu_intervals(stats[pick])
    for s, items in enumerate(pick):
        m = score("bleu", [hyps[i] for i in items], [refs[i] for i in items], resamples=B, seed=SEED)
        assert (m.ci_low, m.ci_high) == pytest.approx(tuple(fast[:, s]), abs=1e-9)


@pytest.mark.parametrize("n, sets", [(100, 2000), (400, 1000)])
def test_corpus_bleu_interval_covers_the_population_value(bleu_pool, n, sets):
    """Measured 0.9430 at 100 sentences of ~14 words and 0.9420 at 400 (population BLEU 38.90). The percentile
    bootstrap runs a point or so under 95% here; at 50 sentences it is 0.9400 and at 25 it fails the claim,
    0.9245, missing mostly above (5.2% of intervals lie below the truth: small corpora score lower BLEU)."""
    _, _, stats = bleu_pool
    truth = float(bleu_of_stats(stats.sum(axis=0)))
    pick = rng(7 + n).integers(0, len(stats), size=(sets, n))
    low, high = np.concatenate([bleu_intervals(stats[chunk]) for chunk in np.array_split(pick, sets // 100)], axis=1)
    check_coverage(low, high, truth)
