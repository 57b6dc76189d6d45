"""Power before compute (harness/gates/power.py) against hand formulas; stored evidence replaces the assumptions;
`sftbench validate` prints a line per metric gate. Also: a YAML gate key `on:` (read by YAML 1.1 as true)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.cli import main
from harness.config import GateConfig, load_config
from harness.gates.power import (
    ASSUMED_RHO,
    UCB_LEVEL,
    Evidence,
    detectable,
    seed_correlation,
    seed_sd_bound,
    stored_evidence,
)
from harness.storage.store import Store

EV = Evidence(0.05, 0.7, 0.5, "assumed")


def test_detectable_effect_matches_the_formulas():
    n, p = 228, 0.7
    threshold = GateConfig(metric="b.accuracy", op=">=", value=0.6)
    ((effect, _),) = detectable(threshold, n, 1, EV)  # one seed: items only, normal quantile
    assert effect == pytest.approx(sps.norm.ppf(0.8) * math.sqrt(p * (1 - p) / n))
    lower = GateConfig(metric="b.accuracy", op=">=", value=0.6, on="ci_low")
    se = math.sqrt(0.05 ** 2 / 3 + 0.5 * p * (1 - p) / n)  # seed part (its own item noise in it) + shared items
    ((effect, _),) = detectable(lower, n, 3, EV)
    assert effect == pytest.approx((sps.t.ppf(0.975, 2) + sps.t.ppf(0.8, 2)) * se)
    base = GateConfig(metric="b.accuracy", baseline="x", margin=0.02, alpha=0.05)
    se = math.sqrt(2 * 0.05 ** 2 / 3)  # a re-run against its own baseline: the items cancel
    (block, what), (shown, claim) = detectable(base, n, 3, EV, family=3)
    assert block == pytest.approx((sps.t.ppf(1 - 0.05 / 3, 2) + sps.t.ppf(0.8, 2)) * se)  # Holm: alpha / k
    assert shown == pytest.approx((sps.t.ppf(0.95, 2) + sps.t.ppf(0.8, 2)) * se)  # not adjusted
    assert "regression" in what and "Holm over 3" in what and "non-inferiority" in claim
    one = detectable(base, n, 1, EV)[0][0]
    assert one == pytest.approx((sps.norm.ppf(0.95) + sps.norm.ppf(0.8)) * math.sqrt(2 * p * (1 - p) * 0.5 / n))
    assert detectable(base, 4 * n, 1, EV)[0][0] < one  # more items, smaller effect


def test_the_seed_sd_is_an_upper_bound_and_rho_comes_from_one_models_seeds():
    assert seed_sd_bound(0.05, 3) == pytest.approx(0.05 * math.sqrt(2 / sps.chi2.ppf(1 - UCB_LEVEL, 2)))
    assert seed_sd_bound(0.05, 3) > seed_sd_bound(0.05, 10) > 0.05
    rows = [[1, 0, 1, 1, 0, 1], [1, 0, 1, 0, 0, 1], [1, 1, 1, 1, 0, 0]]
    pairs = [np.corrcoef(rows[i], rows[j])[0, 1] for i, j in ((0, 1), (0, 2), (1, 2))]
    assert seed_correlation(rows) == pytest.approx(np.mean(pairs)) and seed_correlation(rows[:1]) is None


def test_stored_runs_replace_the_assumptions(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTBENCH_STORE", str(tmp_path / "runs.sqlite"))
    cfg = load_config(None, ["name=p"])
    with Store() as store:
        (assumed,) = stored_evidence(cfg, "support_intents.accuracy", store.latest("p"))
    assert assumed.source.startswith("assumed")

    def cand(name, rows, sd):
        items = np.mean(rows, axis=0).tolist()
        entry = {"value": float(np.mean(rows)), "ci_low": 0, "ci_high": 1, "n": len(items), "ci_method": "x",
                 "per_item": items, "per_seed": rows, "seeds": np.mean(rows, axis=1).tolist(), "seed_sd": sd}
        return {"name": name, "status": "ok", "params": 1, "benchmarks": [
            {"benchmark": "support_intents", "status": "ok", "scores": {"test": {"accuracy": entry}}}]}

    a = [[1, 0, 1, 1, 0, 1, 0, 1] * 10, [1, 0, 1, 0, 0, 1, 1, 1] * 10, [1, 1, 1, 0, 0, 1, 0, 1] * 10]
    b = [[0, 0, 1, 1, 0, 1, 0, 1] * 10, [1, 0, 0, 1, 0, 1, 1, 1] * 10]
    results = {"schema_version": 1, "run_id": "r1", "name": "p", "created": "2026-12-01T00:00:00", "config_hash": "h",
               "config": {}, "git_sha": "g", "packages": {}, "passed": True, "recommendation": None,
               "recommendation_reason": "", "gates": [], "candidates": [cand("a", a, 0.04), cand("b", b, 0.09)]}
    with Store() as store:
        store.save(results)
        ea, eb = stored_evidence(cfg, "support_intents.accuracy", store.latest("p"))  # one per candidate: its re-run
    assert ea.seed_sd == pytest.approx(seed_sd_bound(0.04, 3)) and eb.seed_sd == pytest.approx(seed_sd_bound(0.09, 2))
    assert ea.level == pytest.approx(np.mean(a)) and "a in run r1" in ea.source and "upper 80% bound" in ea.source
    assert ea.rho == pytest.approx(seed_correlation(a)) and ea.rho != ASSUMED_RHO


def test_validate_prints_power_per_metric_gate(capsys):
    code = main(["validate", "recipe.seeds=3", "gates=[{metric: support_intents.accuracy, baseline: demo, margin: 0.02}]"])
    out = capsys.readouterr().out
    assert code == 0 and "power: gate 'support_intents.accuracy no regression vs demo (margin 0.02)'" in out
    assert "n=228 test items, 3 seeds" in out and "assumed" in out


def test_a_yaml_gate_key_on_is_read_as_on(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\ncandidates: [minilm-l6]\nbenchmarks: [support_intents]\n"
                   "gates:\n  - metric: support_intents.accuracy\n    value: 0.6\n    on: ci_low\n")
    assert load_config(cfg).gates[0].on == "ci_low"  # YAML 1.1 reads the key `on` as true: it crashed before
