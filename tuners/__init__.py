"""Tuning methods, one folder each. A tuner turns a loaded model into one whose trainable parameters
are exactly what the method trains; the shared loop in harness/training/loop.py does the rest.

Each folder's `__init__.py` ends in its one `register_tuner` call; TUNERS names every folder lazily
(harness/registry.py), so a config's `recipe.tuner` is checked without importing peft or torch."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import RecipeConfig
from harness.registry import Registry


@dataclass(frozen=True)
class Tuner:
    name: str
    prepare: Callable[[Any, RecipeConfig, str], Any]  # (model, recipe, kind "causal"|"encoder") -> model
    description: str
    # extra `from_pretrained` arguments for a placement (QLoRA: the 4-bit quantization config and device map)
    load_options: Callable[[Any], dict[str, Any]] | None = None
    # raises ConfigError where this machine cannot run it (QLoRA off CUDA or without bitsandbytes)
    check: Callable[[Any], None] | None = None
    # trains added weights and leaves the loaded base frozen: on a GPU the base loads in half precision
    frozen_base: bool = False


TUNERS: Registry[Tuner] = Registry("tuner")


def register_tuner(name: str, prepare: Callable[[Any, RecipeConfig, str], Any], description: str,
                   load_options: Callable[[Any], dict[str, Any]] | None = None,
                   check: Callable[[Any], None] | None = None, frozen_base: bool = False) -> None:
    TUNERS.add(name, Tuner(name, prepare, description, load_options, check, frozen_base))


for _folder in sorted(Path(__file__).parent.glob("*/__init__.py")):  # a tuner is its folder: named lazily, so
    TUNERS.register(_folder.parent.name, lazy=f"tuners.{_folder.parent.name}")  # checking a name imports no torch


def load_all() -> Registry[Tuner]:
    """The tuner registry (each tuner's folder is imported when its entry is first read)."""
    return TUNERS
