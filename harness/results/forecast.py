"""`sftbench plan CONFIG`: what a bake-off will cost in fine-tunes, and how likely its recommendation is to be stable,
before any compute.

An adaptive config is forecast by running the run's own rounds (harness/results/rounds.py run_rounds: the rule of
harness/gates/adaptive.py, the seeds a candidate's settings share, the settings that leave the plan, the held
verdicts, the stopping rule) on simulated results instead of training, `trials` times: each round's results are drawn
from the model of harness/gates/simulate.py (item logits shared by every arm, a logit shift per arm, a seed effect per
seed, a coin per answer). A fixed seed count trains the full grid; its stability comes from that simulation at once.

What the draws read. The config's candidates (ordered as a stored run's sizes order them, else as listed), their sweep
settings, its seeds and budget, the test and validation items of the gate's benchmark and the gate's threshold (the
first threshold gate on a value or a lower bound; other gates are taken as passed). From the latest stored run of the
same bake-off name: each candidate's level (the gate's metric on test), each setting's distance below its candidate's
best on validation (the sweep table), each candidate's seed sd (its own, when it has several seeds; else the pooled
one) and whether it learned (one that did not is held failing, as the run holds it). Without a stored run they are
assumed: the seed sd 0.05 (harness/gates/power.py ASSUMED_SEED_SD), every candidate's level drawn anew for each
simulated run uniformly within ASSUMED_SPREAD of the threshold, and each further setting ASSUMED_SETTING_GAP below the
one before. Every assumption is said in the output.

It used to simulate the rule on harness/gates/simulate.py's own rounds with one assumed setting gap and one pooled
seed sd: every arm got seeds on its own (a run's settings share their candidate's seeds) and a candidate that did not
learn was drawn as learning, so it predicted 35-79% more fine-tunes than the real run of 7 Dec 2026 used.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit

from harness.config import BakeoffConfig, GateConfig
from harness.gates.adaptive import Policy
from harness.gates.power import ASSUMED_SEED_SD
from harness.gates.simulate import ITEM_SD, Population, Scenario, run
from harness.results.model import Results
from harness.results.rounds import modelled, run_rounds

ASSUMED_SPREAD = 0.15  # levels within 15 points of the threshold: the bake-offs where seeds matter
ASSUMED_SETTING_GAP = 0.04
TRIALS = 100


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
    trials: int = TRIALS

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
        how = ("the run's own rounds, harness/results/rounds.py, on simulated results" if self.adaptive
               else "harness/gates/simulate.py")
        out.append(f"plan: from {self.source}; gates {self.gate}; {self.trials} simulated bake-offs ({how}), "
                   "no training")
        return out


@dataclass(frozen=True)
class Stored:
    """What a stored run says about each configured candidate (by name)."""
    levels: dict[str, float]
    params: dict[str, float]
    gaps: dict[str, list[float]]  # each setting's distance below the candidate's best on validation, config order
    sds: dict[str, float]  # each candidate's seed sd (its own with several seeds, else the pooled one)
    learned: dict[str, bool]
    text: str


def deciding_gate(cfg: BakeoffConfig) -> GateConfig | None:
    """The first threshold gate on a value or a lower bound (the rule's own model of a gate)."""
    return next((g for g in cfg.gates if g.metric and not g.baseline and g.op in (">=", ">")
                 and g.on in ("value", "ci_low")), None)


def forecast(cfg: BakeoffConfig, test_sizes: dict[str, int], stored: dict[str, Any] | None = None,
             trials: int = TRIALS, seed: int = 0, validation_sizes: dict[str, int] | None = None) -> Forecast:
    gate = deciding_gate(cfg)
    tuned = [c for c in cfg.candidates if not c.zero_shot]
    names = [c.name for c in tuned]
    settings = {c.name: cfg.settings(c) for c in tuned}
    bench = gate.metric.split(".")[0] if gate else cfg.benchmarks[0].spec
    items = test_sizes.get(bench) or next(iter(test_sizes.values()), 200)
    val_items = (validation_sizes or {}).get(bench) or items
    threshold = gate.value if gate else 0.0
    known = _stored(stored, names, settings, gate)
    source = known.text if known else (
        f"assumed values: seed sd {ASSUMED_SEED_SD:g}, each candidate's level drawn within +-{ASSUMED_SPREAD:g} of the "
        f"threshold (no stored run of '{cfg.name}' with this metric)")
    if (not known or not known.gaps) and max(len(s) for s in settings.values()) > 1:
        source += f"; sweep settings {ASSUMED_SETTING_GAP:g} apart (assumed)"
    # every threshold gate on the drawn metric, as the run models them; the others are taken as passed
    drawn = [g for g in cfg.gates if gate and modelled(g) and g.metric == gate.metric]
    gate_text = (f"{', '.join(repr(g.name) for g in drawn)} ({items} test items)" if gate
                 else "none with a threshold (every candidate passes)")
    seeds = cfg.recipe.adaptive
    if seeds is None:
        return _fixed(cfg, known, gate, items, threshold, source, gate_text, trials, seed)
    world = _World(cfg, known, drawn, items, val_items, seed)
    plan_cfg = dataclasses.replace(cfg, gates=drawn)
    used, stable, right = [], [], []
    for _ in range(trials):
        truth = world.draw()
        ad: dict[str, Any] = run_rounds(plan_cfg, world.finish_round).adaptive or {}
        used.append(ad["fine_tunes"])
        stable.append(ad["stability"] >= seeds.stability)
        picked = next((h["recommended"] for h in reversed(ad["history"])), None)
        right.append(picked == truth)
    full = sum(len(s) for s in settings.values()) * seeds.max
    return Forecast(float(np.mean(used)), (float(np.percentile(used, 10)), float(np.percentile(used, 90))), full,
                    float(np.mean(stable)), seeds.stability, float(np.mean(right)), source, gate_text, True, trials)


def _fixed(cfg: BakeoffConfig, known: Stored | None, gate: GateConfig | None, items: int, threshold: float,
           source: str, gate_text: str, trials: int, seed: int) -> Forecast:
    """Fixed seeds train the full grid; the stability of its recommendation is simulated at once."""
    tuned = [c for c in cfg.candidates if not c.zero_shot]
    fixed = len(cfg.recipe.seed_values)
    full = sum(len(cfg.settings(c)) for c in tuned) * fixed
    order = sorted((c.name for c in tuned), key=lambda n: known.params[n]) if known else [c.name for c in tuned]
    truths = tuple(known.levels[n] for n in order) if known else tuple([threshold] * len(order))
    sd = float(np.mean(list(known.sds.values()))) if known else ASSUMED_SEED_SD
    sc = Scenario("plan", truths, threshold=threshold, settings=max(len(cfg.settings(c)) for c in tuned),
                  setting_gap=ASSUMED_SETTING_GAP, seed_sd=sd, items=items, spread=0.0 if known else ASSUMED_SPREAD)
    o = run(sc, max(trials, 400), Policy(fixed, fixed, 0.95), seed)
    stable = None if fixed == 1 else 1 - o.tentative
    return Forecast(float(full), (float(full), float(full)), full, stable, cfg.recommendation_tentative_below,
                    o.best_adaptive, source, gate_text, False, max(trials, 400))


class _World:
    """One simulated bake-off at a time, drawn as harness/gates/simulate.py draws them, and finish_round for
    run_rounds: each round's results from the seeds drawn so far (seed s of an arm always answers the same)."""

    def __init__(self, cfg: BakeoffConfig, known: Stored | None, gates: list[GateConfig], items: int,
                 val_items: int, seed: int) -> None:
        self.cfg, self.known, self.gates = cfg, known, gates
        threshold = self.threshold = float(gates[0].value or 0.0) if gates else 0.0
        self.items, self.val_items = items, val_items
        self.g = np.random.Generator(np.random.PCG64(seed))
        self.pop = Population()
        self.tuned = [c.name for c in cfg.candidates if not c.zero_shot]
        self.settings = {c.name: cfg.settings(c) for c in cfg.candidates if not c.zero_shot}
        self.seeds = cfg.recipe.seed_values
        self.gate_metric = gates[0].metric if gates else f"{cfg.benchmarks[0].spec}.accuracy"
        self.order = sorted(self.tuned, key=lambda n: known.params[n]) if known else list(self.tuned)
        # each candidate's logit seed sd and accuracy curve, computed once (at the threshold when levels are drawn)
        self.tau = {n: self.pop.tau_for(known.levels[n] if known else threshold,
                                        known.sds[n] if known else ASSUMED_SEED_SD, items) for n in self.tuned}
        self.curve = {n: self.pop.accuracy(self.pop.shifts, self.tau[n]) for n in self.tuned}

    def draw(self) -> str | None:
        """A new bake-off: every arm's answers under every seed. Returns the candidate the truth recommends."""
        g, known = self.g, self.known
        levels = ({n: known.levels[n] for n in self.tuned} if known else
                  {n: self.threshold + g.uniform(-ASSUMED_SPREAD, ASSUMED_SPREAD) for n in self.tuned})
        test_b = g.normal(0, ITEM_SD, self.items)
        val_b = g.normal(0, ITEM_SD, self.val_items)
        self.val: dict[str, np.ndarray] = {}  # (settings, seeds) validation accuracy per seed
        self.test: dict[str, np.ndarray] = {}  # (settings, seeds, items) 0/1 answers
        for name in self.tuned:
            tau, n_set = self.tau[name], len(self.settings[name])
            gaps = (known.gaps.get(name) if known else None) or [ASSUMED_SETTING_GAP * k for k in range(n_set)]
            shifts = np.interp(np.clip(levels[name] - np.asarray(gaps), 0.001, 0.999), self.curve[name],
                               self.pop.shifts)
            u = g.normal(0, tau, (n_set, len(self.seeds), 1))
            eta = shifts[:, None, None] + u
            self.val[name] = (g.random((n_set, len(self.seeds), self.val_items)) < expit(val_b + eta)).mean(axis=-1)
            self.test[name] = (g.random((n_set, len(self.seeds), self.items)) < expit(test_b + eta)).astype(float)
        learned = {n: (known.learned[n] if known else True) for n in self.tuned}
        return next((n for n in self.order if learned[n] and all(_holds(levels[n], g) for g in self.gates)), None)

    def finish_round(self, cfg: BakeoffConfig, arms: dict[str, Any]) -> Results:
        bench, metric = self.gate_metric.split(".")[:2]
        rows = []
        for k, name in enumerate(self.order):
            seeds, plan_settings = arms[name]
            idx = [self.settings[name].index(s) for s in plan_settings]
            cut = len(seeds)
            val = self.val[name][:, :cut]
            best = max(idx, key=lambda i: float(val[i].mean()))
            per_seed = self.test[name][best, :cut]
            sweep = [{"learning_rate": lr, "epochs": ep, "seeds": [float(v) for v in val[i]]}
                     for i, (lr, ep) in zip(idx, plan_settings)] if len(self.settings[name]) > 1 else []
            learned = self.known.learned[name] if self.known else True
            rows.append({"name": name, "model": name, "status": "ok",
                         "params": self.known.params[name] if self.known else k, "cost": {"train_seconds": 0.0},
                         "did_not_learn": [] if learned else [bench],
                         "benchmarks": [{"benchmark": bench, "status": "ok", "sweep": sweep, "scores": {"test": {
                             metric: {"value": float(per_seed.mean()), "per_seed": per_seed.tolist(),
                                      "seeds": per_seed.mean(axis=1).tolist()}}}}]})
        return Results.from_json({"name": cfg.name, "candidates": rows, "gates": []})


def _holds(level: float, gate: GateConfig) -> bool:
    """Whether a true level passes a threshold gate (a bound read as the value: the truth has no interval)."""
    value = float(gate.value or 0.0)
    return {">=": level >= value, ">": level > value, "<=": level <= value, "<": level < value}.get(gate.op, True)


def _stored(stored: dict[str, Any] | None, names: list[str], settings: dict[str, list[tuple[float, int]]],
            gate: GateConfig | None) -> Stored | None:
    """Each configured candidate's level, size, setting gaps, seed sd and whether it learned, from a stored run;
    None when the run lacks any candidate's level."""
    if not stored or gate is None:
        return None
    bench, metric = gate.metric.split(".")[:2]
    levels, params, gaps, own, learned = {}, {}, {}, {}, {}
    sds: list[tuple[float, int]] = []
    for c in stored.get("candidates", []):
        b = next((b for b in c.get("benchmarks", []) if b.get("benchmark") == bench and b.get("status") == "ok"), None)
        entry = ((b or {}).get("scores") or {}).get("test", {}).get(metric) if b else None
        name = c.get("name")
        if name not in names or not entry or entry.get("value") is None:
            continue
        levels[name], params[name] = float(entry["value"]), float(c.get("params") or 0)
        learned[name] = bench not in (c.get("did_not_learn") or [])
        if entry.get("seed_sd") is not None and len(entry.get("seeds") or []) > 1:
            own[name] = float(entry["seed_sd"])
            sds.append((own[name], len(entry["seeds"])))
        means = {(s["learning_rate"], s["epochs"]): float(np.mean(s["seeds"])) if s.get("seeds") else s.get("value")
                 for s in (b or {}).get("sweep") or []}
        if all(means.get(s) is not None for s in settings[name]) and len(settings[name]) > 1:
            top = max(means[s] for s in settings[name])
            gaps[name] = [top - means[s] for s in settings[name]]
    if set(levels) != set(names):
        return None
    pooled = math.sqrt(sum(sd ** 2 * (k - 1) for sd, k in sds) / sum(k - 1 for _, k in sds)) if sds else None
    sd_text = (f"seed sd {pooled:.3g} pooled over {sum(k for _, k in sds)} stored seeds" if pooled is not None
               else f"seed sd {ASSUMED_SEED_SD:g} (assumed: the stored run has one seed)")
    fallback = pooled if pooled is not None else ASSUMED_SEED_SD
    text = (f"run {stored.get('run_id', '?')}: levels " + ", ".join(f"{n} {v:.3g}" for n, v in levels.items())
            + f"; {sd_text}" + ("; setting gaps on validation from its sweep table" if gaps else "")
            + "".join(f"; {n} did not learn (held failing)" for n in names if not learned[n]))
    return Stored(levels, params, gaps, {n: own.get(n, fallback) for n in names}, learned, text)
