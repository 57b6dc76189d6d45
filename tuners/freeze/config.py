"""The freeze tuner's own option: `recipe: {tuner: freeze, freeze_keep_last: 2}`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError


@dataclass(frozen=True)
class FreezeOptions:
    freeze_keep_last: int = 2  # the last k transformer blocks train (with the final norm and any head)

    def __post_init__(self) -> None:
        if self.freeze_keep_last < 0:
            raise ConfigError(f"recipe.freeze_keep_last must be >= 0 (got {self.freeze_keep_last})")

    def key_fields(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
