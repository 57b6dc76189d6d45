"""Bootstrap agreement of the recommendation (harness/gates/stability.py) against a binomial computation, and its
gate (`recommendation_stability`)."""
from __future__ import annotations

import pytest
from scipy import stats as sps

from harness.config import GateConfig
from harness.gates.check import check
from harness.gates.stability import bootstrap_agreement
from harness.results.finish import conclude


def _cand(name, params, correct, per_seed=None):
    entry = {"value": sum(correct) / len(correct), "ci_low": 0.0, "ci_high": 1.0, "per_item": correct}
    if per_seed:
        entry |= {"per_seed": per_seed, "seeds": [sum(r) / len(r) for r in per_seed]}
    bench = {"benchmark": "t", "status": "ok", "scores": {"test": {"accuracy": entry}}, "learned": True}
    return {"name": name, "status": "ok", "params": params, "cost": {"train_seconds": 1.0}, "benchmarks": [bench]}


GATE = GateConfig(metric="t.accuracy", op=">=", value=0.6)


def test_stability_is_the_share_of_resamples_recommending_the_same():
    small = _cand("small", 1, [1] * 60 + [0] * 40)  # exactly at the gate: passes on about half the resamples
    big = _cand("big", 9, [1] * 90 + [0] * 10)  # always passes
    verdicts = check([small, big], [GATE])
    got = bootstrap_agreement([small, big], verdicts, [GATE], "small", resamples=2000, seed=0).share
    assert got == pytest.approx(sps.binom.sf(59, 100, 0.6), abs=0.035)  # P(resampled accuracy >= 0.6)
    assert bootstrap_agreement([small, big], verdicts, [GATE], "big", 2000, 0).share == pytest.approx(1 - got)
    sure = _cand("sure", 1, [1] * 95 + [0] * 5)
    assert bootstrap_agreement([sure], check([sure], [GATE]), [GATE], "sure", 500, 0).share == 1.0


def test_seeds_are_resampled_too():
    """Two seeds that disagree (one at 0.9, one at 0.3: the mean 0.6 sits on the gate); with seeds drawn with
    replacement, a quarter of resamples draw only the bad seed, a quarter only the good one."""
    good, bad = [1] * 90 + [0] * 10, [1] * 30 + [0] * 70
    mean = [(a + b) / 2 for a, b in zip(good, bad)]
    cand = _cand("c", 1, mean, per_seed=[good, bad])
    got = bootstrap_agreement([cand], check([cand], [GATE]), [GATE], "c", 2000, 0).share
    assert 0.5 < got < 0.9  # about 1/4 (only good) + 1/2 (both: mean about 0.6, half pass) = 0.5-0.75


def test_a_stability_gate_withholds_an_unstable_recommendation():
    small, big = _cand("small", 1, [1] * 60 + [0] * 40), _cand("big", 9, [1] * 70 + [0] * 30)
    gates = [GATE, GateConfig(recommendation_stability=0.8)]
    verdicts = check([small, big], gates)
    assert {v.gate for v in verdicts} == {GATE.name}  # the stability gate is the bake-off's, not a candidate's
    out, choice, reason, agreement = conclude([small, big], verdicts, gates, 1000, 0)
    assert choice is None and agreement.share < 0.8
    assert "not a stable choice" in reason
    row = out[-1]
    assert row.gate == "recommendation stability >= 0.8" and row.passed is False
    relaxed = [GATE, GateConfig(recommendation_stability=0.3)]
    assert conclude([small, big], verdicts, relaxed, 1000, 0)[1] == "small"
