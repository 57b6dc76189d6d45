"""LoRA's own options (peft's LoraConfig keeps them with the method too): `recipe: {tuner: lora, r: 8, ...}`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError


@dataclass(frozen=True)
class LoraOptions:
    r: int = 8  # the rank of each adapter
    alpha: int = 16  # peft's lora_alpha: the update is scaled by alpha / r
    dropout: float = 0.05  # on the adapter's input
    target_modules: str | list[str] = "auto"  # auto (per architecture, tuners/lora/tune.py) | all-linear | a list

    def __post_init__(self) -> None:
        if self.r <= 0:
            raise ConfigError(f"recipe.r must be positive (got {self.r})")
        if self.alpha <= 0:
            raise ConfigError(f"recipe.alpha must be positive (got {self.alpha})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"recipe.dropout must be in [0, 1) (got {self.dropout})")

    def key_fields(self) -> dict[str, Any]:
        """LoRA's part of a tune unit's key. `freeze_keep_last: 2` is the freeze tuner's option, which every unit key
        held (at its default, 2) while the recipe was one flat list for all tuners: LoRA's keys keep it, so that
        they stay those of CACHE_VERSION 3 and the LoRA units kept by earlier runs are reused."""
        return {**dataclasses.asdict(self), "freeze_keep_last": 2}

