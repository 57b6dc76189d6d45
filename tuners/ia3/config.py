"""(IA)^3's own options: `recipe: {tuner: ia3, target_modules: [...]}`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IA3Options:
    target_modules: str | list[str] = "auto"  # auto (per architecture, tuners/ia3/tune.py) | all-linear | a list

    def key_fields(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
