"""Gates on results dicts: thresholds, caps (forgetting, generalisation gap, bias, cost) failing closed, several
baseline gates adjusted with Holm or Benjamini-Hochberg, their calibration and power, and `sftbench gate`."""
from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest

from harness.cli import main
from harness.config import GateConfig, build, load_config
from harness.errors import ConfigError
from harness.gates.baseline import baseline_test
from harness.gates.check import check, check_cap, recommend
from harness.statistics.paired import bh_adjusted, holm_adjusted
from harness.storage.store import Store
from tests.harness.test_compare import ALPHA, N, _slack, predicted_power
from tests.harness.test_store import make_results


def gate(**raw: Any) -> GateConfig:
    return build(GateConfig, raw, "gates[0]")


def rich_results(run_id: str = "run-1") -> dict[str, Any]:
    """make_results' two causal candidates plus a shifted split, a generalisation gap and a bias report."""
    results = make_results(run_id, accuracies={"small": 0.8, "large": 0.7}, n=40)
    for i, cand in enumerate(results["candidates"]):
        bench = cand["benchmarks"][0]
        bench["generalisation"] = {"metric": "accuracy", "gap": 0.04 + 0.1 * i, "gap_ci_low": -0.02 + 0.1 * i,
                                   "gap_ci_high": 0.10 + 0.1 * i}
        bench["bias"] = [{"probe": "intent_bias", "version": "1", "data_sha256": "b" * 64, "n": 50,
                          "change": {"value": 0.02 * i, "ci_low": -0.04, "ci_high": 0.06 + 0.02 * i}}]
    return results


def encoder(cand: dict[str, Any]) -> dict[str, Any]:
    """The candidate as an encoder would come out: no knowledge probe, no bias report."""
    enc = copy.deepcopy(cand)
    enc["kind"] = "encoder"
    for bench in enc["benchmarks"]:
        bench["probes"], bench["bias"] = [], []
    return enc


# ----------------------------------------------------------------------------------------------------------
# Config: one clear syntax, bad gates rejected with what is wrong

def test_cap_syntax_and_default_names():
    assert gate(forgetting="general_knowledge", max=0.05).name == "forgetting general_knowledge <= 0.05"
    assert gate(forgetting="*", max=0.05, on="ci_high").name == "forgetting * on ci_high <= 0.05"
    assert gate(generalisation_gap="intents", max=0.1).name == "generalisation gap intents <= 0.1"
    assert gate(bias="intent_bias", max="5e-2").max == 0.05  # YAML 1.1 reads 5e-2 as a string
    assert gate(cost="params", max=200_000_000).cap == "cost"
    assert gate(metric="intents.accuracy", value=0.5).cap == ""
    cfg = load_config(None, ["gates=[{cost: latency_ms_per_item, max: 50}]", "gate_correction=bh"])
    assert cfg.gates[0].name == "cost latency_ms_per_item <= 50" and cfg.gate_correction == "bh"


@pytest.mark.parametrize("raw, fragment", [
    ({"forgetting": "general_knowledge"}, "needs `max:`"),
    ({"metric": "a.b", "forgetting": "general_knowledge", "max": 1}, "exactly one of metric, forgetting"),
    ({"value": 1}, "a gate needs exactly one of metric"),
    ({"cost": "flops", "max": 1}, "gate cost must be one of params, latency_ms_per_item, peak_rss_mb, train_seconds"),
    ({"cost": "params", "max": 1, "on": "ci_high"}, "has no interval"),
    ({"bias": "intent_bias", "max": 0.1, "on": "ci_low"}, "'on' must be value or ci_high"),
    ({"forgetting": "general_knowledge", "max": 0.1, "baseline": "demo"}, "`baseline:` is for metric gates only"),
    ({"metric": "a.b", "max": 0.1}, "`max:` is for caps"),
    ({"forgetting": "general_knowledge", "max": "lots"}, "max"),
])
def test_bad_gates_say_what_is_wrong(raw, fragment):
    with pytest.raises(ConfigError) as err:
        gate(**raw)
    assert fragment in err.value.message


def test_unknown_correction_is_a_config_error():
    with pytest.raises(ConfigError, match="gate_correction must be one of holm, bh, none"):
        load_config(None, ["gate_correction=bonferroni"])


# ----------------------------------------------------------------------------------------------------------
# Thresholds: the point estimate or an interval bound, and NaN never passes

def scored(value: float, low: float, high: float, shifted: float | None = None) -> dict[str, Any]:
    """rich_results' first candidate with its intents accuracy (and optionally shifted accuracy) set by hand."""
    small = rich_results()["candidates"][0]
    scores = small["benchmarks"][0]["scores"]
    scores["test"]["accuracy"] |= {"value": value, "ci_low": low, "ci_high": high}
    if shifted is not None:
        scores["shifted"] = {"accuracy": {"value": shifted, "ci_low": shifted - 0.1, "ci_high": shifted + 0.1, "n": 40}}
    return small


def threshold(cand: dict[str, Any], **raw: Any):
    (verdict,) = check([cand], [gate(**raw)])
    return verdict


def test_threshold_on_the_value_and_on_the_lower_bound():
    small = scored(0.8, 0.72, 0.88)
    on_value = threshold(small, metric="intents.accuracy", op=">=", value=0.75)
    assert (on_value.passed, on_value.observed, on_value.message) == (True, 0.8, "value 0.8000 meets >= 0.75")
    assert on_value.gate == "intents.accuracy >= 0.75"
    on_low = threshold(small, metric="intents.accuracy", op=">=", value=0.75, on="ci_low")
    assert (on_low.passed, on_low.observed, on_low.message) == (False, 0.72, "ci_low 0.7200 misses >= 0.75")
    assert on_low.gate == "intents.accuracy >= 0.75 on ci_low"
    assert threshold(small, metric="intents.accuracy", op=">=", value=0.72, on="ci_low").passed  # the bound itself
    assert not threshold(small, metric="intents.accuracy", op=">", value=0.72, on="ci_low").passed
    high = threshold(small, metric="intents.accuracy", op="<=", value=0.85, on="ci_high")
    assert (high.passed, high.observed) == (False, 0.88)
    assert threshold(small, metric="intents.accuracy", op="<", value=0.9, on="ci_high").passed


def test_threshold_reads_the_named_split():
    small = scored(0.8, 0.72, 0.88, shifted=0.6)
    assert threshold(small, metric="intents.accuracy", value=0.7).passed
    shifted = threshold(small, metric="intents.accuracy.shifted", value=0.7)
    assert (shifted.passed, shifted.observed) == (False, 0.6)
    assert not threshold(small, metric="intents.accuracy.shifted", value=0.55, on="ci_low").passed  # 0.5
    missing = threshold(small, metric="intents.accuracy.validation", value=0.0)
    assert missing.message == "fails closed: no metric 'accuracy' on intents/validation"


@pytest.mark.parametrize("on", ["value", "ci_low", "ci_high"])
@pytest.mark.parametrize("op", [">=", ">", "<=", "<"])
def test_nan_never_passes_a_threshold(on, op):
    """A NaN (no items scored, or no interval) passes no threshold, whatever the comparison, and it still fails
    after the results go through JSON (results.json and the run store keep NaN as NaN)."""
    nan = float("nan")
    small = scored(0.8, 0.72, 0.88)
    small["benchmarks"][0]["scores"]["test"]["accuracy"][on] = nan
    value = -1.0 if op.startswith(">") else 2.0  # any finite number would pass
    for cand in (small, json.loads(json.dumps(small))):
        v = threshold(cand, metric="intents.accuracy", op=op, value=value, on=on)
        assert not v.passed and v.observed != v.observed, v
        assert v.message == f"{on} nan misses {op} {value:g}"
    # the other numbers still decide their own gates
    other = "ci_low" if on != "ci_low" else "value"
    assert threshold(small, metric="intents.accuracy", op=op, value=value, on=other).passed


def test_a_nan_candidate_is_never_recommended():
    small, large = rich_results()["candidates"]
    small["benchmarks"][0]["scores"]["test"]["accuracy"]["value"] = float("nan")
    verdicts = check([small, large], [gate(metric="intents.accuracy", op=">=", value=0.0)])
    assert [v.passed for v in verdicts] == [False, True]
    assert recommend([small, large], verdicts)[0] == "large"  # the smaller candidate had the NaN


def test_a_missing_interval_bound_fails_closed():
    """A bound that is absent (null in hand-edited or older results) fails closed with what is missing."""
    small = scored(0.8, 0.72, 0.88)
    small["benchmarks"][0]["scores"]["test"]["accuracy"]["ci_low"] = None
    v = threshold(small, metric="intents.accuracy", op=">=", value=0.5, on="ci_low")
    assert not v.passed and v.observed is None and v.message.startswith("fails closed: no ci_low")
    del small["benchmarks"][0]["scores"]["test"]["accuracy"]["ci_high"]
    assert threshold(small, metric="intents.accuracy", op="<=", value=0.9, on="ci_high").message.startswith(
        "fails closed: no ci_high")


# ----------------------------------------------------------------------------------------------------------
# Caps

def test_forgetting_cap_on_the_value_and_on_the_upper_bound():
    small = rich_results()["candidates"][0]
    forgot = small["benchmarks"][0]["probes"][0]["forgetting"]
    ok = check_cap(small, gate(forgetting="general_knowledge", max=forgot["value"]))
    assert ok.passed and ok.observed == forgot["value"] and "(intents/general_knowledge) within max" in ok.message
    tight = check_cap(small, gate(forgetting="general_knowledge", max=forgot["value"] - 1e-9))
    assert not tight.passed and "exceeds" in tight.message
    upper = check_cap(small, gate(forgetting="general_knowledge", max=0.15, on="ci_high"))
    assert not upper.passed and upper.observed == 0.2 and upper.message.startswith("forgetting ci_high 0.2")


def test_forgetting_cap_takes_the_worst_benchmark_and_star_covers_every_probe():
    small = rich_results()["candidates"][0]
    second = copy.deepcopy(small["benchmarks"][0])
    second["benchmark"] = "tickets"
    second["probes"][0]["forgetting"]["value"] = 0.35
    small["benchmarks"].append(second)
    v = check_cap(small, gate(forgetting="*", max=0.32))
    assert not v.passed and v.observed == 0.35 and "worst of 2: tickets/general_knowledge" in v.message


def test_forgetting_cap_fails_closed_when_the_probe_was_not_run():
    small = rich_results()["candidates"][0]
    v = check_cap(encoder(small), gate(forgetting="general_knowledge", max=1.0))
    assert not v.passed and v.observed is None
    assert v.message == ("fails closed: probe 'general_knowledge' was not run for small (model kind: encoder) "
                         "on intents")
    assert "no forgetting probe was run for small" in check_cap(encoder(small), gate(forgetting="*", max=1)).message


def test_nan_never_passes_a_cap():
    small = rich_results()["candidates"][0]
    small["benchmarks"][0]["probes"][0]["forgetting"]["value"] = float("nan")
    v = check_cap(small, gate(forgetting="general_knowledge", max=1.0))
    assert not v.passed and "NaN never passes" in v.message and "intents/general_knowledge" in v.message
    small["cost"]["latency_ms_per_item"] = float("nan")
    assert not check_cap(small, gate(cost="latency_ms_per_item", max=1e9)).passed


def test_generalisation_gap_cap():
    small, large = rich_results()["candidates"]
    assert check_cap(small, gate(generalisation_gap="intents", max=0.05)).passed  # gap 0.04
    v = check_cap(large, gate(generalisation_gap="intents", max=0.05))  # gap 0.14
    assert not v.passed and v.observed == pytest.approx(0.14) and "(intents accuracy)" in v.message
    assert not check_cap(small, gate(generalisation_gap="intents", max=0.05, on="ci_high")).passed  # 0.10
    small["benchmarks"][0]["generalisation"] = {}
    assert "no generalisation gap on intents (it needs a `shifted` split" in check_cap(
        small, gate(generalisation_gap="intents", max=1)).message
    assert "no benchmark 'nope'" in check_cap(small, gate(generalisation_gap="nope", max=1)).message


def test_generalisation_gap_of_a_lower_is_better_metric_counts_shifted_being_worse():
    small = rich_results()["candidates"][0]
    # loss 1.0 on test and 1.3 on shifted: gap test - shifted = -0.3, i.e. 0.3 worse on shifted
    small["benchmarks"][0]["generalisation"] = {"metric": "loss", "gap": -0.3, "gap_ci_low": -0.5, "gap_ci_high": -0.1}
    assert check_cap(small, gate(generalisation_gap="intents", max=0.3)).observed == pytest.approx(0.3)
    assert not check_cap(small, gate(generalisation_gap="intents", max=0.29)).passed
    assert check_cap(small, gate(generalisation_gap="intents", max=0.4, on="ci_high")).observed == pytest.approx(0.5)


def test_bias_cap_on_the_flip_rate_increase():
    small, large = rich_results()["candidates"]
    assert check_cap(small, gate(bias="intent_bias", max=0.01)).passed  # change 0
    v = check_cap(large, gate(bias="intent_bias", max=0.01))
    assert not v.passed and v.observed == pytest.approx(0.02) and v.message.startswith("flip-rate increase 0.02")
    assert check_cap(large, gate(bias="intent_bias", max=0.08, on="ci_high")).passed  # upper bound 0.08
    missing = check_cap(encoder(small), gate(bias="intent_bias", max=1))
    assert missing.message == "fails closed: bias suite 'intent_bias' was not run for small (model kind: encoder)"


@pytest.mark.parametrize("cost, small_value", [("params", 1e6), ("latency_ms_per_item", 1.0), ("peak_rss_mb", 500.0),
                                               ("train_seconds", 10.0)])
def test_cost_caps(cost, small_value):
    small = rich_results()["candidates"][0]
    assert check_cap(small, gate(cost=cost, max=small_value)).passed
    v = check_cap(small, gate(cost=cost, max=small_value * 0.99))
    assert not v.passed and v.observed == small_value and v.message.startswith(f"{cost} ")


def test_cost_caps_fail_closed_when_nothing_was_measured():
    small = rich_results()["candidates"][0]
    small["cost"]["latency_ms_per_item"] = None
    assert check_cap(small, gate(cost="latency_ms_per_item", max=1e9)).message == (
        "fails closed: no latency_ms_per_item recorded for small")
    small["params"] = 0  # never loaded
    assert "no params recorded" in check_cap(small, gate(cost="params", max=1e12)).message
    failed = dict(small, status="failed", reason="RunFailure: NaN loss")
    assert check_cap(failed, gate(cost="train_seconds", max=1e9)).message == (
        "fails closed: candidate failed: RunFailure: NaN loss")
    na = copy.deepcopy(small)
    na["benchmarks"][0]["status"] = "n/a"
    assert "no benchmark ran for small" in check_cap(na, gate(forgetting="*", max=1)).message


def test_a_cost_cap_steers_the_recommendation():
    cands = rich_results()["candidates"]  # small: 1M params, 1 ms; large: 2M params
    cands[0]["cost"]["latency_ms_per_item"] = 30.0
    assert recommend(cands, check(cands, []))[0] == "small"
    choice, _ = recommend(cands, check(cands, [gate(cost="latency_ms_per_item", max=20)]))
    assert choice == "large"
    choice, reason = recommend(cands, check(cands, [gate(cost="params", max=5e5)]))
    assert choice is None and "small: cost params <= 500000 (params 1e+06 exceeds max 500000)" in reason


# ----------------------------------------------------------------------------------------------------------
# Several baseline gates: adjusted regression p-values

def family(per_bench: dict[str, np.ndarray], run_id: str, name: str = "model") -> dict[str, Any]:
    """A results dict with one candidate scored 0/1 on one benchmark per entry (accuracy on test)."""
    benches = [{"benchmark": b, "version": "1", "task": "classification", "status": "ok", "reason": "",
                "data_sha256": {"test": f"{b}-sha"}, "probes": [], "bias": [], "generalisation": {},
                "scores": {"test": {"accuracy": {"value": float(np.mean(x)), "ci_low": 0.0, "ci_high": 1.0,
                                                 "n": len(x), "per_item": np.asarray(x, dtype=float).tolist()}}}}
               for b, x in per_bench.items()]
    cand = {"name": name, "status": "ok", "reason": "", "kind": "causal", "params": 1000, "trainable_params": 10,
            "cost": {"train_seconds": 1.0, "latency_ms_per_item": 1.0, "peak_rss_mb": 1.0}, "benchmarks": benches}
    return {"run_id": run_id, "name": "demo", "candidates": [cand]}


def baseline_gates(benches: list[str], margin: float = 0.0) -> list[GateConfig]:
    return [gate(metric=f"{b}.accuracy", baseline="demo", margin=margin) for b in benches]


def slightly_worse(n: int = 200, lost: int = 23, gained: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Baseline and candidate on the same n items: the candidate loses `lost` items and gains `gained`."""
    base = np.r_[np.ones(lost), np.zeros(gained), np.ones(n - lost - gained)]
    cand = np.r_[np.zeros(lost), np.ones(gained), np.ones(n - lost - gained)]
    return base, cand


def test_adjusted_p_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted .005 .01 .03 .04 times 4 3 2 1 = .02 .03 .06 .04, then running max
    assert holm_adjusted(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: 4p/k for k = 1..4 on the sorted p = .02 .02 .04 .04, then running min from the top
    assert bh_adjusted(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert np.isnan(holm_adjusted([0.01, float("nan")])[1]) and holm_adjusted([0.01, float("nan")])[0] == 0.02


def test_holm_bh_and_none_across_three_baseline_gates():
    """Three gates with the same borderline regression (raw p between alpha/3 and alpha): uncorrected, all three
    flag; Holm (every adjusted p = 3p > alpha) flags none; BH (adjusted p = p) flags all three."""
    base, cand = slightly_worse()
    names = ["b1", "b2", "b3"]
    baseline = (family({b: base for b in names}, "base-run"), "model")
    candidate = family({b: cand for b in names}, "new-run")["candidates"][0]
    res, _ = baseline_test(candidate, "b1.accuracy", baseline, resamples=1000)
    p = res["p_regression"]
    assert ALPHA / 3 < p < ALPHA  # the premise: the correction decides
    gates = baseline_gates(names)
    for correction, flagged, q in (("none", True, None), ("holm", False, min(1.0, 3 * p)), ("bh", True, p)):
        verdicts = check([candidate], gates, {"demo": baseline}, resamples=1000, correction=correction)
        assert [not v.passed for v in verdicts] == [flagged] * 3
        message = verdicts[0].message
        assert verdicts[0].p_adjusted == pytest.approx(q if q is not None else p)  # carried typed, for summary.md
        assert verdicts[0].metric == "accuracy" and verdicts[0].baseline == "model of run base-run"
        assert f"p(regression) {p:.4g}" in message and "alpha 0.05" in message
        if q is None:
            assert "no multiplicity correction (3 baseline gates)" in message
        else:
            label = {"holm": "Holm", "bh": "Benjamini-Hochberg"}[correction]
            assert f"{label}-adjusted over 3 baseline gates {q:.4g}" in message
        assert message.startswith("significant regression" if flagged else "no significant regression")


def test_a_fail_closed_gate_is_not_part_of_the_family():
    base, cand = slightly_worse()
    baseline = (family({"b1": base}, "base-run"), "model")
    candidate = family({"b1": cand}, "new-run")["candidates"][0]
    gates = [*baseline_gates(["b1"]), gate(metric="b9.accuracy", baseline="demo"), gate(metric="b1.accuracy", value=0)]
    v = check([candidate], gates, {"demo": baseline}, resamples=1000)
    assert "Holm-adjusted over 1 baseline gate " in v[0].message and not v[0].passed
    assert v[1].message == "fails closed: no benchmark 'b9' in the results" and v[2].passed


# ----------------------------------------------------------------------------------------------------------
# Calibration and power of the gate family, through gate.check. Same population as tests/harness/test_compare.py:
# per-item success probabilities p_i ~ Beta(4, 1) on N = 500 items, the candidate succeeding with probability s p_i.

BENCHES = ["b1", "b2", "b3"]
TRIALS = 200


def _family_trials(scales: list[float], corrections: list[str], seed: int,
                   monkeypatch: pytest.MonkeyPatch) -> dict[str, np.ndarray]:
    """Per correction, (TRIALS, gates) booleans: did each baseline gate flag a regression (fail)?"""
    import harness.gates.check

    tests: dict[str, Any] = {}  # one trial's tests, run once and shared by the corrections (same data, same seed)
    run_test = harness.gates.check.baseline_test

    def once(cand: dict[str, Any], metric: str, *args: Any, **kwargs: Any) -> Any:
        if metric not in tests:
            tests[metric] = run_test(cand, metric, *args, **kwargs)
        return tests[metric]

    monkeypatch.setattr(harness.gates.check, "baseline_test", once)
    rng = np.random.Generator(np.random.PCG64(seed))  # a named bit generator: see tests/harness/test_coverage.py
    gates = baseline_gates(BENCHES)
    flagged = {c: np.zeros((TRIALS, len(scales)), dtype=bool) for c in corrections}
    for t in range(TRIALS):
        tests.clear()
        p = rng.beta(4, 1, size=(len(scales), N))  # (gates, items)
        base = rng.random((len(scales), N)) < p
        cand = rng.random((len(scales), N)) < np.asarray(scales)[:, None] * p
        baseline = (family(dict(zip(BENCHES, base)), "base"), "model")
        candidate = family(dict(zip(BENCHES, cand)), "new")["candidates"][0]
        for c in corrections:
            verdicts = check([candidate], gates, {"demo": baseline}, resamples=500, seed=t, correction=c)
            flagged[c][t] = [not v.passed for v in verdicts]
    return flagged


def test_a_a_calibration_of_three_gates(monkeypatch):
    """A candidate against an identical model on three benchmarks: with Holm, any of the three gates flags a
    regression in at most alpha of trials; uncorrected, the family-wise rate is near 1 - (1 - alpha)^3 = 0.14."""
    flagged = _family_trials([1.0] * 3, ["holm", "none"], 11, monkeypatch)
    holm_any, none_any = flagged["holm"].any(axis=1).mean(), flagged["none"].any(axis=1).mean()
    assert holm_any <= ALPHA + _slack(TRIALS)
    expected = 1 - (1 - ALPHA) ** 3
    assert abs(none_any - expected) <= 3 * np.sqrt(expected * (1 - expected) / TRIALS)
    assert none_any > holm_any


def test_power_of_one_regression_among_three_gates_with_holm(monkeypatch):
    """A five-point regression on one of three benchmarks (500 items each), the other two unchanged. Holm rejects
    it when its p <= alpha / 3 (or, rarely, at a later step after a null gate was rejected first), so the predicted
    power is the level-alpha/3 power of the same test: 0.47 instead of 0.655 for a single gate. Tolerance as in
    test_compare: 0.03 for the bootstrap's conservatism plus two binomial standard errors."""
    predicted = predicted_power(0.9375, ALPHA / 3)
    assert predicted == pytest.approx(0.466, abs=0.002)
    flagged = _family_trials([0.9375, 1.0, 1.0], ["holm"], 12, monkeypatch)["holm"]
    assert abs(flagged[:, 0].mean() - predicted) <= 0.03 + 2 * np.sqrt(predicted * (1 - predicted) / TRIALS)
    assert flagged[:, 1:].any(axis=1).mean() <= ALPHA + _slack(TRIALS)


# ----------------------------------------------------------------------------------------------------------
# `sftbench gate RUN --gates FILE` on stored results

def test_gate_command_evaluates_caps_and_baseline_gates_on_stored_results(tmp_path, capsys):
    with Store() as store:
        store.save(rich_results("run-1"))
        store.save(rich_results("run-2"))
    assert main(["promote", "run-1", "--candidate", "small", "--as", "demo"]) == 0
    gates = tmp_path / "gates.yaml"
    gates.write_text("gates:\n  - {forgetting: general_knowledge, max: 1.0}\n  - {cost: params, max: 1.5e6}\n"
                     "  - {metric: intents.accuracy, baseline: demo, margin: 0.05}\n")
    capsys.readouterr()
    assert main(["gate", "run-2", "--gates", str(gates)]) == 0  # small passes all three; large is too big
    out = capsys.readouterr().out
    assert "large: FAIL cost params <= 1.5e+06" in out
    gates.write_text("gate_correction: none\ngates:\n  - {bias: intent_bias, max: 0.01}\n"
                     "  - {generalisation_gap: intents, max: 0.01}\n")
    assert main(["gate", "run-2", "--gates", str(gates)]) == 1
    out = capsys.readouterr().out
    assert "small: FAIL generalisation gap intents <= 0.01" in out
    assert main(["report", "run-2", "--format", "json"]) == 0  # the store keeps the run's own verdicts
    assert json.loads(capsys.readouterr().out)["gates"][0]["gate"] == "intents.accuracy >= 0.5"


@pytest.mark.parametrize("text, fragment", [
    ("gates:\n  - {cost: flops, max: 1}\n", "gate cost must be one of params"),
    ("gate_correction: sidak\ngates: []\n", "gate_correction must be one of holm, bh, none"),
    ("caps: []\n", "no `gates:` list"),
])
def test_gate_command_rejects_a_bad_gates_file(tmp_path, capsys, text, fragment):
    with Store() as store:
        store.save(rich_results("run-1"))
    path = tmp_path / "gates.yaml"
    path.write_text(text)
    assert main(["gate", "run-1", "--gates", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sftbench: error: {path}: ") and fragment in err and "Traceback" not in err
