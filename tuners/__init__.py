"""Tuning methods, one folder each (peft's src/peft/tuners/<method>/): config.py holds the method's own options, a
frozen dataclass validated on construction; tune.py turns a loaded model into one whose trainable parameters are
exactly what the method trains; __init__.py ends in one register_tuner call. The shared loop in
harness/training/loop.py does the rest.

A recipe (harness/config/recipe.py RecipeConfig) holds the options of its tuner only, and a tune unit's key hashes only
those (`key_fields`): changing LoRA's `r` never changes a full fine-tune's key. This package imports nothing of
the harness but its errors and its registry, so the config reads the tuners' options. TUNERS names every folder
lazily (harness/registry.py): a tuner's folder is imported when its entry is first read, and imports no torch or
peft until a model is prepared."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.registry import Registry


class Recipe(Protocol):
    """What a tuner reads of the recipe (harness/config/recipe.py RecipeConfig): its own options, and the seed."""

    @property
    def options(self) -> Any: ...

    @property
    def seed(self) -> int: ...


@dataclass(frozen=True)
class NoOptions:
    """The options of a tuner that has none of its own (full fine-tuning)."""

    def key_fields(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class Tuner:
    name: str
    prepare: Callable[[Any, Any, str], Any]  # (model, recipe, kind "causal"|"encoder") -> model
    description: str
    # extra `from_pretrained` arguments for a placement (QLoRA: the 4-bit quantization config and device map)
    load_options: Callable[[Any], dict[str, Any]] | None = None
    # raises ConfigError where this machine cannot run it (QLoRA off CUDA or without bitsandbytes)
    check: Callable[[Any], None] | None = None
    # trains added weights and leaves the loaded base frozen: on a GPU the base loads in half precision
    frozen_base: bool = False
    # its own options (tuners/<name>/config.py): a frozen dataclass with `key_fields()`, what its unit keys hash
    options: type = NoOptions


TUNERS: Registry[Tuner] = Registry("tuner")


def register_tuner(name: str, prepare: Callable[[Any, Any, str], Any], description: str,
                   load_options: Callable[[Any], dict[str, Any]] | None = None,
                   check: Callable[[Any], None] | None = None, frozen_base: bool = False,
                   options: type = NoOptions) -> None:
    TUNERS.add(name, Tuner(name, prepare, description, load_options, check, frozen_base, options))


for _folder in sorted(Path(__file__).parent.glob("*/__init__.py")):  # a tuner is its folder: named lazily, so
    TUNERS.register(_folder.parent.name, lazy=f"tuners.{_folder.parent.name}")  # checking a name imports no torch


def load_all() -> Registry[Tuner]:
    """The tuner registry (each tuner's folder is imported when its entry is first read)."""
    return TUNERS
