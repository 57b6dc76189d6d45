"""A bake-off as data: the graph of units that `compute` runs and an executor places.

For every candidate and benchmark (a group per training seed) the plan holds, in the order a serial run takes
them: the base model's probes and bias pairs (the "before" of forgetting and bias; they do not depend on the
seed), one `tune` unit per sweep setting and seed, one `select` unit (the setting with the best mean validation
score over seeds), then per seed a `score` unit per scored split and the tuned model's probes and bias pairs.
A zero-shot row has a `zero-shot` unit in place of tuning and selection, and its "after" is its "before".

Units are frozen descriptions: names, settings and the ids of the units they read, nothing loaded. Keys of units
that score the tuned model depend on which setting was selected, so they are derived from that input when it is
known (harness/execution/compute.py: `key_of`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from harness.config import BakeoffConfig, CandidateConfig, RecipeConfig
from harness.data.specs import SCORED_SPLITS
from harness.execution.keys import CPU, scoring_key, tune_key, zero_shot_key
from harness.execution.suites import Benchmark, Suites
from harness.models.device import Placement
from harness.models.loading import ModelHandle
from harness.scoring.tasks import applicable

__all__ = ["SCORED_SPLITS", "BenchPlan", "Plan", "Unit", "group_recipe", "plan"]


@dataclass(frozen=True)
class Unit:
    id: str  # unique in its plan and readable: "MiniLM/sst2/seed 0/tune lr 0.001, 2 epochs"
    kind: str  # probe | bias | tune | select | zero-shot | score
    candidate: str
    benchmark: str
    seed: int  # the training seed whose recipe the unit runs under (base-model units: the first seed's)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)  # that seed's recipe (plan.group_recipe)
    inputs: tuple[str, ...] = ()
    key: str | None = None  # None: derived from the selected setting (compute.key_of)
    placement: Placement = CPU  # where it runs and in which precision (its key says so off a CPU)
    learning_rate: float | None = None
    epochs: int | None = None
    split: str | None = None  # score: the split
    suite: str | None = None  # probe | bias: the suite's name (Suites.probes / Suites.bias)
    tuned: bool = False  # probe | bias | score: of the tuned model (else of the base model)
    snapshot: bool = False  # tune: other settings follow in the same workspace (keep the initial state)
    seeds: tuple[int, ...] = ()  # select: the seeds whose tune units it reads (adaptive seeds: this round's)
    @property
    def resources(self) -> str:
        """Which `executor.resources` entry applies to this unit."""
        return {"tune": "tune", "probe": "probe"}.get(self.kind, "score")

    @property
    def group(self) -> tuple[str, str, int, Placement]:
        """Units of one group share a workspace (one loaded model) on the local executor; a unit placed elsewhere
        (a GPU tune unit, CPU scoring) opens its own."""
        return self.candidate, self.benchmark, self.seed, self.placement



def scoring_unit_key(unit: Unit, model: str, suites: Suites, resamples: int) -> str:
    """The key of a unit that scores a model (score, probe, bias) from what the unit carries: the plan calls it with
    the base model's weights hash, a tuned-model unit with the key of the setting its select input chose
    (harness/execution/compute.py key_of)."""
    bench = suites.benchmarks[unit.benchmark]
    spec, recipe, at = bench.spec, unit.recipe, unit.placement
    if unit.kind == "score":
        split = unit.split or ""
        return scoring_key("score", model, spec, recipe, resamples, at, split=split, data=bench.splits[split].sha256,
                           metrics=list(spec.metrics))
    if unit.kind == "probe":
        p = suites.probes[unit.suite or ""]
        return scoring_key("probe", model, spec, recipe, resamples, at, probe=p.name, version=p.spec.version,
                           probe_kind=p.spec.kind, data=p.digest, n=len(p.items))
    b = suites.bias[unit.suite or ""]
    return scoring_key("bias", model, spec, recipe, resamples, at, bias=b.name, version=b.spec.version, data=b.digest)


@dataclass(frozen=True)
class BenchPlan:
    """Which units make up one candidate's result on one benchmark (harness/execution/assemble.py), each by the
    suite or split it scores: the suites listed are the ones that apply (decided here, once)."""

    candidate: str
    benchmark: str
    zero_shot: bool
    seeds: tuple[int, ...]
    recipes: tuple[RecipeConfig, ...] = ()  # per seed: the recipe its units run under (group_recipe)
    na: str = ""  # not applicable: the reason, and no units
    base_probes: dict[str, str] = field(default_factory=dict)  # probe suite -> unit id
    base_bias: dict[str, str] = field(default_factory=dict)  # bias suite -> unit id
    tunes: tuple[tuple[str, ...], ...] = ()  # per seed, per setting
    select: str = ""  # the select unit (zero-shot: the zero-shot unit)
    scores: tuple[dict[str, str], ...] = ()  # per seed: split -> unit id
    probes: tuple[dict[str, str], ...] = ()  # per seed: probe suite -> tuned-model unit (none: "after" is "before")
    bias: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class Plan:
    units: tuple[Unit, ...]
    benches: tuple[BenchPlan, ...]

    def by_id(self) -> dict[str, Unit]:
        return {u.id: u for u in self.units}


def group_recipe(cfg: BakeoffConfig, cand: CandidateConfig, seed: int) -> RecipeConfig:
    """The recipe a group's units run under: one seed's (the same keys as a one-seed run with that seed). A
    zero-shot row under several seeds is scored once, under the recipe as written."""
    if cand.zero_shot and len(cfg.recipe.seed_values) > 1:
        return cfg.recipe
    return cfg.recipe.for_seed(seed)


Arms = dict[str, tuple[tuple[int, ...], list[tuple[float, int]]]]  # candidate: (its seeds, its settings)


def plan(cfg: BakeoffConfig, suites: Suites, handles: dict[str, ModelHandle],
         placement: Placement | dict[str, Placement] = CPU, arms: Arms | None = None) -> Plan:
    """The plan; `placement`: one for every unit, or one per `executor.resources` entry (tune, score, probe).
    `arms`: with adaptive seeds, each tuned candidate's seeds and sweep settings so far (harness/results/rounds.py);
    a candidate it leaves out is not planned."""
    at = placement if isinstance(placement, dict) else {r: placement for r in ("tune", "score", "probe")}
    units: list[Unit] = []
    benches = []
    for cand in cfg.candidates:
        if arms is not None and not cand.zero_shot and cand.name not in arms:
            continue
        for bench in suites.benchmarks.values():
            handle, spec = handles[cand.name], bench.spec
            seeds = (cfg.recipe.seed,) if cand.zero_shot and len(cfg.recipe.seed_values) > 1 else \
                tuple(cfg.recipe.seed_values)
            if arms is not None and cand.name in arms:
                seeds = arms[cand.name][0]
            reason = applicable(spec, handle.kind, cand.zero_shot and not cand.adapter)  # an adapter has its head
            if reason:
                benches.append(BenchPlan(cand.name, spec.name, cand.zero_shot, seeds, na=reason))
                continue
            settings = arms[cand.name][1] if arms is not None and cand.name in arms else cfg.settings(cand)
            benches.append(_bench_units(cfg, cand, handle, bench, suites, seeds, settings, at, units))
    return Plan(tuple(units), tuple(benches))


def _with_adapter(units: list[Unit], base: dict[str, str]) -> dict[str, str]:
    """An adapter candidate's probe and bias units with its adapter on (the "after"): its base-model units (adapter
    disabled, the "before") again, marked tuned, under keys of their own."""
    by_id = {u.id: u for u in units}
    added = {suite: dataclasses.replace(by_id[i], id=by_id[i].id.replace("(base model)", "(adapter)"), tuned=True,
                                        key=f"{by_id[i].key}-adapter") for suite, i in base.items()}
    units.extend(added.values())
    return {suite: u.id for suite, u in added.items()}


def _bench_units(cfg: BakeoffConfig, cand: CandidateConfig, handle: ModelHandle, bench: Benchmark, suites: Suites,
                 seeds: tuple[int, ...], settings: list[tuple[float, int]], at: dict[str, Placement],
                 units: list[Unit]) -> BenchPlan:
    name, resamples, spec = f"{cand.name}/{bench.name}", cfg.bootstrap_resamples, bench.spec

    def add(unit: Unit) -> str:
        """The unit, placed, with its key when the plan knows it (the base model's units)."""
        unit = dataclasses.replace(unit, placement=at[unit.resources], recipe=group_recipe(cfg, cand, unit.seed))
        if unit.kind in ("score", "probe", "bias") and not unit.tuned:
            unit = dataclasses.replace(unit, key=scoring_unit_key(unit, handle.weights_hash, suites, resamples))
        units.append(unit)
        return unit.id

    common: dict[str, Any] = {"candidate": cand.name, "benchmark": spec.name}
    recipes = tuple(group_recipe(cfg, cand, seed) for seed in seeds)
    probes, bias = suites.probes_for(handle.kind), suites.bias_for(spec.name, handle.kind)
    base_probes = {p.name: add(Unit(f"{name}/probe {p.name} (base model)", "probe", seed=seeds[0], suite=p.name,
                                    **common)) for p in probes}
    base_bias = {b.name: add(Unit(f"{name}/bias {b.name} (base model)", "bias", seed=seeds[0], suite=b.name,
                                  **common)) for b in bias}
    if cand.zero_shot:
        select = add(Unit(f"{name}/zero-shot", "zero-shot", seed=seeds[0], key=zero_shot_key(handle), **common))
        scores = {s: add(Unit(f"{name}/score {s} (base model)", "score", seed=seeds[0], split=s, inputs=(select,),
                              **common)) for s in bench.scored}
        after_probes = _with_adapter(units, base_probes) if cand.adapter else {}
        after_bias = _with_adapter(units, base_bias) if cand.adapter else {}
        return BenchPlan(cand.name, spec.name, True, seeds, recipes, "", base_probes, base_bias, (), select, (scores,),
                         (after_probes,), (after_bias,))
    tunes = tuple(tuple(add(Unit(f"{name}/seed {seed}/tune lr {lr:g}, {epochs} epochs", "tune", seed=seed,
                                 learning_rate=lr, epochs=epochs, snapshot=len(settings) > 1,
                                 key=tune_key(handle, spec, group_recipe(cfg, cand, seed), bench.splits, lr, epochs,
                                              at["tune"]),
                                 **common))
                        for lr, epochs in settings) for seed in seeds)
    select = add(Unit(f"{name}/select", "select", seed=seeds[0], inputs=tuple(t for ts in tunes for t in ts),
                      seeds=seeds, **common))
    per_seed_scores, per_seed_probes, per_seed_bias = [], [], []
    for seed, ts in zip(seeds, tunes):
        inputs, tag = (select, *ts), f"{name}/seed {seed}"
        per_seed_scores.append({s: add(Unit(f"{tag}/score {s}", "score", seed=seed, split=s, tuned=True,
                                            inputs=inputs, **common)) for s in bench.scored})
        per_seed_probes.append({p.name: add(Unit(f"{tag}/probe {p.name} (tuned model)", "probe", seed=seed,
                                                 suite=p.name, tuned=True, inputs=inputs, **common)) for p in probes})
        per_seed_bias.append({b.name: add(Unit(f"{tag}/bias {b.name} (tuned model)", "bias", seed=seed, suite=b.name,
                                               tuned=True, inputs=inputs, **common)) for b in bias})
    return BenchPlan(cand.name, spec.name, False, seeds, recipes, "", base_probes, base_bias, tunes, select,
                     tuple(per_seed_scores), tuple(per_seed_probes), tuple(per_seed_bias))
