"""Unit keys: a hash of everything that determines a unit's result (harness/storage/units.py), so a kept unit is reused
exactly when it would compute the same thing. These are the keys sftbench has used since CACHE_VERSION 3; the
plan of units (harness/execution/plan.py) did not change them, and a CPU unit's key is the same as before devices
existed: off a CPU the placement adds its device kind and precision."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from harness.config import RecipeConfig
from harness.data.specs import BenchmarkSpec, Split
from harness.models.device import Placement
from harness.models.loading import ModelHandle
from harness.storage.units import unit_key

CPU = Placement()


def spec_id(spec: BenchmarkSpec) -> str:
    """What in a spec determines results: not where its files are (their hashes are keyed separately)."""
    fields = spec.key_fields()
    for where in ("path", "splits", "description"):
        fields.pop(where)
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def tune_key(handle: ModelHandle, spec: BenchmarkSpec, recipe: RecipeConfig, splits: dict[str, Split],
             learning_rate: float, epochs: int, placement: Placement = CPU) -> str:
    setting = dataclasses.replace(recipe, learning_rate=learning_rate, epochs=epochs)
    return unit_key("tune", weights=handle.weights_hash, kind=handle.kind, spec=spec_id(spec),
                    recipe=setting.key_fields(), train=splits["train"].sha256,
                    validation=splits["validation"].sha256 if "validation" in splits else None,
                    **placement.key_fields())


def zero_shot_key(handle: ModelHandle) -> str:
    return unit_key("zero-shot", weights=handle.weights_hash, kind=handle.kind)


def scoring_key(unit: str, model: str, spec: BenchmarkSpec, recipe: RecipeConfig, resamples: int,
                placement: Placement, **inputs: Any) -> str:
    """Keys of units that score a model (`model` is the weights hash or the tuned setting's key)."""
    return unit_key(unit, model=model, spec=spec_id(spec), bf16=placement.bf16, max_length=recipe.max_length,
                    resamples=resamples, seed=recipe.seed, **inputs, **placement.key_fields())

