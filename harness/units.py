"""The units of work of one candidate on one benchmark, each computed once and kept (harness/cache.py).

Units: probe the base model, run the bias pairs through the base model, tune one setting, score one split,
probe the tuned model, run the bias pairs through the tuned model. The model loads only when some unit
must actually be computed, so re-running a finished bake-off loads nothing. Every tuned setting is kept as
its trainable tensors: scoring reattaches them to one loaded base (prepare the tuner with the same seed,
then load the tensors), which gives the same weights as the model that was just trained.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.cache import UnitCache, unit_key
from harness.config import BakeoffConfig
from harness.data import BenchmarkSpec, Split
from harness.device import autocast, peak_rss_mb, use_bf16
from harness.models import ModelHandle, load_model, load_tokenizer


def spec_id(spec: BenchmarkSpec) -> str:
    """What in a spec determines results: not where its files are (their hashes are keyed separately)."""
    fields = dataclasses.asdict(spec)
    for where in ("path", "splits", "description"):
        fields.pop(where)
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


class Bench:
    """A candidate's model for one benchmark, loaded lazily: base first, then tuned with a kept setting."""

    def __init__(self, handle: ModelHandle, spec: BenchmarkSpec, cfg: BakeoffConfig, cache: UnitCache):
        self.handle, self.spec, self.cfg, self.cache = handle, spec, cfg, cache
        self.model: Any = None
        self._tokenizer: Any = None
        self.prepared = False  # the tuner has wrapped the model
        self.attached: str | None = None  # key of the tuned setting whose tensors the model holds
        self.kept: dict[str, dict[str, Any]] = {}  # trainable tensors of settings tuned in this process
        self.peaks: list[float] = []  # peak memory (MB) recorded by each unit, computed here or kept

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.handle)
        return self._tokenizer

    def base(self) -> Any:
        if self.model is None or self.prepared:
            import torch

            self.model = None
            torch.manual_seed(self.cfg.recipe.seed)  # a fresh classifier head is initialised at load time
            encoder_head = self.handle.kind == "encoder" and self.spec.task == "classification"
            head = len(self.spec.labels) if encoder_head else None
            self.model, self.prepared, self.attached = load_model(self.handle, head_labels=head), False, None
        return self.model

    def prepare(self) -> Any:
        """The base wrapped by the recipe's tuner, with its seeded initial state (adapters, new head)."""
        from tuners import TUNERS

        if not self.prepared:
            model = self.base()
            self.model = TUNERS.get(self.cfg.recipe.tuner).prepare(model, self.cfg.recipe, self.handle.kind)
            self.prepared = True
        return self.model

    def trainable_state(self, copy: bool = True) -> dict[str, Any]:
        """The trainable tensors by name; `copy=False` gives views that change as the model trains on."""
        return {n: (p.detach().clone() if copy else p.detach()).contiguous()
                for n, p in self.model.named_parameters() if p.requires_grad}

    def load_state(self, state: dict[str, Any]) -> None:
        expected = {n for n, p in self.model.named_parameters() if p.requires_grad}
        if set(state) != expected:
            from harness.errors import RunFailure

            raise RunFailure(f"kept tensors do not fit the prepared model ({len(set(state) ^ expected)} names differ); "
                             "rerun with --force")
        self.model.load_state_dict(state, strict=False)
        self.model.eval()

    def tuned(self, key: str) -> Any:
        """The model holding the tuned setting `key` (from memory if tuned here, else from the cache)."""
        if self.attached != key:
            self.prepare()
            self.load_state(self.kept[key] if key in self.kept else self.cache.tensors(key))
            self.attached = key
        return self.model

    def memo(self, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """A scoring unit: computed (under the recipe's precision) only when it is not kept yet."""
        def run() -> dict[str, Any]:
            with autocast(use_bf16(self.cfg.recipe.bf16)):
                out = compute()
            return out | {"peak_rss_mb": peak_rss_mb()}

        out = self.cache.memo(key, run)
        self.peaks.append(out["peak_rss_mb"])
        return out

    def release(self) -> None:
        self.model, self._tokenizer, self.kept = None, None, {}

    def drop_model(self) -> None:
        """Free the model between one seed's units and the next; tensors tuned here stay (--no-cache keeps them
        in memory only) and the model reloads when a unit needs it."""
        self.model, self.prepared, self.attached = None, False, None


def keep_setting(bench: Bench, key: str, payload: dict[str, Any]) -> None:
    """Store a just-tuned setting: its trainable tensors, and a standard peft adapter folder when peft made it.
    The tensors stay in memory only when nothing is written to disk (--no-cache): with a cache, reattaching the
    setting reads them back, so a full fine-tune does not hold a second copy of the model."""
    in_memory = bench.cache.root is None
    state = bench.trainable_state(copy=in_memory)
    bench.attached = key
    if in_memory:
        bench.kept[key] = state

    def write(folder: Path) -> None:
        from safetensors.torch import save_file

        save_file(state, str(folder / "trainable.safetensors"))
        # loadable elsewhere with PeftModel.from_pretrained(base, folder/adapter)
        if hasattr(bench.model, "peft_config"):
            bench.model.save_pretrained(str(folder / "adapter"))

    bench.cache.put(key, payload, write)


def tune_key(bench: Bench, splits: dict[str, Split], learning_rate: float, epochs: int) -> str:
    recipe = dataclasses.replace(bench.cfg.recipe, learning_rate=learning_rate, epochs=epochs)
    return unit_key("tune", weights=bench.handle.weights_hash, kind=bench.handle.kind, spec=spec_id(bench.spec),
                    recipe=dataclasses.asdict(recipe), train=splits["train"].sha256,
                    validation=splits["validation"].sha256 if "validation" in splits else None)


def zero_shot_key(bench: Bench) -> str:
    return unit_key("zero-shot", weights=bench.handle.weights_hash, kind=bench.handle.kind)


def scoring_key(unit: str, base: str, bench: Bench, bf16: bool, **inputs: Any) -> str:
    """Keys of units that score a model (`base` is the weights hash or the tuned setting's key)."""
    return unit_key(unit, model=base, spec=spec_id(bench.spec), bf16=bf16, max_length=bench.cfg.recipe.max_length,
                    resamples=bench.cfg.bootstrap_resamples, seed=bench.cfg.recipe.seed, **inputs)
