"""The bake-off config: frozen dataclasses loaded from YAML and validated on construction.

YAML holds strings and numbers; all logic lives in Python. `key=value` overrides from the command line are applied to
the raw mapping before validation (`recipe.epochs=1`, `name=nightly`). One module per part, importing downward:
reader (the YAML file, overrides, `build`), recipe (the shared recipe, its tuner's options, seeds, the sweep), gates,
sections (candidates, suites, executor, tracking, budget), bakeoff (the whole config, its hash, load_config). Every
name is imported from here: `from harness.config import load_config`.
"""
from __future__ import annotations

from harness.config.bakeoff import BUNDLED_DIR, DEMO_CONFIG, BakeoffConfig, load_config
from harness.config.gates import BASELINE_MODES, CAPS, CORRECTIONS, COSTS, GateConfig
from harness.config.reader import SHORTHAND, apply_override, build, read_yaml
from harness.config.recipe import AdaptiveSeeds, RecipeConfig, SweepConfig, gather_options
from harness.config.sections import (
    TRACKING_SCHEMES,
    BudgetConfig,
    CandidateConfig,
    ExecutorConfig,
    ResourcesConfig,
    SuiteRef,
    TrackingConfig,
    UnitResources,
)

__all__ = [
    "BASELINE_MODES", "BUNDLED_DIR", "CAPS", "CORRECTIONS", "COSTS", "DEMO_CONFIG", "SHORTHAND", "TRACKING_SCHEMES",
    "AdaptiveSeeds", "BakeoffConfig", "BudgetConfig", "CandidateConfig", "ExecutorConfig", "GateConfig",
    "RecipeConfig", "ResourcesConfig", "SuiteRef", "SweepConfig", "TrackingConfig", "UnitResources",
    "apply_override", "build", "gather_options", "load_config", "read_yaml",
]
