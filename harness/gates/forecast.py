"""`sftbench plan CONFIG`: what a bake-off will cost in fine-tunes, and how likely its recommendation is to be stable,
before any compute.

It runs the simulation of harness/gates/simulate.py on the config's own shape: its candidates (smallest first when a
stored run gives their sizes, else in the config's order), their sweep settings, its seeds (adaptive, or a fixed
count, which trains the full grid), its budget, the test items of the gate's benchmark and the gate's threshold (the
first threshold gate on a value or a lower bound; other gates are taken as passed). Each candidate's true level and
the seed sd come from the latest stored run of the same bake-off name (the gate's metric on test, its seed sd pooled
over candidates), else they are assumed: the seed sd 0.05 (harness/gates/power.py ASSUMED_SEED_SD) and every
candidate's level drawn anew for each simulated run, uniformly within ASSUMED_SPREAD of the threshold. The second
sweep setting sits ASSUMED_SETTING_GAP below the first. Every assumption is said in the output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from harness.config import BakeoffConfig, GateConfig
from harness.gates.adaptive import Policy
from harness.gates.power import ASSUMED_SEED_SD
from harness.gates.simulate import Scenario, run

ASSUMED_SPREAD = 0.15  # levels within 15 points of the threshold: the bake-offs where seeds matter
ASSUMED_SETTING_GAP = 0.04
TRIALS = 400


@dataclass(frozen=True)
class Forecast:
    units: float
    units_range: tuple[float, float]
    full: int
    stable: float | None  # chance that the recommendation reaches the stability target (None: one seed)
    target: float
    right: float  # chance that it names the candidate the levels would
    source: str
    gate: str
    adaptive: bool

    def lines(self) -> list[str]:
        low, high = self.units_range
        spread = f" (10th-90th percentile {low:.0f}-{high:.0f})" if self.adaptive else ""
        out = [f"plan: expected fine-tunes {self.units:.1f} of the full grid's {self.full}{spread}"
               + ("" if self.adaptive else " (fixed seeds: every fine-tune of the grid runs)")]
        if self.stable is None:
            out.append("plan: stability not estimated: with one seed per candidate there is no seed spread to read "
                       "(recipe.seeds: {min: 2, max: 5} trains seeds where the verdict is open)")
        else:
            out.append(f"plan: chance of a stable recommendation (stability >= {self.target:g} when it stops): "
                       f"{self.stable:.0%}")
        out.append(f"plan: chance it recommends the candidate the levels would: {self.right:.0%}")
        out.append(f"plan: from {self.source}; gate {self.gate}; {TRIALS} simulated bake-offs "
                   "(harness/gates/simulate.py), no training")
        return out


def deciding_gate(cfg: BakeoffConfig) -> GateConfig | None:
    """The first threshold gate on a value or a lower bound (the rule's own model of a gate)."""
    return next((g for g in cfg.gates if g.metric and not g.baseline and g.op in (">=", ">")
                 and g.on in ("value", "ci_low")), None)


def forecast(cfg: BakeoffConfig, test_sizes: dict[str, int], stored: dict[str, Any] | None = None,
             trials: int = TRIALS, seed: int = 0) -> Forecast:
    gate = deciding_gate(cfg)
    tuned = [c for c in cfg.candidates if not c.zero_shot]
    settings = max(len(cfg.settings(c)) for c in tuned)
    bench = gate.metric.split(".")[0] if gate else cfg.benchmarks[0].spec
    items = test_sizes.get(bench) or next(iter(test_sizes.values()), 200)
    threshold = gate.value if gate else 0.0
    levels, sd, source = _stored_levels(stored, [c.name for c in tuned], gate)
    names = [c.name for c in tuned]
    if levels is None:
        source = (f"assumed values: seed sd {ASSUMED_SEED_SD:g}, each candidate's level drawn within "
                  f"+-{ASSUMED_SPREAD:g} of the threshold (no stored run of '{cfg.name}' with this metric)")
        order, truths, spread = names, tuple([threshold] * len(names)), ASSUMED_SPREAD
    else:
        order = sorted(levels, key=lambda n: levels[n][1])  # smallest first
        truths, spread = tuple(levels[n][0] for n in order), 0.0
    if settings > 1:
        source += f"; sweep settings {ASSUMED_SETTING_GAP:g} apart (assumed)"
    seeds = cfg.recipe.adaptive
    fixed = len(cfg.recipe.seed_values)
    policy = Policy(seeds.min, seeds.max, seeds.stability, budget=cfg.budget.units) if seeds else \
        Policy(fixed, fixed, 0.95)
    sc = Scenario("plan", truths, threshold=threshold, settings=settings, setting_gap=ASSUMED_SETTING_GAP,
                  seed_sd=sd or ASSUMED_SEED_SD, items=items, spread=spread)
    o = run(sc, trials, policy, seed)
    gate_text = f"'{gate.name}' ({items} test items)" if gate else "none with a threshold (every candidate passes)"
    target = policy.stability if seeds else cfg.recommendation_tentative_below
    stable = None if fixed == 1 and not seeds else (o.stable_at_stop if seeds else 1 - o.tentative)
    return Forecast(o.units, o.units_range, o.full_units, stable, target, o.best_adaptive, source, gate_text,
                    seeds is not None)


def _stored_levels(stored: dict[str, Any] | None, names: list[str], gate: GateConfig | None
                   ) -> tuple[dict[str, tuple[float, float]] | None, float | None, str]:
    """Each configured candidate's (level, params) from a stored run, the pooled seed sd, and where they came
    from; (None, None, "") when the run lacks any of them."""
    if not stored or gate is None:
        return None, None, ""
    bench, metric = gate.metric.split(".")[:2]
    found: dict[str, tuple[float, float]] = {}
    sds: list[tuple[float, int]] = []
    for c in stored.get("candidates", []):
        b = next((b for b in c.get("benchmarks", []) if b.get("benchmark") == bench and b.get("status") == "ok"), None)
        entry = ((b or {}).get("scores") or {}).get("test", {}).get(metric) if b else None
        if c.get("name") in names and entry and entry.get("value") is not None:
            found[c["name"]] = (float(entry["value"]), float(c.get("params") or 0))
            if entry.get("seed_sd") is not None and len(entry.get("seeds") or []) > 1:
                sds.append((float(entry["seed_sd"]), len(entry["seeds"])))
    if set(found) != set(names):
        return None, None, ""
    pooled = math.sqrt(sum(sd ** 2 * (k - 1) for sd, k in sds) / sum(k - 1 for _, k in sds)) if sds else None
    sd_text = (f"seed sd {pooled:.3g} pooled over {sum(k for _, k in sds)} stored seeds" if pooled is not None
               else f"seed sd {ASSUMED_SEED_SD:g} (assumed: the stored run has one seed)")
    levels = ", ".join(f"{n} {v:.3g}" for n, (v, _) in found.items())
    return found, pooled, f"run {stored.get('run_id', '?')}: levels {levels}; {sd_text}"


