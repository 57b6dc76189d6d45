"""Paired comparisons: each test against a hand computation or the reference library, then the
non-inferiority rule's calibration (A/A and at the margin) and its power against an analytic prediction."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import f1_score

from harness.results.compare import compare_runs
from harness.errors import DataError
from harness.gates.baseline import check_vs_baseline
from harness.scoring.metrics import score
from harness.statistics.intervals import mcnemar_exact
from harness.statistics.paired import (
    benjamini_hochberg,
    corpus_stats,
    holm,
    non_inferiority,
    paired_difference,
    resample_counts,
)
from tests.harness.test_store import make_results


def indices(counts_row: np.ndarray) -> np.ndarray:
    """A resample as item indices, for checking against a library that takes a list of items."""
    return np.repeat(np.arange(len(counts_row)), counts_row)


def test_resample_counts_are_seeded_bootstrap_draws():
    blocks = list(resample_counts(30, 600, seed=4, chunk=256))
    assert [b.shape for b in blocks] == [(256, 30), (256, 30), (88, 30)]
    counts = np.concatenate(blocks)
    assert (counts.sum(axis=1) == 30).all()
    assert np.array_equal(counts, np.concatenate(list(resample_counts(30, 600, seed=4, chunk=256))))
    assert abs(counts.mean() - 1) < 0.01  # each item is drawn once per resample on average


def test_binary_metric_uses_mcnemar_and_a_paired_interval():
    a = [1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0] * 5
    b = [1, 0, 0, 0, 1, 0, 0, 1, 1, 0, 1, 1] * 5
    res = paired_difference("accuracy", a, b, resamples=1000, seed=0)
    # by hand: a has 45/60 right, b 30/60; a gains 20 items over b and loses 5
    assert res["diff"] == pytest.approx(45 / 60 - 30 / 60) and res["n"] == 60
    assert mcnemar_exact(b, a)[:2] == (5, 20)
    assert res["p_value"] == pytest.approx(mcnemar_exact(b, a)[2])
    assert res["ci_low"] < res["diff"] < res["ci_high"] and res["ci_low"] > 0
    assert "McNemar exact" in res["test"]
    assert paired_difference("accuracy", a, b, resamples=1000, seed=0) == res  # the seed fixes the numbers


def test_mean_metric_uses_a_null_shifted_bootstrap_p():
    rng = np.random.Generator(np.random.PCG64(0))  # a named bit generator: see tests/harness/test_coverage.py
    a = rng.random(80)
    same = paired_difference("rouge1", a, a)
    assert same["diff"] == 0 and same["p_value"] == 1 and same["ci_low"] == same["ci_high"] == 0
    better = paired_difference("rouge1", a + 0.2, a - rng.random(80) * 0.01, resamples=999)
    assert better["p_value"] == pytest.approx(1 / 1000)  # no resample comes near the observed difference
    assert "null-shifted bootstrap" in better["test"]


def test_items_must_align():
    with pytest.raises(DataError, match="items do not align: 3 per-item scores against 2"):
        paired_difference("accuracy", [1, 0, 1], [1, 0])
    with pytest.raises(DataError, match="no per-item scores"):
        paired_difference("accuracy", [], [])
    with pytest.raises(DataError, match="must be 0/1"):
        paired_difference("accuracy", [0.5, 1], [1, 1])


def test_macro_f1_is_recomputed_like_scikit_learn():
    rng = np.random.Generator(np.random.PCG64(1))
    labels = np.array(["billing", "refund", "login", "other"])
    gold = labels[rng.integers(0, 4, 120)].tolist()
    pa = [g if rng.random() < 0.8 else str(labels[rng.integers(0, 4)]) for g in gold]
    pb = [g if rng.random() < 0.6 else "other" for g in gold]
    refs = [[g] for g in gold]
    res = paired_difference("macro_f1", [float(p == g) for p, g in zip(pa, gold)],
                            [float(p == g) for p, g in zip(pb, gold)], resamples=300, seed=2,
                            a_stats=corpus_stats("macro_f1", pa, refs), b_stats=corpus_stats("macro_f1", pb, refs))
    def sk(pred):  # harness.scoring.metrics's macro_f1, without its own bootstrap
        return f1_score(gold, pred, labels=sorted(set(gold)), average="macro", zero_division=0)

    assert res["a"] == pytest.approx(sk(pa), abs=1e-12) and res["diff"] == pytest.approx(sk(pa) - sk(pb), abs=1e-12)
    assert res["test"].startswith("macro-F1 from predictions and gold")
    # one resample by hand: the same items for both sides, scored by scikit-learn
    counts = next(resample_counts(120, 300, seed=2))[7]
    idx = indices(counts)
    g, a, b = (np.array(x, dtype=object)[idx] for x in (gold, pa, pb))
    expect = (f1_score(g, a, labels=sorted(set(gold)), average="macro", zero_division=0)
              - f1_score(g, b, labels=sorted(set(gold)), average="macro", zero_division=0))
    from harness.statistics.paired import _macro_f1

    got = _macro_f1(pa, gold)(counts[None]) - _macro_f1(pb, gold)(counts[None])
    assert got[0] == pytest.approx(expect, abs=1e-12)


def test_macro_f1_without_gold_falls_back_and_says_so():
    res = paired_difference("macro_f1", [1, 0, 1, 1], [1, 1, 0, 0])
    assert res["test"].startswith("NOT macro-F1") and "accuracy" in res["test"]


def test_bleu_is_recomputed_as_a_corpus_score():
    from sacrebleu.metrics import BLEU

    refs = [["the cat sat on the mat"], ["a dog barked loudly at night", "the dog barked at night"],
            ["rain is expected tomorrow"], ["she reads a book every evening"], ["prices rose sharply in may"]] * 4
    ha = ["the cat sat on a mat", "a dog barked at night", "rain expected tomorrow", "she reads books every evening",
          "prices rose in may"] * 4
    hb = ["cat on mat", "dog at night", "rain tomorrow", "she reads", "prices rose"] * 4
    sa, sb = score("bleu", ha, refs), score("bleu", hb, refs)
    res = paired_difference("bleu", sa.per_item, sb.per_item, resamples=200, seed=3,
                            a_stats=corpus_stats("bleu", ha, refs), b_stats=corpus_stats("bleu", hb, refs))
    assert (res["a"], res["b"]) == (sa.value, sb.value)
    assert "corpus bleu from sacrebleu statistics" in res["test"]
    counts = next(resample_counts(20, 200, seed=3))[0]
    idx = indices(counts)
    streams = [[refs[i][k] if k < len(refs[i]) else None for i in idx] for k in range(2)]
    from harness.statistics.paired import _sacrebleu_corpus

    one = _sacrebleu_corpus("bleu", corpus_stats("bleu", ha, refs))(counts[None])[0]
    assert one == pytest.approx(BLEU().corpus_score([ha[i] for i in idx], streams).score, abs=1e-9)
    fallback = paired_difference("bleu", sa.per_item, sb.per_item)
    assert fallback["test"].startswith("NOT corpus bleu") and fallback["a"] == pytest.approx(np.mean(sa.per_item))


def test_holm_and_benjamini_hochberg_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted .005 <= .05/4, .01 <= .05/3, .03 > .05/2 -> stop
    assert holm(p, 0.05) == [True, False, False, True]
    # BH: thresholds .0125 .025 .0375 .05 against sorted .005 .01 .03 .04 -> all four pass
    assert benjamini_hochberg(p, 0.05) == [True, True, True, True]
    q = [0.011, 0.02, 0.04, 0.5, 0.03]
    # BH step-up: thresholds .01 .02 .03 .04 .05; sorted .011 .02 .03 .04 .5; the largest passing rank is 4,
    # which also rescues .011 (above its own threshold .01); Holm stops at once (.011 > .05/5)
    assert benjamini_hochberg(q, 0.05) == [True, True, True, False, True]
    assert holm(q, 0.05) == [False] * 5
    assert holm([0.001, float("nan")], 0.05) == [True, False]
    assert benjamini_hochberg([], 0.05) == [] and holm([], 0.05) == []


@pytest.mark.parametrize("higher", [True, False])
def test_non_inferiority_rule_matches_its_bounds(higher):
    rng = np.random.Generator(np.random.PCG64(5))
    for trial in range(30):
        base = rng.random(60)
        cand = base + rng.normal(-0.03, 0.15, 60)
        margin = float(rng.choice([0.0, 0.02, 0.05]))
        res = non_inferiority(cand, base, margin, 0.05, higher, resamples=400, seed=trial)
        if higher:
            assert res["passed"] == (res["ci_low"] > -margin)
            assert res["regressed"] == (res["ci_high"] < -margin)
        else:
            assert res["passed"] == (res["ci_high"] < margin)
            assert res["regressed"] == (res["ci_low"] > margin)
        assert res["passed"] == (res["p_value"] < 0.05) and res["regressed"] == (res["p_regression"] < 0.05)


# ----------------------------------------------------------------------------------------------------------
# Calibration and power. Design: each trial samples 500 items from a population of difficulties
# p_i ~ Beta(4, 1) (mean accuracy 0.8, E[p^2] = 2/3), as a benchmark samples items from a task. The baseline
# answers item i correctly with probability p_i, the candidate with probability s * p_i, independently given the
# item: paired through the shared items, with per-item noise on both sides. Trials use 1000 bootstrap resamples
# (the default is 2000) to keep the file fast; that only adds Monte Carlo noise to each trial's bound.

N, ALPHA = 500, 0.05


def _trials(scale: float, margin: float, trials: int, seed: int) -> tuple[float, float]:
    """(share of trials that pass non-inferiority, share that flag a regression)."""
    rng = np.random.Generator(np.random.PCG64(seed))  # a named bit generator: see tests/harness/test_coverage.py
    p = rng.beta(4, 1, size=(trials, N))  # (trials, items)
    base = (rng.random((trials, N)) < p).astype(float)
    cand = (rng.random((trials, N)) < scale * p).astype(float)
    res = [non_inferiority(cand[t], base[t], margin, ALPHA, resamples=1000, seed=t) for t in range(trials)]
    return float(np.mean([r["passed"] for r in res])), float(np.mean([r["regressed"] for r in res]))


def _slack(trials: int, rate: float = ALPHA) -> float:
    return 3 * np.sqrt(rate * (1 - rate) / trials)  # three binomial standard errors


def test_a_a_calibration():
    """Two identical models (scale 1): at margin 0 a regression is flagged in about alpha of trials, and so is
    a pass: with margin 0 the burden of proof makes non-inferiority a test of superiority."""
    passed, regressed = _trials(1.0, 0.0, 400, seed=1)
    assert regressed <= ALPHA + _slack(400)
    assert passed <= ALPHA + _slack(400)


def test_false_pass_rate_at_the_margin():
    """A candidate exactly `margin` worse (s = 1 - 0.03 / 0.8) is wrongly passed in at most alpha of trials."""
    passed, _ = _trials(1 - 0.03 / 0.8, 0.03, 400, seed=2)
    assert passed <= ALPHA + _slack(400)


def predicted_power(scale: float, alpha: float, n: int = N) -> float:
    """Power of a one-sided level-alpha paired test of accuracy when the candidate's per-item success probability
    is scale * p_i, p_i ~ Beta(4, 1), by McNemar's normal approximation (Connor 1987): with discordant shares
    p10 = E[s p (1 - p)] (candidate right, baseline wrong) and p01 = E[p (1 - s p)], psi = p10 + p01 and
    delta = p10 - p01,  power = Phi( (|delta| sqrt(n) - z_{1-alpha} sqrt(psi)) / sqrt(psi - delta^2) )."""
    e_p, e_p2 = 0.8, 2 / 3
    p10, p01 = scale * (e_p - e_p2), e_p - scale * e_p2
    psi, delta = p10 + p01, p10 - p01
    return float(norm.cdf((abs(delta) * np.sqrt(n) - norm.ppf(1 - alpha) * np.sqrt(psi)) / np.sqrt(psi - delta**2)))


def test_power_against_a_five_point_regression():
    """s = 0.9375 takes 5 points off the mean accuracy (0.8 -> 0.75): p10 = 0.125, p01 = 0.175, so the predicted
    power (`predicted_power`) is 0.655. The bootstrap counts resamples tied at exactly 0 against flagging, which
    makes it slightly conservative (0.628 over 2000 trials), hence the tolerance: 0.03 of bias plus about two
    binomial standard errors over 500 trials."""
    s = 0.9375
    assert s * (0.8 - 2 / 3) - (0.8 - s * 2 / 3) == pytest.approx(-0.05)  # delta: five points
    predicted = predicted_power(s, ALPHA)
    assert predicted == pytest.approx(0.655, abs=0.001)
    passed, regressed = _trials(s, 0.0, 500, seed=3)
    assert abs(regressed - predicted) <= 0.08
    assert passed == 0.0


def test_power_to_show_an_identical_model_non_inferior():
    """The lower side of test_a_a_calibration and test_false_pass_rate_at_the_margin, which a rule that never passes
    would also satisfy: an identical model (scale 1) with margin 0.03 must pass about as often as the normal
    approximation says. Per item d = cand - base is +-1 with probability E[p (1 - p)] = 2/15 each, so
    sd(d) = sqrt(4/15) and the pass rate is Phi(margin sqrt(n) / sd(d) - z_{1-alpha}) = 0.365 (3,000 trials
    measured 0.358: the resamples tied at exactly -margin count against passing)."""
    sd = np.sqrt(2 * (0.8 - 2 / 3))
    predicted = float(norm.cdf(0.03 * np.sqrt(N) / sd - norm.ppf(1 - ALPHA)))
    assert predicted == pytest.approx(0.365, abs=0.001)
    passed, regressed = _trials(1.0, 0.03, 600, seed=4)
    assert abs(passed - predicted) <= _slack(600, predicted)
    assert regressed <= ALPHA + _slack(600)


# The null-shifted bootstrap p-value of paired_difference, for a metric averaged over items (rouge*): item i has a
# quality q_i ~ Beta(2, 2) and each model scores it q_i + N(0, 0.1^2), the candidate shifted by `shift`; so
# d_i = shift + e_a - e_b is normal with sd 0.1 sqrt(2), and a two-sided level-alpha test of the mean of 200 items
# has power Phi(shift sqrt(n) / sd - z) + Phi(-shift sqrt(n) / sd - z), z = z_{1 - alpha/2}. 1000 resamples a
# trial (the default is 2000): the p-value's resolution, 0.001, is far below the slack.

MEAN_N, NOISE = 200, 0.1


def _mean_metric_rejections(shift: float, trials: int, seed: int) -> float:
    """Share of trials in which paired_difference("rouge1", ...) gives p < alpha."""
    rng = np.random.Generator(np.random.PCG64(seed))
    quality = rng.beta(2, 2, size=(trials, MEAN_N))  # (trials, items)
    cand = quality + shift + rng.normal(0, NOISE, size=(trials, MEAN_N))
    base = quality + rng.normal(0, NOISE, size=(trials, MEAN_N))
    p = [paired_difference("rouge1", cand[t], base[t], resamples=1000, seed=t)["p_value"] for t in range(trials)]
    return float(np.mean(np.array(p) < ALPHA))


def predicted_two_sided_power(shift: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    z, effect = norm.ppf(1 - alpha / 2), shift * np.sqrt(n) / sd
    return float(norm.cdf(effect - z) + norm.cdf(-effect - z))


def test_a_a_calibration_of_the_null_shifted_bootstrap_p():
    """Two models with the same score distribution: p < alpha in about alpha of trials, no more."""
    assert _mean_metric_rejections(0.0, 1000, seed=16) <= ALPHA + _slack(1000)


def test_power_of_the_null_shifted_bootstrap_p():
    """A 0.025 shift (sd of d 0.141, 200 items): predicted power 0.705 by the normal approximation."""
    predicted = predicted_two_sided_power(0.025, NOISE * np.sqrt(2), MEAN_N)
    assert predicted == pytest.approx(0.705, abs=0.001)
    assert abs(_mean_metric_rejections(0.025, 600, seed=7) - predicted) <= _slack(600, predicted)


# ----------------------------------------------------------------------------------------------------------
# Whole runs and the baseline gate

def test_compare_runs_pairs_candidates_by_name():
    a = make_results("run-a", accuracies={"small": 0.9, "large": 0.7, "only-in-a": 0.5}, seed=1)
    b = make_results("run-b", accuracies={"large": 0.7, "small": 0.6}, seed=2)
    rows = compare_runs(a, b, resamples=500)
    assert [(r["candidate"], r["benchmark"], r["split"], r["metric"]) for r in rows] == [
        ("small", "intents", "test", "accuracy"), ("small", "general_knowledge", "after", "probe_correct"),
        ("large", "intents", "test", "accuracy"), ("large", "general_knowledge", "after", "probe_correct")]
    small = rows[0]
    assert small["diff"] == pytest.approx(small["a"] - small["b"]) and small["higher_is_better"]
    assert small["significant"] == holm([r["p_value"] for r in rows])[0]
    assert all("significant" in r for r in compare_runs(a, b, resamples=200, correction="bh"))


def test_compare_runs_refuses_changed_data_or_versions():
    a = make_results("run-a")
    with pytest.raises(DataError, match=f"small/intents/test: data sha256 {'t' * 64} \\(a\\) != {'u' * 64} \\(b\\)"):
        compare_runs(a, make_results("run-b", test_sha="u" * 64))
    with pytest.raises(DataError, match="benchmark version 1 \\(a\\) != 2 \\(b\\)"):
        compare_runs(a, make_results("run-b", version="2"))
    with pytest.raises(DataError, match="share no candidate"):
        compare_runs(a, make_results("run-b", accuracies={"other": 0.5}))


def test_baseline_gate_passes_the_same_model_and_fails_closed():
    base = make_results("base", n=300, seed=1)
    same = base["candidates"][0]
    ok = check_vs_baseline(same, "intents.accuracy", (base, "small"), margin=0.02)
    assert ok.passed and ok.observed == 0 and ok.message.startswith("no significant regression")
    worse = make_results("new", accuracies={"small": 0.5}, n=300, seed=2)["candidates"][0]
    bad = check_vs_baseline(worse, "intents.accuracy", (base, "small"), margin=0.02, name="no regression")
    assert not bad.passed and bad.gate == "no regression" and "significant regression" in bad.message
    assert "upper 95% bound" in bad.message and "< -margin -0.0200" in bad.message

    def closed(candidate, baseline, metric="intents.accuracy"):
        v = check_vs_baseline(candidate, metric, baseline, margin=0.02)
        assert not v.passed and v.observed is None and v.message.startswith("fails closed")
        return v.message

    assert "no promoted baseline" in closed(same, None)
    assert "has no candidate 'ghost'" in closed(same, (base, "ghost"))
    assert "no metric 'bleu'" in closed(same, (base, "small"), "intents.bleu")
    changed = make_results("new", n=300, seed=1, test_sha="u" * 64)["candidates"][0]
    expect = f"intents/test data sha256 {'u' * 64} differs from the baseline's {'t' * 64}"
    assert expect in closed(changed, (base, "small"))
    bumped = make_results("new", n=300, seed=1, version="2")["candidates"][0]
    assert "intents version 2 differs from the baseline's 1" in closed(bumped, (base, "small"))
    shorter = make_results("new", n=299, seed=1)["candidates"][0]
    assert "items do not align" in closed(shorter, (base, "small"))
