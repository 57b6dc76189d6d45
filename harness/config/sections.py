"""The smaller sections of a bake-off: its candidates, its suites (benchmarks, probes, bias), where its units run
(executor), where it is logged (tracking) and its budget."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from harness.config.reader import check


@dataclass(frozen=True)
class CandidateConfig:
    """One model in the bake-off: a bundled alias, a local folder, a GGUF file or a Hugging Face id; with `adapter:`
    (and `tuner: none`), a peft adapter folder on that base, scored as it is."""

    shorthand: ClassVar[str] = "model"  # a bare string in `candidates:` is the model
    model: str
    name: str = ""
    revision: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False  # accept .bin/.pt weights (read with torch.load(weights_only=True)), never by default
    learning_rate: float | None = None  # overrides recipe.learning_rate for this candidate only
    tuner: str = ""  # "" = the shared recipe's tuner; "none" = score the base model untuned (a zero-shot reference)
    adapter: str | None = None  # a peft adapter folder (safetensors) loaded on `model`, scored as it is

    def __post_init__(self) -> None:
        check(bool(self.model.strip()), "candidate.model must not be empty")
        check(self.tuner in ("", "none"), f"candidate {self.model}: tuner may only be 'none' (a zero-shot "
               f"reference row); every tuned candidate shares recipe.tuner (got {self.tuner!r})")
        check(self.adapter is None or (bool(self.adapter.strip()) and self.tuner == "none"),
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
    """A benchmark or probe suite: a bundled name or a path to its YAML spec, with optional row caps; or a probe or
    benchmark read by lm-eval (`lm_eval: TASK`, `include_path: DIR`, `limit: N`; harness/data/lmeval.py)."""

    shorthand: ClassVar[str] = "spec"  # a bare string in `benchmarks:`, `probes:` or `bias:` is the spec
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
            check(value is None or value > 0, f"{cap} must be positive (got {value})")
        check(bool(self.spec) != bool(self.lm_eval), "name either spec (a suite) or lm_eval (an lm-eval task)"
               if self.lm_eval else "missing required key 'spec'")
        if not self.lm_eval:
            check(not self.include_path and self.limit is None, "include_path and limit belong to lm_eval entries")

@dataclass(frozen=True)
class UnitResources:
    """What one unit of work asks its executor for (Ray: the task's `num_cpus`, `num_gpus`); None: its default."""

    num_cpus: float | None = None
    num_gpus: float | None = None

    def __post_init__(self) -> None:
        for name in ("num_cpus", "num_gpus"):
            value = getattr(self, name)
            check(value is None or value >= 0, f"{name} must be zero or more (got {value})")


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
        check(self.max_retries >= 0, f"executor.max_retries must be zero or more (got {self.max_retries})")


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
            check(":" in self.mlflow and scheme in TRACKING_SCHEMES,
                   f"tracking.mlflow must be a database or tracking-server URI ({', '.join(TRACKING_SCHEMES)}), "
                   f"e.g. sqlite:///mlflow.db (got {self.mlflow!r})")


@dataclass(frozen=True)
class BudgetConfig:
    """`budget: {units: N}`: adaptive seeds stop adding seeds before the run would train more than N fine-tunes.
    `budget: {device_hours: H}`: or before it would spend more than H hours of the executor's device, counted from
    every unit's measured wall time on its device (GPU-hours on CUDA; CPU wall-hours without an accelerator) and
    the next round's units estimated at the mean device time per fine-tune so far (harness/results/rounds.py)."""

    units: int | None = None
    device_hours: float | None = None

    def __post_init__(self) -> None:
        check(self.units is None or self.units >= 1, f"budget.units must be at least 1 (got {self.units})")
        check(self.device_hours is None or self.device_hours > 0,
              f"budget.device_hours must be above 0 (got {self.device_hours})")
