"""The whole bake-off: BakeoffConfig (every section, the checks across sections, the config hash) and load_config."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.config.gates import CORRECTIONS, GateConfig
from harness.config.reader import apply_override, build, check, read_yaml
from harness.config.recipe import RecipeConfig, SweepConfig
from harness.config.sections import BudgetConfig, CandidateConfig, ExecutorConfig, SuiteRef, TrackingConfig
from harness.errors import ConfigError

BUNDLED_DIR = Path(__file__).resolve().parent.parent.parent / "benchmarks"
DEMO_CONFIG = BUNDLED_DIR / "demo.yaml"


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
        check(bool(self.candidates), "config names no candidates")
        if self.zero_shot:  # idempotent, so a stored config (already expanded) reads back the same
            have = {c.name for c in self.candidates}
            extra = [dataclasses.replace(c, name=f"{c.name}-zero-shot", tuner="none", learning_rate=None)
                     for c in self.candidates if not c.zero_shot and f"{c.name}-zero-shot" not in have]
            object.__setattr__(self, "candidates", [*self.candidates, *extra])
        if self.only_candidates:
            self._keep_only(self.only_candidates)
        check(bool(self.benchmarks), "config names no benchmarks")
        check(not any(r.lm_eval for r in self.bias), "bias: lm_eval entries are probes or benchmarks, not bias "
              "suites (a bias suite is a spec of counterfactual pairs)")
        names = [c.name for c in self.candidates]
        dupes = sorted({n for n in names if names.count(n) > 1})
        check(not dupes, f"duplicate candidate names: {', '.join(dupes)}")
        check(self.bootstrap_resamples >= 100, "bootstrap_resamples must be at least 100")
        check(0 < self.recommendation_tentative_below <= 1,
               f"recommendation_tentative_below must be in (0, 1] (got {self.recommendation_tentative_below})")
        for key in ("units", "device_hours"):
            check(getattr(self.budget, key) is None or self.recipe.adaptive is not None, f"budget.{key} needs "
                  "adaptive seeds (recipe.seeds: {min: 2, max: 8}): with a fixed seed count every fine-tune of the "
                  "grid runs")
        if self.budget.units is not None:
            seeds = self.recipe.adaptive
            first = seeds.min * sum(len(self.settings(c)) for c in self.candidates if not c.zero_shot) if seeds else 0
            check(self.budget.units >= first, f"budget.units {self.budget.units} is below the first round's {first} "
                   f"fine-tunes (recipe.seeds.min {seeds.min if seeds else 0} x every candidate's settings)")
        check(self.gate_correction in CORRECTIONS, f"gate_correction must be one of {', '.join(CORRECTIONS)} "
               f"(got {self.gate_correction!r})")

    def _keep_only(self, wanted: list[str]) -> None:
        """The candidates named in `only_candidates`, each with its zero-shot row; idempotent (a stored config, already
        filtered, reads back the same)."""
        known = [c.name for c in self.candidates if not c.zero_shot or c.name.removesuffix("-zero-shot") not in
                 {d.name for d in self.candidates if not d.zero_shot}]
        unknown = [n for n in wanted if n not in {c.name for c in self.candidates}]
        check(not unknown, f"only_candidates (--candidates): unknown candidate{'s' * (len(unknown) > 1)} "
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
        if payload["budget"]["device_hours"] is None:
            payload["budget"].pop("device_hours")  # so configs written before the field existed keep their hash
        if payload["budget"] == {"units": None}:
            payload.pop("budget")  # so configs written before the field existed keep their hash
        if payload["recommendation_tentative_below"] == 0.8:
            payload.pop("recommendation_tentative_below")  # so configs written before the field keep their hash
        for gate in payload["gates"]:
            if not gate["mode"]:
                gate.pop("mode")  # likewise: a threshold or cap has no mode
        payload["recipe"] = self.recipe.key_fields()  # the device is where, not what (its precision is in unit keys)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

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
