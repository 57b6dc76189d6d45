"""Seed-aware statistics (harness/statistics/seeds.py) on hand-computed cases, and several training seeds through a tiny
bake-off: every seed its own unit, the sweep chosen on the mean over seeds, per-seed values kept."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.cli import main
from harness.config import RecipeConfig
from harness.errors import ConfigError
from harness.scoring.metrics import combine_metric, score
from harness.statistics.seeds import (
    combine,
    combine_change,
    non_inferiority_seeds,
    paired_difference_seeds,
    too_few_seeds,
)
from tests.conftest import TINY_EXIT


def test_seed_values_and_validation():
    assert RecipeConfig(seed=5, seeds=3).seed_values == [5, 6, 7]
    assert RecipeConfig(seeds=[3, 9]).seed_values == [3, 9]
    assert RecipeConfig(seed=5, seeds=3).for_seed(6) == RecipeConfig(seed=6)  # a one-seed run's recipe: same keys
    for bad in (0, [], [1, 1]):
        with pytest.raises(ConfigError, match="recipe.seeds"):
            RecipeConfig(seeds=bad)


def test_combine_counts_each_source_once_with_s_minus_1_df():
    rng = np.random.Generator(np.random.PCG64(0))
    values = [0.60, 0.70, 0.80]
    shared, own = rng.normal(0, 0.01, 400), rng.normal(0, 0.02, (3, 400))  # what the seeds share; each seed's own
    draws = 0.7 + shared + own  # (S, R): each seed's value on R item resamples
    sa = combine([values], [draws])
    seed_part = np.var(values, ddof=1) / 3  # holds each seed's own item noise (the seed-by-item part) once
    spread = np.var(draws - draws.mean(axis=0), axis=1, ddof=1).sum() / 2  # that noise, per seed
    item_part = np.var(draws.mean(axis=0), ddof=1) - spread / 3  # the resamples less it: what the seeds share
    assert item_part == pytest.approx(1e-4, rel=0.25)  # the shared part's variance, 0.01 ** 2
    assert sa.estimate == pytest.approx(0.70) and sa.se == pytest.approx(math.sqrt(seed_part + item_part))
    assert sa.df == 2 and sa.floor == pytest.approx(1 / 401)  # S - 1, whatever the parts; no p below 1 / (R + 1)
    low, high = sa.interval()
    assert high - sa.estimate == pytest.approx(sps.t.ppf(0.975, 2) * sa.se)
    assert sa.seed_sd == pytest.approx(0.1) and low < 0.5  # three seeds 10 points apart: a wide, honest interval
    one = combine([[0.7]], [draws[:1]])  # one seed: the item part alone (its own noise included), normal quantile
    assert one.df == math.inf and one.seed_sd is None and one.se == pytest.approx(np.std(draws[0], ddof=1))
    two = combine([[0.6, 0.8], [0.5, 0.5, 0.8]], [np.zeros((2, 10)), np.zeros((3, 10))])  # both sides' seed parts
    pa, pb = np.var([0.6, 0.8], ddof=1) / 2, np.var([0.5, 0.5, 0.8], ddof=1) / 3
    assert two.estimate == pytest.approx(0.7 - 0.6) and two.se == pytest.approx(math.sqrt(pa + pb))
    assert two.df == 1 and two.borrowed is None  # the fewer seeds of the two sides: 2 - 1
    lent = combine([[0.6, 0.7, 0.8], [0.65]], [np.zeros((3, 10)), np.zeros((1, 10))])
    assert lent.borrowed == 0 and lent.df == 2  # the one-seed side takes side 0's seed variance
    assert lent.se == pytest.approx(math.sqrt(0.01 / 3 + 0.01))
    assert combine([[0.7, 0.7, 0.7]], [np.full((3, 10), 0.7)]).p_below(0.5) == pytest.approx(1 / 11)  # se 0: not 0


def test_a_gate_needs_three_seeds_on_a_seeded_side():
    assert too_few_seeds([3, 3]) == too_few_seeds([3, 1]) == too_few_seeds([1, 5]) == ""
    assert "needs 3 or more" in too_few_seeds([2, 3]) and "2 vs 1" in too_few_seeds([2, 1])


def _per_seed(accuracies, n=200, seed=0):
    rng = np.random.Generator(np.random.PCG64(seed))
    gold = [["a"]] * n
    return [score("accuracy", ["a" if u < p else "b" for u in rng.random(n)], gold, 200, 0) for p in accuracies]


def test_combine_metric_keeps_every_seed():
    per = _per_seed([0.6, 0.7, 0.8])
    m = combine_metric("accuracy", per, None, 1000, 0)
    assert m.value == pytest.approx(np.mean([v.value for v in per])) and m.seeds == [v.value for v in per]
    assert m.seed_sd == pytest.approx(np.std([v.value for v in per], ddof=1))
    assert m.per_item == pytest.approx(np.mean([v.per_item for v in per], axis=0).tolist())
    assert m.per_seed == [v.per_item for v in per] and "3 seeds" in m.ci_method
    assert m.ci_low < min(v.ci_low for v in per) + 0.05 and m.ci_high - m.ci_low > per[0].ci_high - per[0].ci_low
    assert combine_metric("accuracy", per[:1], None, 1000, 0) == per[0]  # one seed: unchanged
    d = m.to_json()
    assert d["seeds"] == m.seeds and d["seed_sd"] == m.seed_sd and len(d["per_seed"]) == 3


def test_combine_change_is_the_mean_paired_change():
    before = [1, 1, 0, 1] * 25
    afters = [[1, 0, 0, 1] * 25, [1, 1, 0, 0] * 25, [0, 1, 0, 1] * 25]
    out = combine_change([[b - a for b, a in zip(before, after)] for after in afters], 500, 0)
    assert out["value"] == pytest.approx(0.25) and out["seeds"] == [0.25, 0.25, 0.25] and out["seed_sd"] == 0
    assert out["ci_low"] < 0.25 < out["ci_high"]


def _entry(per):
    return combine_metric("accuracy", per, None, 200, 0)


def test_seed_aware_comparisons_count_both_sides_seeds():
    a, b = _per_seed([0.70, 0.72, 0.74], seed=1), _per_seed([0.60, 0.70, 0.80], seed=2)
    res = paired_difference_seeds("accuracy", _entry(a), _entry(b), 500, 0)
    assert res["diff"] == pytest.approx(np.mean([v.value for v in a]) - np.mean([v.value for v in b]))
    assert res["ci_low"] < res["diff"] < res["ci_high"] and "3 vs 3 training seeds" in res["test"]
    ni = non_inferiority_seeds(_entry(a), _entry(b), 0.02, 0.05, metric="accuracy", resamples=500)
    assert ni["p_regression"] == pytest.approx(1 - ni["p_value"]) and ni["ci_low"] < ni["diff"] < ni["ci_high"]
    assert ni["regressed"] is False  # the baseline's seed spread (sd 10 points) leaves no evidence either way
    lower = non_inferiority_seeds(_entry(b), _entry(a), 0.0, 0.05, False, metric="accuracy", resamples=500)
    assert lower["diff"] == pytest.approx(-res["diff"])  # lower-is-better flips the gain, not the difference


def test_several_seeds_through_a_tiny_bakeoff(tiny_config, tmp_path, capsys):
    out = tmp_path / "o"
    argv = ["run", str(tiny_config), "--quiet", "probes=[{spec: general_knowledge, max_items: 12}]", "bias=[]"]
    code = main([*argv, "--out", str(out), "recipe.seeds=2", "sweep={learning_rate: [1e-3, 5e-3]}"])
    assert code == TINY_EXIT, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    llama = next(c for c in results["candidates"] if c["name"] == "tiny-llama")["benchmarks"][0]
    assert llama["seeds"] == [0, 1] and [r["seed"] for r in llama["seed_runs"]] == [0, 1]
    acc = llama["scores"]["test"]["accuracy"]
    assert len(acc["seeds"]) == 2 and len(acc["per_seed"]) == 2 and acc["value"] == pytest.approx(np.mean(acc["seeds"]))
    assert "2 seeds" in acc["ci_method"] and len(llama["seed_predictions"]["test"]) == 2
    assert all(len(row["seeds"]) == 2 for row in llama["sweep"])  # each setting's validation under each seed
    chosen = next(row for row in llama["sweep"] if row["chosen"] or row["tied"])
    assert chosen["validation"] == pytest.approx(np.mean(chosen["seeds"]))
    probe = llama["probes"][0]
    assert len(probe["forgetting"]["seeds"]) == 2 and len(probe["per_item"]["after_per_seed"]) == 2
    assert probe["forgotten"] == pytest.approx(np.mean(probe["forgotten_per_seed"])) and probe["mcnemar_p"] is None
    assert len(probe["mcnemar_p_per_seed"]) == 2 and all(w["seeds"] == 2 for w in probe["most_forgotten"])
    report = (out / "report.md").read_text()
    assert "per seed " in report[report.index("## Forgetting"):]
    # 2 settings x 2 seeds tune units, each seed's chosen setting scored on test and shifted, probed after tuning;
    # the base model's probe once: a one-seed run with seed 1 reuses seed 1's units
    assert results["units"]["computed"] > 0
    again = main([*argv, "--out", str(tmp_path / "one"), "recipe.seed=1", "sweep={learning_rate: [1e-3, 5e-3]}"])
    assert again == TINY_EXIT
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    assert one["units"]["computed"] == 1  # only tiny-llama's base-model probe, under seed 1's key
    one_llama = next(c for c in one["candidates"] if c["name"] == "tiny-llama")["benchmarks"][0]
    assert one_llama["scores"]["test"]["accuracy"]["value"] == acc["seeds"][1]
    # tokens in the data and computed (issue 29) add up over seeds: each seed's training and scored splits, the base
    # model's probe once (this run: base + 2 tuned; seed 1 alone: base + 1 tuned)
    train, one_train = llama["train"], one_llama["train"]
    assert train["prefix"]["batches"] == 2 * one_train["prefix"]["batches"]
    assert train["tokens_computed"] == train["tokens"]  # unshared here: every seed's rows counted, not the first's
    assert llama["tokens"]["score"]["data"] == 2 * one_llama["tokens"]["score"]["data"]
    assert 2 * llama["tokens"]["probe"]["data"] == 3 * one_llama["tokens"]["probe"]["data"]
    cost = next(c for c in results["candidates"] if c["name"] == "tiny-llama")["cost"]
    assert (cost["train_tokens_in_data"], cost["scoring_tokens_in_data"]) == (
        train["tokens"], sum(t["data"] for t in llama["tokens"].values()))
    listed = main([*argv, "--out", str(tmp_path / "listed"), "recipe.seeds=[1]", "sweep={learning_rate: [1e-3, 5e-3]}"])
    assert listed == TINY_EXIT  # `seeds: [1]` trains under seed 1, exactly as `seed: 1`: every unit is reused
    same = json.loads((tmp_path / "listed" / "results.json").read_text())
    assert same["units"]["computed"] == 0
    for a, b in zip(same["candidates"], one["candidates"]):
        assert [x["scores"] for x in a["benchmarks"]] == [x["scores"] for x in b["benchmarks"]]
        assert [x["seeds"] for x in a["benchmarks"]] == [[1], [1]][: len(a["benchmarks"])]


def _probe_report(after: list[int], margins_after: list[float], p: float) -> dict:
    """One seed's forgetting report over four items, all right before tuning (margins 1.0)."""
    lost = [i for i, a in enumerate(after) if not a]
    return {"probe": "k", "forgotten": len(lost), "gained": 0, "mcnemar_p": p,
            "most_forgotten": [{"item": i, "prompt": f"q{i}", "answer": "a", "margin_before": 1.0,
                                "margin_after": margins_after[i]} for i in lost],
            "per_item": {"before": [1, 1, 1, 1], "after": after}}


def test_forgetting_counts_over_seeds_are_means_and_the_most_forgotten_are_those_most_seeds_forgot():
    from harness.execution.merge import _merge_probe

    reports = [_probe_report([0, 0, 1, 1], [-0.1, -0.9, 0.5, 0.5], 0.5),
               _probe_report([0, 1, 0, 1], [-0.2, 0.5, -2.0, 0.5], 0.5),
               _probe_report([0, 0, 1, 0], [-0.3, -0.1, 0.5, -0.4], 0.25)]
    merged = _merge_probe(reports, 200, 0)
    assert merged["forgotten"] == pytest.approx(7 / 3) and merged["forgotten_per_seed"] == [2, 2, 3]
    assert merged["gained"] == 0 and merged["mcnemar_p"] is None  # one seed's test is not the candidate's
    assert merged["mcnemar_p_per_seed"] == [0.5, 0.5, 0.25]
    assert merged["forgetting"]["value"] == pytest.approx(7 / 12)  # the seed-aware change stands in for McNemar
    worst = merged["most_forgotten"]
    # item 0: all three seeds; item 1: two (mean drop 1.5); items 2 and 3: one each, 2 dropped 3.0, 3 dropped 1.4
    assert [(w["item"], w["forgotten_by"]) for w in worst] == [(0, 3), (1, 2), (2, 1), (3, 1)]
    assert worst[0]["margin_after"] == -0.3 and worst[0]["seed_index"] == 2  # shown as the seed that dropped most
    assert all(w["seeds"] == 3 for w in worst)


def test_bias_flip_counts_over_seeds_are_means():
    from harness.execution.merge import _merge_bias

    def report(after, new, p):
        return {"probe": "b", "new_flips": new, "vanished_flips": 1, "mcnemar_p": p,
                "per_pair": {"before": [1, 0, 0, 0], "after": after}}

    merged = _merge_bias([report([0, 1, 0, 0], 1, 1.0), report([0, 1, 1, 1], 3, 0.6)], 200, 0)
    assert merged["new_flips"] == 2 and merged["vanished_flips"] == 1 and merged["mcnemar_p"] is None
    assert merged["new_flips_per_seed"] == [1, 3] and merged["mcnemar_p_per_seed"] == [1.0, 0.6]
    assert merged["change"]["value"] == pytest.approx((0 + 0.5) / 2)


def test_reports_show_mean_counts_and_each_seeds_mcnemar_p():
    from reports.format import count_text, mcnemar_text

    assert count_text(3) == "3" and count_text(3.0) == "3" and count_text(7 / 3) == "2.3" and count_text(None) == "-"
    assert mcnemar_text(0.0312, None) == "0.0312" and mcnemar_text(None, None) == "-"
    assert mcnemar_text(None, [0.5, 0.25]) == "per seed 0.5, 0.25"


def test_a_baseline_gate_on_two_seeds_fails_closed():
    from harness.gates.baseline import baseline_test

    def cand(name, seeds):
        per = _per_seed([0.7] * seeds, seed=seeds)
        bench = {"benchmark": "b", "version": "1", "status": "ok", "data_sha256": {"test": "t"},
                 "scores": {"test": {"accuracy": _entry(per).to_json()}}}
        return {"name": name, "status": "ok", "benchmarks": [bench]}

    base = ({"run_id": "r0", "candidates": [cand("base", 3)]}, "base")
    res, why = baseline_test(cand("c", 2), "b.accuracy", base, 0.02, resamples=200)
    assert res is None and "2 vs 3 training seeds" in why and "needs 3 or more" in why
    res, why = baseline_test(cand("c", 3), "b.accuracy", base, 0.02, resamples=200)
    assert res is not None and why == "" and "3 vs 3 training seeds" in res["test"]
    res, _ = baseline_test(cand("c", 1), "b.accuracy", base, 0.02, resamples=200)  # one seed: takes the 3 seeds' spread
    assert res["borrowed"] == "the one-seed candidate takes the seed variance of the 3-seed baseline"
