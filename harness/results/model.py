"""The typed results model: what a finished bake-off is, as frozen dataclasses with `to_json` / `from_json`.

The harness builds it (harness/results/finish.py: candidate rows -> tie groups -> gates -> recommendation) and
every renderer in reports/ reads it; results.json and the run store hold its JSON form. Field names are the
results.json keys, so a reader of the file and a reader of the model see the same names.

Schema version 2 adds `tie_groups` and `tie_rule` (computed once by harness/results/ties.py and stored) to
version 1; `from_json` reads both versions (a version-1 run has no stored tie groups: harness/results/finish.py
`restore` computes them when it loads one from the store).

Schema (version 2 = version 1 + tie_groups[{benchmark, metric, order[], group{candidate: n}, notes[]}], tie_rule):
  schema_version, run_id, name, created, config_hash, config, git_sha, packages{}, recommendation,
  recommendation_reason, passed (bool), recommendation_stability (the bootstrap agreement's share),
  recommendation_agreement{share, held_fixed[], deciding_gate, margin_se, reliability (reliable|tentative|null),
  tentative_below, settle, per_benchmark[{benchmark, candidate, metric, value, params}]}
    (harness/gates/stability.py; absent in runs written before it), gates[{candidate, gate, passed, observed, message,
    p_adjusted, baseline, metric (baseline gates)}],
  units{reused, computed, root} (units of work reused from an earlier run or computed by this one),
  hardware{cpu, cpu_bf16, machine, cores, threads, gpu, gpu_bf16, executor} (the machine the run's numbers
    came from: harness/models/hardware.py; absent in runs written before it),
  warnings[{level, path, line, message}] (data lint findings that did not stop the run: harness/data/validate.py),
  references{benchmark{split{data_sha256, items[[reference]]}}}
    (what predictions are scored against: harness/data/references.py),
  candidates[{name, model, status, reason, source, path, architecture, kind, revision, weights_sha,
    params, trainable_params (the largest over its benchmarks; each benchmark's own in its row),
    zero_shot (a reference row: the base model untuned, never recommended),
    adapter (a peft adapter folder scored as it is with `tuner: none`: gated and recommended like a tuned row;
      absent for other candidates and in runs written before it),
    did_not_learn[benchmark names whose `learned` is false],
    cost{train_seconds, train_tokens_per_second, latency_ms_per_item, latency_conditions, peak_rss_mb, peak_gpu_mb,
      gpu_seconds, train_tokens_in_data, train_tokens_computed, scoring_tokens_in_data, scoring_tokens_computed
      (tokens of the rows as the data has them, and tokens the model ran: a shared prompt prefix once; summed over
      benchmarks, seeds and, for scoring, the scored splits, probes and bias pairs; absent in runs written before
      them or when a unit kept before them recorded none)},
    benchmarks[{benchmark, version, task, status, reason, learning_rate, data_sha256{split},
      scores{split{metric{value, ci_low, ci_high, n, ci_method, per_item[]}}},
      train{train_loss[], val_loss[], seconds, tokens, tokens_per_second, steps, bf16,
        curve[{step, train_loss, val_loss,
               val_metric (main metric on validation, null when not evaluated: recipe.eval_metric)}],
        best_step (best evaluation by recipe.monitor), stopped_early,
        step_loss[[step, mean training loss since the previous logged step]] (harness/training/loop.py),
        tokens_computed (tokens the model ran: a shared prompt prefix once per micro-batch; `tokens` counts every
          row's), prefix{path (shared | unshared | mixed), shared_batches, batches, mean_prefix_tokens,
          unshared_why{reason: micro-batches}} (absent in runs written before them)},
      chance{split{value, how}} (the best trivial predictor on that split,
        by the same metric code: harness/scoring/chance.py),
      learned (true | false | null: beats chance by the documented margin), learned_reason, zero_shot,
      epochs (the chosen setting's; null for a row scored as it is; absent in runs written before it),
      generalisation{gap, gap_ci_low, gap_ci_high, overfit_loss_gap}, predictions{split[]}, per_class_f1{split{label}},
      latency_ms_per_item, latency_conditions{items, warmup, batch, threads, device, precision, shared, cpu,
        gpu} (measured alone after every unit, under these conditions: harness/execution/latency.py; or
        {not_measured: why}; absent in runs written before it, whose latency the scoring units timed),
      params, trainable_params (this benchmark's tuned model: an encoder tunes a new head per benchmark; absent in
        runs written before it),
      confusion{split{labels[] (gold, rows), predicted[] (columns), counts[][]}} (classification; absent in runs
        written before it),
      sweep[{learning_rate, epochs, best_step, validation, val_loss (of the kept weights), chosen}],
      bias[{probe, version, data_sha256, files{spec, data}, flip rates before/after with intervals, change,
            per attribute}],
      tokens{score | probe | bias{data, computed, paths{path: calls}}} (scoring's tokens in the data and through the
        model, and how often each path ran: "shared prefix" or "unshared: why" (harness/scoring/lm.py Tokens);
        absent in runs written before it),
      files{spec, split: resolved data path}, unit (folder of the kept tuned setting: trainable.safetensors, adapter/),
      probes[{probe, version, kind, n, data_sha256, files{spec, data}, before{}, after{}, chance, informative,
              forgetting{value, ci_low, ci_high},
              forgotten, gained, mcnemar_p, most_forgotten[], per_item{before[], after[]}}]}]}]

Exact round trip: every record keeps the keys it was read with, in their order, and any key the model does not
name (`extra`), so `Results.from_json(d).to_json() == d` for a version-2 `d` (apart from the version number and
the tie groups for a version-1 one). Leaf payloads owned by one producer (training curves, sweep rows, per-class
F1, confusion matrices, chance levels, predictions) stay JSON values.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

SCHEMA_VERSION = 2

R = TypeVar("R", bound="Record")
_META = ("extra", "keys")


@dataclass(frozen=True)
class Record:
    """A JSON object with named fields: `keys` are the keys it was read with, in order (None for one built in
    code, which writes every field); `extra` holds the keys this model does not name."""
    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False, compare=False)
    keys: tuple[str, ...] | None = field(default=None, kw_only=True, repr=False, compare=False)
    NESTED: ClassVar[dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]]] = {}  # key -> (read, write)
    OPTIONAL: ClassVar[tuple[str, ...]] = ()  # keys a record built in code writes only when they are not None

    @classmethod
    def from_json(cls: type[R], d: Mapping[str, Any]) -> R:
        names = [f.name for f in dataclasses.fields(cls) if f.name not in _META]
        values = {n: cls.NESTED[n][0](d[n]) if n in cls.NESTED and d.get(n) is not None else d[n]
                  for n in names if n in d}
        return cls(**values, extra={k: v for k, v in d.items() if k not in names}, keys=tuple(d))

    def to_json(self) -> dict[str, Any]:
        names = [f.name for f in dataclasses.fields(self) if f.name not in _META]
        out: dict[str, Any] = {}
        for key in (*names, *self.extra) if self.keys is None else self.keys:
            if key in names:
                value = getattr(self, key)
                if value is None and self.keys is None and key in self.OPTIONAL:
                    continue
                out[key] = self.NESTED[key][1](value) if key in self.NESTED and value is not None else value
            elif key in self.extra:
                out[key] = self.extra[key]
        return out


def _rows(cls: type[R]) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    return (lambda xs: tuple(cls.from_json(x) for x in xs), lambda xs: [x.to_json() for x in xs])


def _one(cls: type[R]) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    return (cls.from_json, lambda x: x.to_json())


@dataclass(frozen=True)
class MetricScore(Record):
    """A value with its 95% interval: a metric on a split, a probe's accuracy or forgetting, a flip rate. The one
    type from the scorer (harness/scoring/metrics.py computes it) through the unit record and the seed merge to
    results.json: one built in code writes value, ci_low, ci_high, n, ci_method, its signature and seeds (seeds with
    seed_sd) when it has them, and per_item, then per_seed when set."""
    OPTIONAL = ("signature", "seeds", "per_seed")
    value: float | None = None  # with several training seeds: the mean over seeds (harness/statistics/seeds.py)
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    ci_method: str | None = None  # how the interval was computed
    signature: str | None = None  # sacrebleu's, for BLEU and chrF
    seeds: list[float] | None = None  # the value under each training seed (several seeds only)
    seed_sd: float | None = None  # their standard deviation (ddof 1)
    per_item: list[float] = field(default_factory=list)  # several seeds: each item's mean over seeds
    per_seed: list[list[float]] | None = None  # per_item under each seed

    @property
    def number(self) -> float:
        """The value as a float, NaN where there is none (a scorer always sets one; a stored row may not)."""
        return float("nan") if self.value is None else self.value

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        if self.keys is None and self.seeds is None:
            out.pop("seed_sd")  # one seed: no spread over seeds to write
        return out


def _scores() -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    return (lambda s: {split: {m: MetricScore.from_json(v) for m, v in ms.items()} for split, ms in s.items()},
            lambda s: {split: {m: v.to_json() for m, v in ms.items()} for split, ms in s.items()})


def _intervals(*names: str) -> dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]]:
    return {n: _one(MetricScore) for n in names}


@dataclass(frozen=True)
class ProbeRow(Record):
    """A knowledge probe before and after tuning, on the same items (harness/scoring/probes.py)."""
    probe: str = ""
    version: str | None = None
    kind: str | None = None
    n: int | None = None
    data_sha256: str | None = None
    before: MetricScore | None = None
    after: MetricScore | None = None
    forgetting: MetricScore | None = None  # before - after accuracy
    chance: float | None = None  # a uniform guess's accuracy (None in runs written before it)
    informative: bool | None = None  # the base model is shown above chance (probes.py probe_chance)
    forgotten: float | None = None  # items right before and wrong after (the mean over seeds under seeds)
    gained: float | None = None
    mcnemar_p: float | None = None  # one seed's test: None under seeds, each seed's in mcnemar_p_per_seed
    mcnemar_p_per_seed: list[float] | None = None
    most_forgotten: list[dict[str, Any]] = field(default_factory=list)
    per_item: dict[str, list[float]] | None = None
    NESTED = _intervals("before", "after", "forgetting")


@dataclass(frozen=True)
class BiasRow(Record):
    """A counterfactual bias suite: flip rates before and after tuning (harness/scoring/bias.py)."""
    probe: str = ""
    version: str | None = None
    data_sha256: str | None = None
    n: int | None = None
    flip_rate_before: MetricScore | None = None
    flip_rate_after: MetricScore | None = None
    change: MetricScore | None = None  # after - before
    new_flips: float | None = None  # the mean over seeds under seeds, as a probe's counts
    vanished_flips: float | None = None
    mcnemar_p: float | None = None
    mcnemar_p_per_seed: list[float] | None = None
    per_attribute: dict[str, dict[str, Any]] = field(default_factory=dict)
    flipped_examples: list[dict[str, Any]] = field(default_factory=list)
    NESTED = _intervals("flip_rate_before", "flip_rate_after", "change")


@dataclass(frozen=True)
class Generalisation(Record):
    """Test minus shifted on the main metric, with its interval (harness/statistics/gap.py)."""
    metric: str | None = None
    gap: float | None = None
    gap_ci_low: float | None = None
    gap_ci_high: float | None = None
    gap_seeds: list[float] | None = None
    gap_seed_sd: float | None = None
    overfit_loss_gap: float | None = None  # last validation loss minus last training loss


@dataclass(frozen=True)
class BenchmarkRow(Record):
    """One candidate on one benchmark: scores per split and metric, training, probes, bias, chance."""
    benchmark: str = ""
    version: str | None = None
    task: str | None = None
    status: str = "ok"  # ok | failed | n/a
    reason: str = ""
    learning_rate: float | None = None
    data_sha256: dict[str, str] = field(default_factory=dict)
    scores: dict[str, dict[str, MetricScore]] = field(default_factory=dict)  # split -> metric -> score
    train: dict[str, Any] | None = None  # train_loss[], val_loss[], curve[], seconds, tokens, ...
    latency_ms_per_item: float | None = None
    probes: tuple[ProbeRow, ...] = ()
    predictions: dict[str, list[str]] | None = None
    per_class_f1: dict[str, dict[str, float]] | None = None
    confusion: dict[str, dict[str, Any]] | None = None  # split -> {labels, predicted, counts} (classification)
    sweep: list[dict[str, Any]] | None = None
    bias: tuple[BiasRow, ...] = ()
    files: dict[str, Any] | None = None
    unit: str | None = None
    chance: dict[str, Any] | None = None
    learned: bool | None = None
    learned_reason: str | None = None
    zero_shot: bool = False
    epochs: int | None = None  # the chosen setting's epochs (None: scored as it is; absent in runs written before it)
    seeds: list[int] | None = None
    seed_runs: list[dict[str, Any]] | None = None
    seed_predictions: dict[str, list[list[str]]] | None = None
    params: int | None = None  # this benchmark's tuned model (absent in runs written before it)
    trainable_params: int | None = None  # trained on this benchmark: an encoder's new head differs per benchmark
    latency_conditions: dict[str, Any] | None = None  # harness/execution/latency.py; None in older runs
    generalisation: Generalisation = field(default_factory=Generalisation)
    # stage (score, probe, bias) -> {data, computed, paths{path: calls}}: harness/scoring/lm.py Tokens summed over
    # the stage's units (the base model's probes and bias pairs once); None when a unit kept before it has none
    tokens: dict[str, dict[str, Any]] | None = None
    NESTED = {"scores": _scores(), "probes": _rows(ProbeRow), "bias": _rows(BiasRow),
              "generalisation": _one(Generalisation)}
    OPTIONAL = ("tokens",)

    def score(self, split: str, metric: str) -> MetricScore | None:
        return self.scores.get(split, {}).get(metric)


@dataclass(frozen=True)
class Cost(Record):
    train_seconds: float | None = None  # summed over benchmarks
    train_tokens_per_second: float | None = None
    latency_ms_per_item: float | None = None  # the first benchmark's, measured under latency_conditions
    latency_conditions: dict[str, Any] | None = None
    peak_rss_mb: float | None = None
    peak_gpu_mb: float | None = None  # the largest unit's torch.cuda.max_memory_allocated; None off CUDA
    gpu_seconds: float | None = None  # wall seconds of the candidate's units on a GPU; None off CUDA
    # tokens in the data (every row as it is) and tokens computed (a shared prompt prefix once, no padding), summed
    # over benchmarks: training (the kept setting's epochs, every seed) and scoring (scored splits, probes, bias
    # pairs); None where a unit kept before they were recorded has none
    train_tokens_in_data: int | None = None
    train_tokens_computed: int | None = None
    scoring_tokens_in_data: int | None = None
    scoring_tokens_computed: int | None = None
    OPTIONAL = ("train_tokens_in_data", "train_tokens_computed", "scoring_tokens_in_data", "scoring_tokens_computed")


@dataclass(frozen=True)
class CandidateRow(Record):
    """One candidate model: what it is, what it cost, and its row per benchmark."""
    name: str = ""
    model: str | None = None
    status: str = "ok"  # ok | failed
    reason: str = ""
    source: str | None = None
    path: str | None = None
    architecture: str | None = None
    kind: str | None = None  # causal | encoder | seq2seq
    revision: str | None = None
    weights_sha: str | None = None
    params: int | None = None
    trainable_params: int | None = None
    zero_shot: bool = False  # a reference row: the base model untuned, never recommended
    did_not_learn: list[str] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)
    benchmarks: tuple[BenchmarkRow, ...] = ()
    adapter: str | None = None  # a peft adapter folder scored as it is (`tuner: none`): a candidate like any other
    NESTED = {"cost": _one(Cost), "benchmarks": _rows(BenchmarkRow)}
    OPTIONAL = ("adapter",)

    def benchmark(self, name: str) -> BenchmarkRow | None:
        return next((b for b in self.benchmarks if b.benchmark == name), None)


@dataclass(frozen=True)
class GateVerdict(Record):
    candidate: str = ""
    gate: str = ""
    passed: bool = False
    observed: float | None = None  # a baseline gate: the difference candidate - baseline
    message: str = ""
    p_adjusted: float | None = None  # a baseline gate: p(regression), adjusted across the candidate's baseline gates
    baseline: str | None = None  # a baseline gate: which promoted baseline ("name of run RUN_ID")
    metric: str | None = None  # a baseline gate: the metric `observed` is a difference of


@dataclass(frozen=True)
class TieGroup(Record):
    """Which candidates a benchmark's test data cannot tell apart on its main metric (harness/results/ties.py)."""
    benchmark: str = ""
    metric: str = ""
    order: list[str] = field(default_factory=list)  # candidate names, best first
    group: dict[str, int] = field(default_factory=dict)  # candidate name -> 1-based group number
    notes: list[str] = field(default_factory=list)  # what was compared when it is not the metric itself


@dataclass(frozen=True)
class Results(Record):
    """A finished bake-off: provenance, candidate rows, tie groups, gate verdicts and the recommendation."""
    schema_version: int = SCHEMA_VERSION
    run_id: str = ""
    name: str = ""
    created: str = ""
    config_hash: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    git_sha: str = ""
    packages: dict[str, str] = field(default_factory=dict)
    passed: bool = False
    recommendation: str | None = None
    recommendation_reason: str = ""
    recommendation_stability: float | None = None  # the bootstrap agreement's share (harness/gates/stability.py)
    gates: tuple[GateVerdict, ...] = ()
    candidates: tuple[CandidateRow, ...] = ()
    warnings: list[dict[str, Any]] = field(default_factory=list)
    references: dict[str, Any] = field(default_factory=dict)
    tie_groups: tuple[TieGroup, ...] = ()
    tie_rule: str = ""
    recommendation_agreement: dict[str, Any] | None = None  # {share, ..., reliability, settle, per_benchmark[]}
    hardware: dict[str, Any] | None = None  # harness/models/hardware.py describe(); None in runs written before it
    adaptive: dict[str, Any] | None = None  # adaptive seeds: seeds and why each arm stopped (results/rounds.py)
    units: dict[str, Any] | None = None  # units of work reused / computed, and where they are kept
    # metric -> the factor the reports show its values with (100: a fraction, in percent; 1: as it is), for the
    # metrics a benchmark spec declares (evaluate modules, with their `scale`); the built-ins' are known by name
    metric_scales: dict[str, float] | None = None
    NESTED = {"gates": _rows(GateVerdict), "candidates": _rows(CandidateRow), "tie_groups": _rows(TieGroup)}
    # set once the run is finished (harness/run.py, harness/results/rounds.py), or only where a spec declares metrics
    OPTIONAL = ("adaptive", "units", "metric_scales")

    @classmethod
    def from_json(cls: type[R], d: Mapping[str, Any]) -> R:
        version = d.get("schema_version", 1)
        if version not in (1, SCHEMA_VERSION):
            raise ValueError(f"results schema_version {version}: this sftbench reads 1 and {SCHEMA_VERSION}")
        return super().from_json(d)

    def to_json(self) -> dict[str, Any]:
        out = super().to_json() | {"schema_version": SCHEMA_VERSION}
        return out if "tie_groups" in out else out | {"tie_groups": [t.to_json() for t in self.tie_groups],
                                                      "tie_rule": self.tie_rule}

    def candidate(self, name: str) -> CandidateRow | None:
        return next((c for c in self.candidates if c.name == name), None)

    def with_changes(self, **changes: Any) -> Results:
        """A copy with fields replaced (the key order kept, new keys added at the end)."""
        keys = None if self.keys is None else self.keys + tuple(k for k in changes if k not in self.keys)
        return dataclasses.replace(self, **changes, keys=keys)


def write_json(results: Results, path: Path) -> None:
    """Atomic write: a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(results.to_json(), indent=1, default=float))
    tmp.replace(path)
