"""The bake-off config: frozen dataclasses loaded from YAML and validated on construction.

YAML holds strings and numbers; all logic lives in Python. `key=value` overrides from the command line
are applied to the raw mapping before validation (`recipe.epochs=1`, `name=nightly`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError, did_you_mean
from tuners import load_all

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "benchmarks"
DEMO_CONFIG = BUNDLED_DIR / "demo.yaml"


@dataclass(frozen=True)
class AdaptiveSeeds:
    """`recipe.seeds: {min: 2, max: 8, stability: 0.95}`: every candidate and sweep setting starts with `min` seeds
    and gets more only while its verdict is open (harness/gates/adaptive.py), up to `max`; the run stops adding seeds
    once the recommendation's stability reaches `stability`."""

    min: int = 2
    max: int = 8
    stability: float = 0.95

    def __post_init__(self) -> None:
        _check(self.min >= 2, f"recipe.seeds.min must be at least 2: the rule needs a seed spread (got {self.min})")
        _check(self.max >= self.min, f"recipe.seeds.max must be at least recipe.seeds.min ({self.min}; got {self.max})")
        _check(0 < self.stability < 1, f"recipe.seeds.stability must be in (0, 1) (got {self.stability})")


@dataclass(frozen=True)
class RecipeConfig:
    """The one training recipe applied unchanged to every candidate: the fields every tuner shares, and the options of
    its tuner only (`options`, the tuner's own dataclass in tuners/<name>/config.py: LoRA's r, alpha, dropout and
    target_modules, IA3's target_modules, freeze's freeze_keep_last, none for full). In YAML they are written flat
    beside the shared fields (`recipe: {tuner: lora, r: 8}`), under `options:`, or in a section named after their
    tuner (`lora: {r: 8}`); a section of another tuner is checked and not used (`gather_options`)."""

    tuner: str = "lora"
    options: Any = None  # the tuner's options; a mapping (None: the defaults) is read into its options class
    learning_rate: float = 2e-4
    epochs: int = 2
    batch_size: int = 8
    max_length: int = 256
    weight_decay: float = 0.0
    warmup_ratio: float = 0.06
    seed: int = 0
    seeds: int | list[int] | AdaptiveSeeds = 1  # a count (seed, seed + 1, ...), a list, or adaptive {min, max, ...}
    bf16: str = "auto"  # auto | on | off
    group_by_length: bool = True
    eval_every: int = 0  # validation loss every N optimizer steps; 0 = once per epoch
    patience: int = 0  # stop after this many evaluations without a lower validation loss; 0 = never stop early
    restore_best: bool = True  # end with the trainable weights of the best evaluation (by `monitor`)
    eval_metric: str = "auto"  # benchmark's main metric on validation at every evaluation: auto | on | off
    monitor: str = "loss"  # what early stopping and restore_best follow: loss | metric (the main metric)
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps (harness/models/device.py resolve)
    grad_accum: int = 1  # micro-batches per optimizer step: an effective batch of batch_size x grad_accum
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, more compute

    def __post_init__(self) -> None:
        tuner = load_all().get(self.tuner)  # an unknown tuner fails here, before any model loads
        if self.options is None or isinstance(self.options, dict):
            object.__setattr__(self, "options", build(tuner.options, self.options or {}, "recipe"))
        _check(isinstance(self.options, tuner.options), f"recipe.options are {type(self.options).__name__}, not "
               f"tuner {self.tuner}'s {tuner.options.__name__} (replace the tuner with options=None for its defaults)")
        _check(self.learning_rate >= 0, "recipe.learning_rate must be >= 0")
        _check(self.epochs >= 0, "recipe.epochs must be >= 0")
        _check(self.batch_size > 0, "recipe.batch_size must be positive")
        _check(self.max_length >= 8, "recipe.max_length must be at least 8")
        _check(0.0 <= self.warmup_ratio < 1.0, "recipe.warmup_ratio must be in [0, 1)")
        _check(self.bf16 in ("auto", "on", "off"), "recipe.bf16 must be auto, on or off")
        if isinstance(self.seeds, AdaptiveSeeds):
            pass
        elif isinstance(self.seeds, list):
            _check(bool(self.seeds) and len(set(self.seeds)) == len(self.seeds),
                   f"recipe.seeds must be a count or a non-empty list of distinct seeds (got {self.seeds})")
        else:
            _check(self.seeds >= 1, f"recipe.seeds must be at least 1 (got {self.seeds})")
        _check(self.eval_every >= 0, "recipe.eval_every must be >= 0 (0 = once per epoch)")
        _check(self.patience >= 0, "recipe.patience must be >= 0 (0 = no early stopping)")
        _check(self.eval_metric in ("auto", "on", "off"), f"recipe.eval_metric must be auto, on or off "
               f"(got {self.eval_metric!r})")
        _check(self.monitor in ("loss", "metric"), f"recipe.monitor must be loss or metric (got {self.monitor!r})")
        _check(not (self.monitor == "metric" and self.eval_metric == "off"),
               "recipe.monitor: metric needs the metric evaluated: set recipe.eval_metric to auto or on, not off")
        _check(self.grad_accum >= 1, f"recipe.grad_accum must be at least 1 (got {self.grad_accum})")
        kind = self.device.split(":")[0]
        _check(kind in ("auto", "cpu", "cuda", "mps") and (kind == "cuda" or ":" not in self.device),
               f"recipe.device must be auto, cpu, cuda, cuda:N or mps (got {self.device!r})")

    def key_fields(self) -> dict[str, Any]:
        """The recipe as unit keys see it: the shared fields and its tuner's own options (their `key_fields`), so that
        LoRA's r never changes a full fine-tune's key. Where it runs is not in it (the placement's own key fields
        are), and the memory knobs only when set, so that the keys of a recipe without them stay those sftbench
        always used."""
        fields = dataclasses.asdict(self)
        for elsewhere in ("options", "device"):  # the options are the tuner's own key fields, added below
            fields.pop(elsewhere)
        for knob, default in (("grad_accum", 1), ("gradient_checkpointing", False)):
            if fields[knob] == default:
                fields.pop(knob)
        return {**fields, **self.options.key_fields()}

    @property
    def seed_values(self) -> list[int]:
        """`seeds: 3` -> [seed, seed + 1, seed + 2]; a list as it is; adaptive seeds: all `max` of them (the full
        grid; an adaptive run trains a prefix of them per candidate and setting)."""
        if isinstance(self.seeds, list):
            return list(self.seeds)
        count = self.seeds.max if isinstance(self.seeds, AdaptiveSeeds) else self.seeds
        return [self.seed + i for i in range(count)]

    @property
    def adaptive(self) -> AdaptiveSeeds | None:
        return self.seeds if isinstance(self.seeds, AdaptiveSeeds) else None

    def for_seed(self, seed: int) -> RecipeConfig:
        """The recipe of one seed's tune unit: what a one-seed run with that seed would use (same unit keys)."""
        return dataclasses.replace(self, seed=seed, seeds=1)


@dataclass(frozen=True)
class SweepConfig:
    """A grid tried for every candidate; each candidate's best setting is picked on validation only. A list left out
    is no sweep over that knob (stored as []); a list given empty is a mistake, not a silent no-sweep."""

    learning_rate: list[float] | None = None
    epochs: list[int] | None = None

    def __post_init__(self) -> None:
        for knob in ("learning_rate", "epochs"):
            values = getattr(self, knob)
            _check(values != [], f"sweep.{knob} is an empty list: give the values to try, or leave it out")
            object.__setattr__(self, knob, values or [])
        _check(all(lr >= 0 for lr in self.learning_rate or []), "sweep.learning_rate values must be >= 0")
        _check(all(e >= 0 for e in self.epochs or []), "sweep.epochs values must be >= 0")


@dataclass(frozen=True)
class CandidateConfig:
    """One model in the bake-off: a bundled alias, a local folder, a GGUF file or a Hugging Face id; with `adapter:`
    (and `tuner: none`), a peft adapter folder on that base, scored as it is."""

    model: str
    name: str = ""
    revision: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False  # accept .bin/.pt weights (read with torch.load(weights_only=True)), never by default
    learning_rate: float | None = None  # overrides recipe.learning_rate for this candidate only
    tuner: str = ""  # "" = the shared recipe's tuner; "none" = score the base model untuned (a zero-shot reference)
    adapter: str | None = None  # a peft adapter folder (safetensors) loaded on `model`, scored as it is

    def __post_init__(self) -> None:
        _check(bool(self.model.strip()), "candidate.model must not be empty")
        _check(self.tuner in ("", "none"), f"candidate {self.model}: tuner may only be 'none' (a zero-shot "
               f"reference row); every tuned candidate shares recipe.tuner (got {self.tuner!r})")
        _check(self.adapter is None or (bool(self.adapter.strip()) and self.tuner == "none"),
               f"candidate {self.model}: adapter: {self.adapter!r} is scored as it is, so it needs tuner: none "
               "(and a folder)")
        if not self.name:
            named = self.adapter or self.model
            object.__setattr__(self, "name", named.rstrip("/").split("/")[-1])

    @property
    def zero_shot(self) -> bool:
        return self.tuner == "none"


@dataclass(frozen=True)
class SuiteRef:
    """A benchmark or probe suite: a bundled name or a path to its YAML spec, with optional row caps; or a probe read
    by lm-eval (`lm_eval: TASK`, `include_path: DIR`, `limit: N`; harness/scoring/lmeval.py)."""

    spec: str = ""
    max_train: int | None = None
    max_validation: int | None = None
    max_test: int | None = None
    max_items: int | None = None  # probes
    lm_eval: str = ""  # an lm-eval task or group name
    include_path: str = ""  # lm-eval: a folder of task YAMLs, relative to the config
    limit: int | None = None  # lm-eval: the first N documents of each task, as its simple_evaluate(limit=N)

    def __post_init__(self) -> None:
        for cap in ("max_train", "max_validation", "max_test", "max_items", "limit"):
            value = getattr(self, cap)
            _check(value is None or value > 0, f"{cap} must be positive (got {value})")
        _check(bool(self.spec) != bool(self.lm_eval), "name either spec (a suite) or lm_eval (an lm-eval task)"
               if self.lm_eval else "missing required key 'spec'")
        if not self.lm_eval:
            _check(not self.include_path and self.limit is None, "include_path and limit belong to lm_eval entries")


CAPS = ("forgetting", "generalisation_gap", "bias", "cost")  # gate kinds that put a ceiling (`max:`) on a number
COSTS = ("params", "latency_ms_per_item", "peak_rss_mb", "train_seconds", "peak_gpu_mb", "gpu_seconds")
CORRECTIONS = ("holm", "bh", "none")


BASELINE_MODES = {
    "no_regression": "fails only on evidence of a drop beyond the margin (controls false alarms; the default)",
    "non_inferior": "passes only on evidence that any drop is within the margin (controls false passes)",
}


@dataclass(frozen=True)
class GateConfig:
    """One gate; exactly one of `metric` (a threshold, or non-inferiority with `baseline:`) or a cap:
    `forgetting: PROBE`, `generalisation_gap: BENCHMARK`, `bias: SUITE` or `cost: NAME`, each with `max:`.
    `metric` is `benchmark.metric[.split]`, e.g. `support_intents.accuracy`. See harness/gates/check.py."""

    metric: str = ""
    op: str = ">="
    value: float = 0.0
    on: str = "value"  # value | ci_low | ci_high
    name: str = ""
    baseline: str = ""  # non-inferiority against this promoted baseline instead of a threshold
    margin: float = 0.0
    alpha: float = 0.05
    mode: str = ""  # baseline gates: no_regression (default) or non_inferior; see BASELINE_MODES
    forgetting: str = ""  # a probe name, or "*" for every probe the candidate ran
    generalisation_gap: str = ""  # a benchmark name
    bias: str = ""  # a counterfactual bias suite name
    cost: str = ""  # one of COSTS
    max: float | None = None  # the cap's ceiling
    recommendation_stability: float | None = None  # the bake-off's own gate: minimum bootstrap agreement

    @property
    def cap(self) -> str:
        """Which cap this gate is ("" for a metric gate)."""
        return next((k for k in CAPS if getattr(self, k)), "")

    def __post_init__(self) -> None:
        kinds = [k for k in ("metric", *CAPS) if getattr(self, k)] + (
            ["recommendation_stability"] if self.recommendation_stability is not None else [])
        _check(len(kinds) == 1, "a gate needs exactly one of metric, " + ", ".join(CAPS)
               + ", recommendation_stability" + (f" (got {', '.join(kinds)})" if kinds else ""))
        if self.recommendation_stability is not None:
            _check(0 < self.recommendation_stability <= 1,
                   f"gate recommendation_stability must be in (0, 1] (got {self.recommendation_stability})")
            if not self.name:
                object.__setattr__(self, "name", f"recommendation stability >= {self.recommendation_stability:g}")
            return
        _check(self.margin >= 0, "gate margin must be >= 0")
        _check(0 < self.alpha < 0.5, "gate alpha must be in (0, 0.5)")
        if self.cap:
            self._check_cap()
            return
        _check(self.max is None, f"gate {self.metric}: `max:` is for caps ({', '.join(CAPS)}); "
               "a metric gate uses op and value")
        if self.baseline:
            mode = self.mode or "no_regression"
            _check(mode in BASELINE_MODES, f"gate {self.metric}: mode must be one of {', '.join(BASELINE_MODES)} "
                   f"(got {self.mode!r})")
            object.__setattr__(self, "mode", mode)
            if not self.name:
                what = "non-inferior to" if mode == "non_inferior" else "no regression vs"
                object.__setattr__(self, "name", f"{self.metric} {what} {self.baseline} (margin {self.margin:g})")
        _check(not self.mode or bool(self.baseline), f"gate {self.metric}: `mode:` is for baseline gates only")
        _check(self.op in (">=", ">", "<=", "<"), f"gate op must be one of >=, >, <=, < (got {self.op!r})")
        _check(self.on in ("value", "ci_low", "ci_high"), "gate 'on' must be value, ci_low or ci_high")
        _check(self.metric.count(".") in (1, 2), f"gate metric must be benchmark.metric[.split] (got {self.metric!r})")
        if not self.name:
            on = "" if self.on == "value" else f" on {self.on}"
            object.__setattr__(self, "name", f"{self.metric} {self.op} {self.value:g}{on}")

    def _check_cap(self) -> None:
        cap, target = self.cap, getattr(self, self.cap)
        _check(self.max is not None, f"gate {cap}: {target} needs `max:` (the cap)")
        _check(not self.baseline, f"gate {cap}: {target}: `baseline:` is for metric gates only")
        _check(not self.mode, f"gate {cap}: {target}: `mode:` is for baseline gates only")
        if cap == "cost":
            _check(target in COSTS, f"gate cost must be one of {', '.join(COSTS)} (got {target!r})")
            _check(self.on == "value", f"gate cost: {target} has no interval; drop `on: {self.on}`")
        _check(self.on in ("value", "ci_high"),
               f"gate {cap}: {target}: 'on' must be value or ci_high (got {self.on!r})")
        if not self.name:
            label = "generalisation gap" if cap == "generalisation_gap" else cap
            bound = "" if self.on == "value" else f" on {self.on}"
            object.__setattr__(self, "name", f"{label} {target}{bound} <= {self.max:g}")


@dataclass(frozen=True)
class UnitResources:
    """What one unit of work asks its executor for (Ray: the task's `num_cpus`, `num_gpus`); None: its default."""

    num_cpus: float | None = None
    num_gpus: float | None = None

    def __post_init__(self) -> None:
        for name in ("num_cpus", "num_gpus"):
            value = getattr(self, name)
            _check(value is None or value >= 0, f"{name} must be zero or more (got {value})")


@dataclass(frozen=True)
class ResourcesConfig:
    """Resources per kind of unit: `tune` (one fine-tune), `score` (a split, the bias pairs), `probe`."""

    tune: UnitResources = field(default_factory=UnitResources)
    score: UnitResources = field(default_factory=UnitResources)
    probe: UnitResources = field(default_factory=UnitResources)


@dataclass(frozen=True)
class ExecutorConfig:
    """Where the units of a bake-off run (docs/distributed.md). It never changes a result, so it is not part of
    the config hash: the same bake-off on `local` and on `ray` is the same bake-off.

    `address`: None starts a local Ray for the run (or joins RAY_ADDRESS, as `ray job submit` sets it); `auto` or
    `HOST:PORT` joins an existing cluster.
    `units`: the unit store shared by the driver and the workers (a path every node mounts); None keeps units on
    the driver, and records and files travel through Ray's object store. `max_retries`: how often Ray reruns a
    unit whose worker or node died."""

    kind: str = "local"
    address: str | None = None
    units: str | None = None
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    max_retries: int = 3

    def __post_init__(self) -> None:
        _check(self.max_retries >= 0, f"executor.max_retries must be zero or more (got {self.max_retries})")


TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")


@dataclass(frozen=True)
class TrackingConfig:
    """Where a finished bake-off is also logged (harness/storage/tracking.py). `mlflow`: an MLflow tracking URI
    backed by a database or a tracking server (`sqlite:///mlflow.db`, `http://host:5000`); None logs nothing. Like
    the executor it never changes a result, so it is not part of the config hash."""

    mlflow: str | None = None

    def __post_init__(self) -> None:
        if self.mlflow is not None:
            scheme = self.mlflow.partition(":")[0].split("+")[0]
            _check(":" in self.mlflow and scheme in TRACKING_SCHEMES,
                   f"tracking.mlflow must be a database or tracking-server URI ({', '.join(TRACKING_SCHEMES)}), "
                   f"e.g. sqlite:///mlflow.db (got {self.mlflow!r})")


@dataclass(frozen=True)
class BudgetConfig:
    """`budget: {units: N}`: adaptive seeds stop adding seeds before the run would train more than N fine-tunes."""

    units: int | None = None

    def __post_init__(self) -> None:
        _check(self.units is None or self.units >= 1, f"budget.units must be at least 1 (got {self.units})")


@dataclass(frozen=True)
class BakeoffConfig:
    name: str
    candidates: list[CandidateConfig]
    benchmarks: list[SuiteRef]
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    probes: list[SuiteRef] = field(default_factory=list)
    bias: list[SuiteRef] = field(default_factory=list)  # counterfactual suites, run through their benchmark's task
    gates: list[GateConfig] = field(default_factory=list)
    gate_correction: str = "holm"  # holm | bh | none, across each candidate's baseline gates (harness/gates/check.py)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    bootstrap_resamples: int = 1000
    budget: BudgetConfig = field(default_factory=BudgetConfig)  # with adaptive seeds: at most this many fine-tunes
    recommendation_tentative_below: float = 0.8  # a recommendation with less bootstrap agreement reads as tentative
    zero_shot: bool = False  # add a zero-shot reference row (`tuner: none`) for every candidate
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # where units run: not part of the hash
    tracking: TrackingConfig = field(default_factory=TrackingConfig)  # where runs are logged: not part of the hash
    only_candidates: list[str] = field(default_factory=list)  # run these candidates only, by name (--candidates)
    source: str = ""  # the file this config was read from; specs resolve relative to it

    def __post_init__(self) -> None:
        _check(bool(self.candidates), "config names no candidates")
        if self.zero_shot:  # idempotent, so a stored config (already expanded) reads back the same
            have = {c.name for c in self.candidates}
            extra = [dataclasses.replace(c, name=f"{c.name}-zero-shot", tuner="none", learning_rate=None)
                     for c in self.candidates if not c.zero_shot and f"{c.name}-zero-shot" not in have]
            object.__setattr__(self, "candidates", [*self.candidates, *extra])
        if self.only_candidates:
            self._keep_only(self.only_candidates)
        _check(bool(self.benchmarks), "config names no benchmarks")
        for where, refs in (("benchmarks", self.benchmarks), ("bias", self.bias)):
            _check(not any(r.lm_eval for r in refs), f"{where}: lm_eval entries are probes only for now (a task's "
                   "forgetting, scored before and after tuning); a tuned and scored lm-eval benchmark is not supported "
                   "yet")
        names = [c.name for c in self.candidates]
        dupes = sorted({n for n in names if names.count(n) > 1})
        _check(not dupes, f"duplicate candidate names: {', '.join(dupes)}")
        _check(self.bootstrap_resamples >= 100, "bootstrap_resamples must be at least 100")
        _check(0 < self.recommendation_tentative_below <= 1,
               f"recommendation_tentative_below must be in (0, 1] (got {self.recommendation_tentative_below})")
        if self.budget.units is not None:
            seeds = self.recipe.adaptive
            _check(seeds is not None, "budget.units needs adaptive seeds (recipe.seeds: {min: 2, max: 8}): with a "
                   "fixed seed count every fine-tune of the grid runs")
            first = seeds.min * sum(len(self.settings(c)) for c in self.candidates if not c.zero_shot) if seeds else 0
            _check(self.budget.units >= first, f"budget.units {self.budget.units} is below the first round's {first} "
                   f"fine-tunes (recipe.seeds.min {seeds.min if seeds else 0} x every candidate's settings)")
        _check(self.gate_correction in CORRECTIONS, f"gate_correction must be one of {', '.join(CORRECTIONS)} "
               f"(got {self.gate_correction!r})")

    def _keep_only(self, wanted: list[str]) -> None:
        """The candidates named in `only_candidates`, each with its zero-shot row; idempotent (a stored config, already
        filtered, reads back the same)."""
        known = [c.name for c in self.candidates if not c.zero_shot or c.name.removesuffix("-zero-shot") not in
                 {d.name for d in self.candidates if not d.zero_shot}]
        unknown = [n for n in wanted if n not in {c.name for c in self.candidates}]
        _check(not unknown, f"only_candidates (--candidates): unknown candidate{'s' * (len(unknown) > 1)} "
               f"{', '.join(unknown)}; known: {', '.join(known)}")
        keep = [c for c in self.candidates if c.name in wanted
                or (c.zero_shot and c.name.removesuffix("-zero-shot") in wanted)]
        object.__setattr__(self, "candidates", keep)

    def settings(self, candidate: CandidateConfig) -> list[tuple[float, int]]:
        """(learning rate, epochs) pairs to try for a candidate: the sweep grid, else its one setting."""
        lrs = self.sweep.learning_rate or [candidate.learning_rate if candidate.learning_rate is not None
                                           else self.recipe.learning_rate]
        return [(lr, e) for lr in lrs for e in (self.sweep.epochs or [self.recipe.epochs])]

    @property
    def base_dir(self) -> Path:
        return Path(self.source).resolve().parent if self.source else Path.cwd()

    def hash(self) -> str:
        payload = dataclasses.asdict(self)
        payload.pop("source")
        payload.pop("executor")  # where a bake-off runs does not change what it computes
        payload.pop("tracking")  # nor where it is logged
        for cand in payload["candidates"]:
            if cand["adapter"] is None:
                cand.pop("adapter")  # so configs written before the field existed keep their hash
        if not payload["only_candidates"]:
            payload.pop("only_candidates")  # so configs written before the field existed keep their hash
        if payload["budget"]["units"] is None:
            payload.pop("budget")  # so configs written before the field existed keep their hash
        if payload["recommendation_tentative_below"] == 0.8:
            payload.pop("recommendation_tentative_below")  # so configs written before the field keep their hash
        for gate in payload["gates"]:
            if not gate["mode"]:
                gate.pop("mode")  # likewise: a threshold or cap has no mode
        payload["recipe"] = self.recipe.key_fields()  # the device is where, not what (its precision is in unit keys)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> BakeoffConfig:
    """Read a bake-off YAML (the bundled demo when `path` is None), apply overrides, validate."""
    path = Path(path) if path else DEMO_CONFIG
    raw = read_yaml(path)
    for item in overrides or []:
        apply_override(raw, item)
    try:
        return build(BakeoffConfig, {**raw, "source": str(path)}, "")
    except ConfigError as err:
        raise ConfigError(err.message, path) from None


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError("file not found", path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError("not UTF-8 text", path, path.read_bytes()[: err.start].count(b"\n") + 1) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"invalid YAML: {problem}", path, line) from None
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping at the top level", path)
    return raw


SHORTHAND = {"candidates": "model", "benchmarks": "spec", "probes": "spec", "bias": "spec"}  # `- name` entries


def apply_override(raw: dict[str, Any], item: str) -> None:
    """`recipe.epochs=1` sets raw['recipe']['epochs'] = 1 (the value is parsed as YAML); a number indexes a list:
    `candidates.0.learning_rate=1e-4`, `benchmarks.1.max_test=50` (a `- support_intents` entry becomes its mapping)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override must look like key=value (got {item!r})")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {item!r}: invalid YAML value ({getattr(err, 'problem', None) or err})") from None
    *parents, leaf = key.split(".")
    node: Any = raw
    path: list[str] = []
    for depth, part in enumerate(parents):
        index = _slot(node, part, item, path)
        if isinstance(node, dict) and part not in node and (parents + [leaf])[depth + 1].isdigit():
            raise ConfigError(f"override {item!r}: '{'.'.join([*path, part])}' is not in the config; "
                              "there is no list to index")
        child = node[index] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(child, str) and isinstance(node, list) and path[-1] in SHORTHAND:
            child = node[index] = {SHORTHAND[path[-1]]: child}
        if not isinstance(child, (dict, list)):
            raise ConfigError(f"override {item!r}: '{'.'.join([*path, part])}' holds {child!r}, "
                              "not a mapping or a list")
        node, path = child, [*path, part]
    node[_slot(node, leaf, item, path)] = parsed


def _slot(node: dict[str, Any] | list[Any], part: str, item: str, path: list[str]) -> Any:
    """Where `part` points in `node`: a list index (checked against the list's length) or a mapping key."""
    where = ".".join(path) or "the config"
    if isinstance(node, list):
        if not part.isdigit():
            raise ConfigError(f"override {item!r}: '{where}' is a list; index it with a number (got {part!r})")
        if int(part) >= len(node):
            raise ConfigError(f"override {item!r}: index {part} is out of range ('{where}' has {len(node)} "
                              f"entr{'y' if len(node) == 1 else 'ies'}, 0..{len(node) - 1})" if node else
                              f"override {item!r}: index {part} is out of range ('{where}' is empty)")
        return int(part)
    if part.isdigit():
        raise ConfigError(f"override {item!r}: '{where}' is a mapping, not a list; it has no index {part}")
    return part


def build(cls: type, raw: Any, where: str) -> Any:  # noqa: C901
    """Construct dataclass `cls` from a raw mapping, rejecting unknown keys and wrong types."""
    label = where or "config"
    if isinstance(raw, str) and cls in (SuiteRef, CandidateConfig):
        raw = {"spec": raw} if cls is SuiteRef else {"model": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{label} must be a mapping, got {type(raw).__name__}")
    if cls is RecipeConfig:  # its tuner's options, written flat or in a section, into `options`
        raw = gather_options(raw, label)
    # YAML 1.1 reads an unquoted key `on` (a gate's `on: ci_low`) as the boolean true, and `off`, `yes`, `no` too
    raw = {("on" if k is True else "off" if k is False else str(k)): v for k, v in raw.items()}
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown key {'/'.join(unknown)!r} in {label}; "
                          f"known: {', '.join(sorted(known - {'source'}))}")
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [k for k in required if k not in raw]
    if missing:
        raise ConfigError(f"missing required key '{missing[0]}' in {label}")
    kwargs = {key: _coerce(hints[key], value, f"{where}.{key}" if where else key) for key, value in raw.items()}
    try:
        return cls(**kwargs)
    except ConfigError as err:  # say which list entry is wrong: `benchmarks[1]: max_train must be positive`
        if not where or err.message.startswith(where):
            raise
        raise ConfigError(f"{where}: {err.message}") from None


ON_OFF = ("recipe.bf16", "recipe.eval_metric")  # settings spelled auto | on | off


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(option, value, where)
            except ConfigError as err:
                if isinstance(value, dict) and dataclasses.is_dataclass(option):
                    raise  # a mapping meant this option: its own error names the key
                errors.append(err.message)
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where} has the wrong type ({type(value).__name__})")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list")
        (item,) = typing.get_args(hint)
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):  # a type hint is a class, never an instance
        return build(hint, value, where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # YAML 1.1 reads 5e-3 as a string
            return float(value)
        except ValueError:
            pass
    if hint is str and isinstance(value, bool) and where in ON_OFF:  # YAML 1.1 reads an unquoted on/off as a bool
        return "on" if value else "off"
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"{where} must be {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def gather_options(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """A `recipe:` mapping as written -> RecipeConfig's fields: the chosen tuner's options, written flat (`r: 8`),
    under `options:` or in its section (`lora: {r: 8}`), gathered into `options`. A section of another tuner is
    checked and left unused (a recipe can keep them for `recipe.tuner=...` overrides); a flat key that the chosen
    tuner does not read is an error naming the key and the tuner, a typo gets a did-you-mean."""
    tuners = load_all()
    name = _coerce(str, raw.get("tuner", "lora"), f"{where}.tuner")
    own = {f.name for f in dataclasses.fields(tuners.get(name).options)}
    shared = {f.name for f in dataclasses.fields(RecipeConfig)} - {"options"}
    gathered: dict[str, Any] = {}
    given: dict[str, str] = {}  # where each option was written
    for source in ("options", name):
        section = raw.get(source, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{where}.{source} must be a mapping of tuner {name}'s options, got "
                              f"{type(section).__name__}")
        _gather(gathered, given, section, f"{where}.{source}")
    for other, section in raw.items():
        if other in tuners and other != name:
            build(tuners.get(other).options, section, f"{where}.{other}")  # checked, unused
    for key, value in raw.items():
        if key in shared or key in tuners or key == "options":
            continue
        if key not in own:
            owners = [t for t, spec in tuners.items() if key in {f.name for f in dataclasses.fields(spec.options)}]
            if owners:
                raise ConfigError(f"{where}.{key}: tuner {name} does not read {key} (an option of "
                                  f"{', '.join(owners)}); remove it, or keep it in a `{owners[0]}:` section")
            raise ConfigError(f"unknown key '{key}' in {where}{did_you_mean(key, shared | own | set(tuners))} "
                              f"(tuner {name}'s own options: {', '.join(sorted(own)) or 'none'}; the shared ones: "
                              f"{', '.join(sorted(shared))})")
        _gather(gathered, given, {key: value}, where)
    return {**{k: v for k, v in raw.items() if k in shared}, "options": gathered}


def _gather(into: dict[str, Any], given: dict[str, str], section: dict[str, Any], where: str) -> None:
    for key, value in section.items():
        if key in into:
            raise ConfigError(f"{given[key]}.{key} is given twice (also as {where}.{key}); keep one")
        into[key], given[key] = value, where
