"""The recipe: the one training recipe every candidate shares (RecipeConfig, with its tuner's own options read by
gather_options), adaptive seeds, and the sweep grid."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from harness.config.reader import build, check, coerce
from harness.errors import ConfigError, did_you_mean
from tuners import load_all


@dataclass(frozen=True)
class AdaptiveSeeds:
    """`recipe.seeds: {min: 2, max: 8, stability: 0.95}`: every candidate and sweep setting starts with `min` seeds
    and gets more only while its verdict is open (harness/gates/adaptive.py), up to `max`; the run stops adding seeds
    once the recommendation's stability reaches `stability`."""

    min: int = 2
    max: int = 8
    stability: float = 0.95

    def __post_init__(self) -> None:
        check(self.min >= 2, f"recipe.seeds.min must be at least 2: the rule needs a seed spread (got {self.min})")
        check(self.max >= self.min, f"recipe.seeds.max must be at least recipe.seeds.min ({self.min}; got {self.max})")
        check(0 < self.stability < 1, f"recipe.seeds.stability must be in (0, 1) (got {self.stability})")


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
        check(isinstance(self.options, tuner.options), f"recipe.options are {type(self.options).__name__}, not "
               f"tuner {self.tuner}'s {tuner.options.__name__} (replace the tuner with options=None for its defaults)")
        check(self.learning_rate >= 0, "recipe.learning_rate must be >= 0")
        check(self.epochs >= 0, "recipe.epochs must be >= 0")
        check(self.batch_size > 0, "recipe.batch_size must be positive")
        check(self.max_length >= 8, "recipe.max_length must be at least 8")
        check(0.0 <= self.warmup_ratio < 1.0, "recipe.warmup_ratio must be in [0, 1)")
        check(self.bf16 in ("auto", "on", "off"), "recipe.bf16 must be auto, on or off")
        if isinstance(self.seeds, AdaptiveSeeds):
            pass
        elif isinstance(self.seeds, list):
            check(bool(self.seeds) and len(set(self.seeds)) == len(self.seeds),
                   f"recipe.seeds must be a count or a non-empty list of distinct seeds (got {self.seeds})")
        else:
            check(self.seeds >= 1, f"recipe.seeds must be at least 1 (got {self.seeds})")
        check(self.eval_every >= 0, "recipe.eval_every must be >= 0 (0 = once per epoch)")
        check(self.patience >= 0, "recipe.patience must be >= 0 (0 = no early stopping)")
        check(self.eval_metric in ("auto", "on", "off"), f"recipe.eval_metric must be auto, on or off "
               f"(got {self.eval_metric!r})")
        check(self.monitor in ("loss", "metric"), f"recipe.monitor must be loss or metric (got {self.monitor!r})")
        check(not (self.monitor == "metric" and self.eval_metric == "off"),
               "recipe.monitor: metric needs the metric evaluated: set recipe.eval_metric to auto or on, not off")
        check(self.grad_accum >= 1, f"recipe.grad_accum must be at least 1 (got {self.grad_accum})")
        kind = self.device.split(":")[0]
        check(kind in ("auto", "cpu", "cuda", "mps") and (kind == "cuda" or ":" not in self.device),
               f"recipe.device must be auto, cpu, cuda, cuda:N or mps (got {self.device!r})")

    @classmethod
    def gather(cls, raw: dict[str, Any], where: str) -> dict[str, Any]:
        """What `build` reads a `recipe:` mapping into (gather_options)."""
        return gather_options(raw, where)

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
            check(values != [], f"sweep.{knob} is an empty list: give the values to try, or leave it out")
            object.__setattr__(self, knob, values or [])
        check(all(lr >= 0 for lr in self.learning_rate or []), "sweep.learning_rate values must be >= 0")
        check(all(e >= 0 for e in self.epochs or []), "sweep.epochs values must be >= 0")


def gather_options(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """A `recipe:` mapping as written -> RecipeConfig's fields: the chosen tuner's options, written flat (`r: 8`),
    under `options:` or in its section (`lora: {r: 8}`), gathered into `options`. A section of another tuner is
    checked and left unused (a recipe can keep them for `recipe.tuner=...` overrides); a flat key that the chosen
    tuner does not read is an error naming the key and the tuner, a typo gets a did-you-mean."""
    tuners = load_all()
    name = coerce(str, raw.get("tuner", "lora"), f"{where}.tuner")
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
