"""Recommendation stability: how often the same candidate would be recommended if the bake-off were run again.

Each resample draws every candidate's training seeds with replacement (its own seeds: candidates train
independently) and the test items with replacement (the same items for every candidate: they share the test
set), recomputes each metric threshold gate's `value` on that draw (harness/statistics/seeds.py item_draws), keeps
every other verdict as it is (baseline gates, caps, gates on interval bounds, thresholds on corpus metrics, "did not
learn"), and applies the selection rule (harness/gates/check.py: the smallest eligible candidate that passes every
gate).
The stability is the share of resamples that recommend what the run recommended (or, when it recommended nothing,
that recommend nothing). With one seed per candidate only the items vary.
"""
from __future__ import annotations

import operator
from typing import Any

import numpy as np

from harness.config import GateConfig
from harness.gates.lookup import Verdict, lookup
from harness.statistics.paired import CORPUS
from harness.statistics.seeds import item_draws, per_seed_items

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def _resampled(gate: GateConfig) -> bool:
    """Threshold gates on a value of a per-item-mean metric; corpus metrics (macro-F1, BLEU, chrF) keep their
    verdict, since their resampled value needs the predictions of every seed (documented)."""
    return bool(gate.metric) and not gate.baseline and gate.on == "value" and gate.metric.split(".")[1] not in CORPUS


def _draws(entry: dict[str, Any], metric: str, resamples: int, seed: int, rng: np.random.Generator) -> np.ndarray:
    """(R,) the metric on R resamples: seeds drawn with replacement, then the shared item draw `seed` fixes."""
    draws = item_draws(metric, per_seed_items(entry), None, resamples, seed)  # (S, R)
    pick = rng.integers(0, len(draws), size=(resamples, len(draws)))  # (R, S) seed indices per resample
    return draws[pick, np.arange(resamples)[:, None]].mean(axis=1)


def recommendation_stability(candidates: list[dict[str, Any]], verdicts: list[Verdict], gates: list[GateConfig],
                             recommended: str | None, resamples: int = 500, seed: int = 0) -> float:
    rng = np.random.Generator(np.random.PCG64(seed))
    eligible = [c for c in candidates if c["status"] == "ok" and not c.get("zero_shot") and not c.get("did_not_learn")
                and any(b["status"] == "ok" for b in c["benchmarks"])]
    names = {gate.name for gate in gates if _resampled(gate)}
    passes = np.ones((len(eligible), resamples), dtype=bool)
    for i, cand in enumerate(eligible):
        fixed = [v for v in verdicts if v.candidate == cand["name"] and v.gate not in names]
        if not all(v.passed for v in fixed):
            passes[i] = False
            continue
        for gate in (g for g in gates if _resampled(g)):
            _, entry, _ = lookup(cand, gate.metric)
            if entry is None or not (entry.get("per_item") or entry.get("per_seed")):
                passes[i] &= any(v.passed for v in verdicts if v.candidate == cand["name"] and v.gate == gate.name)
                continue
            values = _draws(entry, gate.metric.split(".")[1], resamples, seed, rng)
            passes[i] &= OPS[gate.op](values, gate.value)
    order = sorted(range(len(eligible)), key=lambda i: (eligible[i]["params"], eligible[i]["cost"]["train_seconds"]))
    same = 0
    for r in range(resamples):
        pick = next((eligible[i]["name"] for i in order if passes[i, r]), None)
        same += pick == recommended
    return same / resamples
