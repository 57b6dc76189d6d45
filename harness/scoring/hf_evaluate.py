"""Hugging Face `evaluate` modules as metrics: a benchmark spec's `metrics: [{evaluate: PATH, higher_is_better: true}]`.

PATH is a module script (or its folder) relative to the spec, loaded offline by `evaluate.load`; a name that is not a
path (`evaluate: exact_match`) is resolved by evaluate's loader from the Hugging Face hub, so only when online or
cached. The entry declares what the built-ins declare where they are registered (harness/scoring/metrics.py):
`higher_is_better` (required: evaluate modules do not say) and `scale` (the top of its range: 1, the default, for a
fraction, shown in percent like accuracy; any other, e.g. 100 for a 0-100 score like sacrebleu's, shown as it is,
like BLEU, in every report, through results.json `metric_scales`; it sets "did it learn"'s margin, 0.02 x scale, and
bounds seed-aware intervals), and optionally `name` (how gates and reports call it; the module's own name by default),
`key` (which entry of the module's output is the value; the module's name, or the
only entry) and `interval`:
- `bootstrap` (the default): the module recomputed on seeded resamples of the items (`bootstrap_resamples` calls);
- `per_item`: the metric is a mean of per-item scores (checked: the mean of the items' own values must equal the
  corpus value), so each item is scored alone and the interval is Wilson's (0/1 scores) or a bootstrap of the mean;
- `none`: the value only (a metric too slow or too stateful to resample); its interval is NaN, and reports say
  "point only".
Per-item values (each item scored alone) are kept for `per_item` and `bootstrap`, for paired comparisons.

A declaration registers its metric wherever it is created or unpickled (a Ray worker receives the specs pickled),
so every process that reads the spec can look the metric up by name.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError, RunFailure
from harness.results.model import MetricScore

INTERVALS = ("bootstrap", "per_item", "none")
KEYS = {"evaluate", "higher_is_better", "scale", "name", "key", "interval"}
POINT_ONLY = "none (point only: interval: none)"


@dataclass(frozen=True)
class EvaluateMetric:
    """A registered evaluate module: where it is, and what the spec declares about it."""

    module: str  # a resolved path, or a name evaluate's loader looks up on the hub
    name: str
    higher_is_better: bool
    key: str = ""
    interval: str = "bootstrap"
    scale: float = 1.0
    sha256: str = ""  # of the module's script, so a changed module changes the unit keys (empty: a hub name)

    def __post_init__(self) -> None:
        _register(self)

    def __setstate__(self, state: dict[str, Any]) -> None:  # unpickled in another process: registered there too
        self.__dict__.update(state)
        _register(self)


_DECLARED: dict[str, EvaluateMetric] = {}
_LOADED: dict[str, Any] = {}


def parse_entry(raw: dict[str, Any], spec_dir: Path) -> EvaluateMetric:
    """A `metrics:` entry `{evaluate: ..., higher_is_better: ...}` -> its registered declaration."""
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise ConfigError(f"metrics: unknown key '{unknown[0]}' in an evaluate entry; known: {', '.join(sorted(KEYS))}")
    ref = raw["evaluate"]
    if not isinstance(ref, str) or not ref:
        raise ConfigError("metrics: evaluate must name a module (a path to its script or folder, or a hub name)")
    if not isinstance(raw.get("higher_is_better"), bool):
        raise ConfigError(f"metrics: evaluate '{ref}' needs higher_is_better: true or false (its direction; "
                          "evaluate modules do not declare one)")
    interval = raw.get("interval", "bootstrap")
    if interval not in INTERVALS:
        raise ConfigError(f"metrics: evaluate '{ref}': interval must be one of {', '.join(INTERVALS)} "
                          f"(got {interval!r})")
    scale = raw.get("scale", 1)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ConfigError(f"metrics: evaluate '{ref}': scale must be a positive number, the top of the metric's "
                          f"range: 1 for a fraction (shown in percent), 100 for a 0-100 score (got {scale!r})")
    path = (spec_dir / ref).resolve()
    module = str(path) if path.exists() else ref
    if not path.exists() and ("/" in ref or ref.endswith(".py")):
        raise ConfigError(f"metrics: evaluate module {path} not found")
    name = str(raw.get("name") or (path.stem if path.is_file() else path.name if path.exists() else ref))
    script = path if path.is_file() else path / f"{path.name}.py"
    digest = hashlib.sha256(script.read_bytes()).hexdigest() if script.is_file() else ""
    return EvaluateMetric(module, name, raw["higher_is_better"], str(raw.get("key", "")), interval, float(scale),
                          digest)


def _register(m: EvaluateMetric) -> None:
    from harness.scoring.metrics import METRICS, Metric

    if _DECLARED.get(m.name) == m:
        return
    if m.name in METRICS:
        raise ConfigError(f"metrics: evaluate '{m.module}' would be called '{m.name}', which is already a metric; "
                          "give it another with name:")
    how = {"bootstrap": "seeded bootstrap interval over items", "per_item": "a mean of per-item scores",
           "none": "point only, no interval"}[m.interval]
    METRICS.add(m.name, Metric(m.name, m.higher_is_better, lambda p, r, resamples, seed: compute(m, p, r, resamples,
                                                                                                 seed),
                               f"evaluate module {m.module} ({how})", m.scale))
    _DECLARED[m.name] = m


def display_scales(metrics: Sequence[str]) -> dict[str, float]:
    """The factor the reports show each declared metric among `metrics` with: 100 (in percent) for a fraction
    (scale 1), 1 (as it is) for any other scale: a 0-100 score, a count."""
    return {name: 100.0 if _DECLARED[name].scale == 1 else 1.0 for name in metrics if name in _DECLARED}


def load_module(m: EvaluateMetric) -> Any:
    if m.module not in _LOADED:
        try:
            import evaluate
        except ImportError:
            raise ConfigError(f"metric '{m.name}' needs evaluate: pip install 'sftbench[evaluate]'") from None
        try:
            _LOADED[m.module] = evaluate.load(m.module)
        except Exception as err:  # evaluate raises FileNotFoundError, ConnectionError, ImportError...
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"metric '{m.name}': evaluate cannot load {m.module}: {first[:300]}") from None
    return _LOADED[m.module]


def module_value(m: EvaluateMetric, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """The module's own output for these items (one reference per item is passed as a string, several as a list)."""
    single = all(len(r) == 1 for r in references)
    out = load_module(m).compute(predictions=list(predictions),
                                 references=[r[0] for r in references] if single else [list(r) for r in references])
    key = m.key or (m.name if m.name in out else next(iter(out)) if len(out) == 1 else "")
    if key not in out:
        raise RunFailure(f"metric '{m.name}': the module returned {', '.join(out)}; name the value with key:")
    return float(out[key])


def compute(m: EvaluateMetric, preds: Sequence[str], refs: Sequence[Sequence[str]], resamples: int,
            seed: int) -> MetricScore:
    from harness.statistics.intervals import bootstrap_ci, mean_ci, wilson

    n = len(preds)
    if n == 0:
        return MetricScore(float("nan"), float("nan"), float("nan"), 0, m.interval)
    value = module_value(m, preds, refs)
    if m.interval == "none":
        return MetricScore(value, float("nan"), float("nan"), n, POINT_ONLY)
    per_item = [module_value(m, [p], [r]) for p, r in zip(preds, refs)]
    if m.interval == "per_item":
        if not np.isclose(np.mean(per_item), value, rtol=1e-9, atol=1e-12):
            raise RunFailure(f"metric '{m.name}' is not a mean of per-item scores (items' mean {np.mean(per_item)!r}, "
                             f"module {value!r}): declare interval: bootstrap")
        if set(per_item) <= {0.0, m.scale}:  # right or wrong per item, on the metric's own scale
            low, high = wilson(sum(per_item) / m.scale, n)
            return MetricScore(value, low * m.scale, high * m.scale, n, "wilson", per_item=per_item)
        low, high = mean_ci(per_item, resamples, seed)
        return MetricScore(value, low, high, n, f"bootstrap(resamples={resamples},seed={seed})", per_item=per_item)
    p, r = list(preds), list(refs)
    low, high = bootstrap_ci(lambda idx: module_value(m, [p[i] for i in idx], [r[i] for i in idx]), n, resamples, seed)
    return MetricScore(value, low, high, n, f"bootstrap(resamples={resamples},seed={seed}) of the module",
                       per_item=per_item)
