"""results.json's generalisation entry on constructed inputs: the gap is test minus shifted on the main metric,
its interval comes from resampling the two splits independently (they hold different items), and the
overfitting signal is the last validation loss minus the last training loss."""
from __future__ import annotations

import numpy as np
import pytest

from harness.results.model import BenchmarkRow
from harness.scoring.metrics import scale_bound, score
from harness.statistics.gap import generalisation


def _generalisation(bench: dict, metric: str, *args, **kwargs) -> dict:
    """As the run calls it: on the benchmark's row, with the main metric's scale from the metric registry."""
    return generalisation(BenchmarkRow.from_json(bench), metric, *args, bound=scale_bound(metric), **kwargs)

TEST = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0]  # 9 of 12
SHIFTED = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]  # 3 of 7: another size, so nothing can pair the items


def entry(per_item: list[float], value: float | None = None) -> dict:
    return {"value": float(np.mean(per_item)) if value is None else value, "ci_low": 0.0, "ci_high": 1.0,
            "n": len(per_item), "ci_method": "wilson", "per_item": per_item}


def bench(test: dict | None, shifted: dict | None, metric: str = "accuracy", train: dict | None = None) -> dict:
    scores = {split: {metric: e} for split, e in (("test", test), ("shifted", shifted)) if e is not None}
    return {"scores": scores, "train": train}


def hand_interval(a: list[float], b: list[float], resamples: int, seed: int) -> tuple[float, float]:
    """Percentile interval of mean(resampled a) - mean(resampled b), each split resampled on its own: for every
    resample, len(a) draws for the test split, then len(b) draws for the shifted split, from one seeded stream."""
    rng = np.random.Generator(np.random.PCG64(seed))  # the bit generator harness/statistics/gap.py names
    diffs = []
    for _ in range(resamples):
        ia = rng.integers(0, len(a), len(a))
        ib = rng.integers(0, len(b), len(b))
        diffs.append(sum(a[i] for i in ia) / len(a) - sum(b[i] for i in ib) / len(b))
    diffs.sort()
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def test_gap_is_test_minus_shifted_and_its_interval_resamples_each_split():
    got = _generalisation(bench(entry(TEST), entry(SHIFTED)), "accuracy", resamples=500, seed=7)
    assert got["metric"] == "accuracy"
    assert got["gap"] == pytest.approx(9 / 12 - 3 / 7, abs=1e-15)
    assert (got["gap_ci_low"], got["gap_ci_high"]) == pytest.approx(hand_interval(TEST, SHIFTED, 500, 7), abs=1e-12)
    assert got["gap_ci_low"] < got["gap"] < got["gap_ci_high"]
    assert "overfit_loss_gap" not in got  # no training recorded
    again = _generalisation(bench(entry(TEST), entry(SHIFTED)), "accuracy", resamples=500, seed=7)
    assert again == got  # seeded
    other = _generalisation(bench(entry(TEST), entry(SHIFTED)), "accuracy", resamples=500, seed=8)
    assert (other["gap_ci_low"], other["gap_ci_high"]) != (got["gap_ci_low"], got["gap_ci_high"])


def test_the_interval_is_not_paired():
    """The same per-item scores on both splits: a paired bootstrap would give [0, 0]; independent resampling of
    two samples of 12 items has real width."""
    got = _generalisation(bench(entry(TEST), entry(TEST)), "accuracy", resamples=400, seed=0)
    assert got["gap"] == 0.0
    assert got["gap_ci_low"] < -0.1 and got["gap_ci_high"] > 0.1
    assert (got["gap_ci_low"], got["gap_ci_high"]) == pytest.approx(hand_interval(TEST, TEST, 400, 0), abs=1e-12)


def test_gap_uses_the_main_metric_and_its_value():
    """Two metrics on each split: the gap is the main metric's stored value, test minus shifted."""
    scores = {"test": {"accuracy": entry(TEST), "rougeL": entry([0.5, 0.7], 0.6)},
              "shifted": {"accuracy": entry(SHIFTED), "rougeL": entry([0.2, 0.4], 0.3)}}
    got = _generalisation({"scores": scores, "train": None}, "rougeL", resamples=200, seed=0)
    assert got["metric"] == "rougeL" and got["gap"] == pytest.approx(0.3, abs=1e-15)
    assert (got["gap_ci_low"], got["gap_ci_high"]) == pytest.approx(hand_interval([0.5, 0.7], [0.2, 0.4], 200, 0),
                                                                    abs=1e-12)


def test_no_shifted_split_no_gap():
    assert _generalisation(bench(entry(TEST), None), "accuracy", 200, 0) == {}
    assert _generalisation(bench(None, entry(SHIFTED)), "accuracy", 200, 0) == {}
    assert _generalisation(bench(entry(TEST), entry(SHIFTED)), "macro_f1", 200, 0) == {}  # main metric not scored


@pytest.mark.parametrize("train, expected", [
    ({"train_loss": [1.5, 0.7], "val_loss": [2.0, 1.4, 1.1]}, 1.1 - 0.7),  # last validation minus last training
    ({"train_loss": [0.9], "val_loss": [2.5, 0.6]}, 0.6 - 0.9),  # negative: validation below training
    ({"train_loss": [], "val_loss": [2.0]}, None),  # epochs 0: nothing trained
    ({"train_loss": [0.9], "val_loss": [2.0]}, None),  # no validation after training began
    ({"train_loss": [0.9], "val_loss": [float("nan"), float("nan")]}, None),  # no validation split: not NaN
    (None, None),
])
def test_overfit_loss_gap_is_last_validation_minus_last_training_loss(train, expected):
    got = _generalisation(bench(entry(TEST), entry(SHIFTED), train=train), "accuracy", 200, 0)
    if expected is None:
        assert "overfit_loss_gap" not in got
    else:
        assert got["overfit_loss_gap"] == pytest.approx(expected, abs=1e-15)
    assert got["gap"] == pytest.approx(9 / 12 - 3 / 7, abs=1e-15)  # the gap does not depend on training


def test_the_gap_interval_of_a_corpus_metric_contains_the_gap():
    """macro-F1: on test, 18 'a' and 2 'b' all predicted 'a' (accuracy 0.9, macro-F1 (36/38 + 0) / 2 = 0.474); on
    shifted, 10 'a' and 10 'b' all right (1.0 and 1.0). The gap is 0.474 - 1 = -0.526. Its interval used to resample
    per_item (per-item correctness, i.e. accuracy: about [-0.25, 0], excluding the gap); it now recomputes macro-F1
    on each split's resamples from the predictions and references, as the metric is computed."""
    gold_test, gold_shifted = ["a"] * 18 + ["b"] * 2, ["a"] * 10 + ["b"] * 10
    test = score("macro_f1", ["a"] * 20, [[g] for g in gold_test], resamples=0)
    shifted = score("macro_f1", gold_shifted, [[g] for g in gold_shifted], resamples=0)
    assert test.value == pytest.approx((36 / 38 + 0) / 2) and shifted.value == 1.0
    entry = bench(test.to_json(), shifted.to_json(), metric="macro_f1")
    entry["predictions"] = {"test": ["a"] * 20, "shifted": gold_shifted}
    refs = {"test": {"items": [[g] for g in gold_test]}, "shifted": {"items": [[g] for g in gold_shifted]}}
    got = _generalisation(entry, "macro_f1", 1000, 0, refs)
    assert got["gap"] == pytest.approx(36 / 76 - 1)
    assert got["gap_ci_low"] <= got["gap"] <= got["gap_ci_high"], got
    # every resample with a 'b' gives macro-F1 near (2 * 18 / 38) / 2: the interval hugs -0.53, far from [-0.25, 0]
    assert -0.6 < got["gap_ci_low"] and got["gap_ci_high"] <= -0.5
    # without predictions and references (an old stored run) it falls back to the per-item interval
    assert _generalisation(bench(test.to_json(), shifted.to_json(), metric="macro_f1"), "macro_f1", 1000, 0)[
        "gap_ci_high"] == pytest.approx(0.0)


def test_the_gap_interval_of_bleu_recomputes_corpus_bleu():
    import sacrebleu

    hyp_t = ["the cat sat on the mat", "a dog ran in the park", "it is raining today", "we like green tea"]
    ref_t = ["the cat sat on a mat", "a dog ran in a park", "it rains today", "we love green tea"]
    hyp_s, ref_s = ["hello there friend", "good morning all"], ["hello my friend", "good morning everyone"]
    test = score("bleu", hyp_t, [[r] for r in ref_t], resamples=0)
    shifted = score("bleu", hyp_s, [[r] for r in ref_s], resamples=0)
    entry = bench(test.to_json(), shifted.to_json(), metric="bleu")
    entry["predictions"] = {"test": hyp_t, "shifted": hyp_s}
    refs = {"test": {"items": [[r] for r in ref_t]}, "shifted": {"items": [[r] for r in ref_s]}}
    got = _generalisation(entry, "bleu", 500, 0, refs)
    assert got["gap"] == pytest.approx(sacrebleu.corpus_bleu(hyp_t, [ref_t]).score
                                       - sacrebleu.corpus_bleu(hyp_s, [ref_s]).score)
    assert got["gap_ci_low"] <= got["gap"] <= got["gap_ci_high"]


def test_the_gap_over_seeds_counts_the_seed_spread():
    """Three seeds whose gaps disagree (+0.2, 0, -0.2 on identical item sets): the seed-aware interval holds each
    seed's gap and is wider than the per-item interval of the seed means."""
    test_rows = [[1] * 8 + [0] * 2, [1] * 6 + [0] * 4, [1] * 4 + [0] * 6]
    shifted_rows = [[1] * 6 + [0] * 4] * 3

    def entry(rows):
        return {"value": float(np.mean(rows)), "per_item": np.mean(rows, axis=0).tolist(), "per_seed": rows,
                "seeds": [float(np.mean(r)) for r in rows]}

    seeded = bench(entry(test_rows), entry(shifted_rows))
    got = _generalisation(seeded, "accuracy", 1000, 0)
    assert got["gap_seeds"] == pytest.approx([0.2, 0.0, -0.2]) and got["gap"] == pytest.approx(0.0)
    assert got["gap_seed_sd"] == pytest.approx(0.2)
    flat = _generalisation(bench({k: v for k, v in entry(test_rows).items() if k not in ("per_seed", "seeds")},
                                 {k: v for k, v in entry(shifted_rows).items() if k not in ("per_seed", "seeds")}),
                           "accuracy", 1000, 0)
    assert got["gap_ci_low"] < flat["gap_ci_low"] and got["gap_ci_high"] > flat["gap_ci_high"]


def test_the_gap_over_two_disagreeing_seeds_stays_within_the_scale():
    """Two seeds whose gaps are -0.875 and +0.167 (df 1: the t quantile is 12.7): the interval is the widest an
    accuracy gap can be, [-1, 1], not the t interval's [-6.7, 6.0] (seen in a tiny bake-off's report)."""
    test_rows = [[0] * 8, [1] * 6 + [0] * 2]
    shifted_rows = [[1] * 7 + [0], [1] * 5 + [0] * 3]

    def entry(rows):
        return {"value": float(np.mean(rows)), "per_item": np.mean(rows, axis=0).tolist(), "per_seed": rows,
                "seeds": [float(np.mean(r)) for r in rows]}

    got = _generalisation(bench(entry(test_rows), entry(shifted_rows)), "accuracy", 500, 0)
    assert got["gap_seeds"] == pytest.approx([-0.875, 0.125])
    assert -1.0 <= got["gap_ci_low"] < got["gap"] < got["gap_ci_high"] <= 1.0
    assert got["gap_ci_low"] == -1.0 and got["gap_ci_high"] == 1.0  # the unclipped t interval is far wider
