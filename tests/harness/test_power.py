"""Power before compute (harness/power.py) against hand formulas; stored evidence replaces the assumptions;
`sftbench validate` prints a line per metric gate. Also: a YAML gate key `on:` (read by YAML 1.1 as true)."""
from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from harness.cli import main
from harness.config import GateConfig, load_config
from harness.gates.power import ASSUMED_RHO, Evidence, detectable, stored_evidence
from harness.storage.store import Store

EV = Evidence(0.05, 0.7, 0.5, "assumed")


def test_detectable_effect_matches_the_formulas():
    n, p = 228, 0.7
    threshold = GateConfig(metric="b.accuracy", op=">=", value=0.6)
    effect, _ = detectable(threshold, n, 1, EV)  # one seed: items only, normal quantile
    assert effect == pytest.approx(sps.norm.ppf(0.8) * math.sqrt(p * (1 - p) / n))
    lower = GateConfig(metric="b.accuracy", op=">=", value=0.6, on="ci_low")
    seed_part, item_part = 0.05 ** 2 / 3, p * (1 - p) / n
    df = (seed_part + item_part) ** 2 / (seed_part ** 2 / 2)
    effect, _ = detectable(lower, n, 3, EV)
    assert effect == pytest.approx((sps.t.ppf(0.975, df) + sps.t.ppf(0.8, df)) * math.sqrt(seed_part + item_part))
    base = GateConfig(metric="b.accuracy", baseline="x", margin=0.02, alpha=0.05)
    seed_part, item_part = 2 * 0.05 ** 2 / 3, 2 * p * (1 - p) * 0.5 / n
    df = (seed_part + item_part) ** 2 / (2 * (0.05 ** 2 / 3) ** 2 / 2)
    effect, what = detectable(base, n, 3, EV)
    assert effect == pytest.approx((sps.t.ppf(0.95, df) + sps.t.ppf(0.8, df)) * math.sqrt(seed_part + item_part))
    assert "regression" in what and detectable(base, 4 * n, 3, EV)[0] < effect  # more items, smaller effect


def test_stored_runs_replace_the_assumptions(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTBENCH_STORE", str(tmp_path / "runs.sqlite"))
    cfg = load_config(None, ["name=p"])
    assert stored_evidence(cfg, "support_intents.accuracy").source.startswith("assumed")

    def cand(name, items, sd):
        entry = {"value": sum(items) / len(items), "ci_low": 0, "ci_high": 1, "n": len(items), "ci_method": "x",
                 "per_item": items, "seeds": [0.6, 0.8], "seed_sd": sd}
        return {"name": name, "status": "ok", "params": 1, "benchmarks": [
            {"benchmark": "support_intents", "status": "ok", "scores": {"test": {"accuracy": entry}}}]}

    a, b = [1, 0, 1, 1, 0, 1, 0, 1] * 10, [1, 0, 1, 0, 0, 1, 1, 1] * 10
    results = {"schema_version": 1, "run_id": "r1", "name": "p", "created": "2026-12-01T00:00:00", "config_hash": "h",
               "config": {}, "git_sha": "g", "packages": {}, "passed": True, "recommendation": None,
               "recommendation_reason": "", "gates": [], "candidates": [cand("a", a, 0.04), cand("b", b, 0.09)]}
    with Store() as store:
        store.save(results)
    ev = stored_evidence(cfg, "support_intents.accuracy")
    assert ev.seed_sd == 0.09 and ev.level == pytest.approx((sum(a) + sum(b)) / 160) and "from run r1" in ev.source
    assert ev.rho != ASSUMED_RHO and -1 < ev.rho < 1


def test_validate_prints_power_per_metric_gate(capsys):
    code = main(["validate", "recipe.seeds=3", "gates=[{metric: support_intents.accuracy, baseline: demo, margin: 0.02}]"])
    out = capsys.readouterr().out
    assert code == 0 and "power: gate 'support_intents.accuracy non-inferior to demo (margin 0.02)'" in out
    assert "n=228 test items, 3 seeds" in out and "assumed" in out


def test_a_yaml_gate_key_on_is_read_as_on(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\ncandidates: [minilm-l6]\nbenchmarks: [support_intents]\n"
                   "gates:\n  - metric: support_intents.accuracy\n    value: 0.6\n    on: ci_low\n")
    assert load_config(cfg).gates[0].on == "ci_low"  # YAML 1.1 reads the key `on` as true: it crashed before
