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
from dataclasses import dataclass
from typing import Any

from harness.config import BakeoffConfig, CandidateConfig, RecipeConfig
from harness.data.specs import SCORED_SPLITS
from harness.execution.keys import CPU, scoring_key, tune_key, zero_shot_key
from harness.execution.suites import Suites
from harness.models.device import Placement
from harness.models.loading import ModelHandle
from harness.scoring.tasks import applicable


@dataclass(frozen=True)
class Unit:
    id: str  # unique in its plan and readable: "MiniLM/sst2/seed 0/tune lr 0.001, 2 epochs"
    kind: str  # probe | bias | tune | select | zero-shot | score
    candidate: str
    benchmark: str
    seed: int  # the training seed whose recipe the unit runs under (base-model units: the first seed's)
    inputs: tuple[str, ...] = ()
    key: str | None = None  # None: derived from the selected setting (compute.key_of)
    placement: Placement = CPU  # where it runs and in which precision (its key says so off a CPU)
    learning_rate: float | None = None
    epochs: int | None = None
    split: str | None = None  # score: the split
    suite: str | None = None  # probe | bias: the suite's name
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



@dataclass(frozen=True)
class BenchPlan:
    """Which units make up one candidate's result on one benchmark (harness/execution/assemble.py)."""

    candidate: str
    benchmark: str
    zero_shot: bool
    seeds: tuple[int, ...]
    na: str = ""  # not applicable: the reason, and no units
    base_probes: tuple[str, ...] = ()
    base_bias: tuple[str, ...] = ()
    tunes: tuple[tuple[str, ...], ...] = ()  # per seed, per setting
    select: str = ""  # the select unit (zero-shot: the zero-shot unit)
    scores: tuple[tuple[tuple[str, str], ...], ...] = ()  # per seed: (split, unit id)
    probes: tuple[tuple[str, ...], ...] = ()  # per seed: tuned-model probe units (zero-shot: none)
    bias: tuple[tuple[str, ...], ...] = ()


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
        for spec, splits in suites.benchmarks:
            handle = handles[cand.name]
            seeds = (cfg.recipe.seed,) if cand.zero_shot and len(cfg.recipe.seed_values) > 1 else \
                tuple(cfg.recipe.seed_values)
            if arms is not None and cand.name in arms:
                seeds = arms[cand.name][0]
            reason = applicable(spec, handle.kind, cand.zero_shot and not cand.adapter)  # an adapter has its head
            if reason:
                benches.append(BenchPlan(cand.name, spec.name, cand.zero_shot, seeds, na=reason))
                continue
            settings = arms[cand.name][1] if arms is not None and cand.name in arms else cfg.settings(cand)
            benches.append(_bench_units(cfg, cand, handle, spec, splits, suites, seeds, settings, at, units))
    return Plan(tuple(units), tuple(benches))


def _with_adapter(units: list[Unit], base: tuple[str, ...]) -> tuple[str, ...]:
    """An adapter candidate's probe and bias units with its adapter on (the "after"): its base-model units (adapter
    disabled, the "before") again, marked tuned, under keys of their own."""
    from dataclasses import replace

    by_id = {u.id: u for u in units}
    added = [replace(by_id[i], id=by_id[i].id.replace("(base model)", "(adapter)"), tuned=True,
                     key=f"{by_id[i].key}-adapter") for i in base]
    units.extend(added)
    return tuple(u.id for u in added)


def _bench_units(cfg: BakeoffConfig, cand: CandidateConfig, handle: ModelHandle, spec: object, splits: dict,
                 suites: Suites, seeds: tuple[int, ...], settings: list[tuple[float, int]], at: dict[str, Placement],
                 units: list[Unit]) -> BenchPlan:
    from harness.data.specs import BenchmarkSpec

    assert isinstance(spec, BenchmarkSpec)
    name, resamples = f"{cand.name}/{spec.name}", cfg.bootstrap_resamples

    def add(unit: Unit) -> str:
        units.append(dataclasses.replace(unit, placement=at[unit.resources]))
        return unit.id

    first = group_recipe(cfg, cand, seeds[0])
    common: dict[str, Any] = {"candidate": cand.name, "benchmark": spec.name}
    score_at, probe_at = at["score"], at["probe"]
    probes = [(p, items, digest) for p, items, digest in suites.probes if p.model_kind == handle.kind]
    # Bias "before" needs a model that can already do the task: a causal LM zero-shot. An encoder's new head is
    # untrained before tuning, so its before/after change would be noise; encoders are skipped.
    bias = [(b, pairs, digest) for b, pairs, digest in suites.bias
            if b.benchmark == spec.name and handle.kind == "causal"]
    base_probes = tuple(add(Unit(f"{name}/probe {p.name} (base model)", "probe", seed=seeds[0], suite=p.name,
                                 key=scoring_key("probe", handle.weights_hash, spec, first, resamples, probe_at,
                                                 probe=p.name, version=p.version, probe_kind=p.kind, data=digest,
                                                 n=len(items)), **common))
                        for p, items, digest in probes)
    base_bias = tuple(add(Unit(f"{name}/bias {b.name} (base model)", "bias", seed=seeds[0], suite=b.name,
                               key=scoring_key("bias", handle.weights_hash, spec, first, resamples, score_at,
                                               bias=b.name, version=b.version, data=digest), **common))
                      for b, _, digest in bias)
    scored = [s for s in SCORED_SPLITS if s in splits]
    if cand.zero_shot:
        select = add(Unit(f"{name}/zero-shot", "zero-shot", seed=seeds[0], key=zero_shot_key(handle), **common))
        scores = ((tuple((s, add(Unit(f"{name}/score {s} (base model)", "score", seed=seeds[0], split=s,
                                      inputs=(select,),
                                      key=scoring_key("score", handle.weights_hash, spec, first, resamples, score_at,
                                                      split=s, data=splits[s].sha256, metrics=list(spec.metrics)),
                                      **common))) for s in scored),))
        after = _with_adapter(units, (*base_probes, *base_bias)) if cand.adapter else ()
        return BenchPlan(cand.name, spec.name, True, seeds, "", base_probes, base_bias, (), select, scores,
                         (after[:len(base_probes)],), (after[len(base_probes):],))
    tunes = tuple(tuple(add(Unit(f"{name}/seed {seed}/tune lr {lr:g}, {epochs} epochs", "tune", seed=seed,
                                 learning_rate=lr, epochs=epochs, snapshot=len(settings) > 1,
                                 key=tune_key(handle, spec, group_recipe(cfg, cand, seed), splits, lr, epochs,
                                              at["tune"]),
                                 **common))
                        for lr, epochs in settings) for seed in seeds)
    select = add(Unit(f"{name}/select", "select", seed=seeds[0], inputs=tuple(t for ts in tunes for t in ts),
                      seeds=seeds, **common))
    per_seed_scores, per_seed_probes, per_seed_bias = [], [], []
    for seed, ts in zip(seeds, tunes):
        inputs, tag = (select, *ts), f"{name}/seed {seed}"
        per_seed_scores.append(tuple((s, add(Unit(f"{tag}/score {s}", "score", seed=seed, split=s, tuned=True,
                                                  inputs=inputs, **common))) for s in scored))
        per_seed_probes.append(tuple(add(Unit(f"{tag}/probe {p.name} (tuned model)", "probe", seed=seed,
                                              suite=p.name, tuned=True, inputs=inputs, **common))
                                     for p, _, _ in probes))
        per_seed_bias.append(tuple(add(Unit(f"{tag}/bias {b.name} (tuned model)", "bias", seed=seed, suite=b.name,
                                            tuned=True, inputs=inputs, **common)) for b, _, _ in bias))
    return BenchPlan(cand.name, spec.name, False, seeds, "", base_probes, base_bias, tunes, select,
                     tuple(per_seed_scores), tuple(per_seed_probes), tuple(per_seed_bias))
