"""Everything a bake-off reads before any model loads: its suites (benchmarks with their splits, probe and bias
suites), each a frozen record keyed by its name, and its resolved candidate models. Bad input fails here, fast
(exit 2)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.config import BakeoffConfig
from harness.data.references import split_references
from harness.data.specs import SCORED_SPLITS, BenchmarkSpec, Split, load_benchmark
from harness.errors import ConfigError, ModelError
from harness.execution.preflight import cross_checks
from harness.models.loading import ModelHandle, resolve
from harness.scoring.bias import BiasSpec, Pair, load_bias_suite
from harness.scoring.probes import ProbeItem, ProbeSpec, load_probe


@dataclass(frozen=True)
class Benchmark:
    """A benchmark as the run read it: its spec and its splits (row caps applied)."""

    spec: BenchmarkSpec
    splits: dict[str, Split]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def scored(self) -> list[str]:
        """The splits a run scores, in SCORED_SPLITS order."""
        return [s for s in SCORED_SPLITS if s in self.splits]

    def references(self) -> dict[str, dict[str, Any]]:
        """What each scored split's predictions are scored against (harness/data/references.py): the items as this
        run read them, with the hash of those items."""
        return {s: split_references(self.splits[s]) for s in self.scored}


@dataclass(frozen=True)
class Probe:
    """A forgetting probe suite: its spec, its items and the hash of its data."""

    spec: ProbeSpec
    items: list[ProbeItem]
    digest: str

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Bias:
    """A counterfactual bias suite: its spec, its pairs and the hash of its data."""

    spec: BiasSpec
    pairs: list[Pair]
    digest: str

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Suites:
    """Every suite of a bake-off by name, in the config's order."""

    benchmarks: dict[str, Benchmark]
    probes: dict[str, Probe] = field(default_factory=dict)
    bias: dict[str, Bias] = field(default_factory=dict)

    def loaded(self) -> list[tuple[BenchmarkSpec, dict[str, Split]]]:
        """The benchmarks as (spec, splits) pairs, the shape the data checks read (harness/data/validate.py)."""
        return [(b.spec, b.splits) for b in self.benchmarks.values()]

    def probes_for(self, kind: str) -> list[Probe]:
        """The probes a model of `kind` runs (each probe tests one model kind)."""
        return [p for p in self.probes.values() if p.spec.model_kind == kind]

    def bias_for(self, benchmark: str, kind: str) -> list[Bias]:
        """The bias suites run on `benchmark` for a model of `kind`. Bias "before" needs a model that can already
        do the task: a causal LM zero-shot. An encoder's new head is untrained before tuning, so its before/after
        change would be noise; encoders are skipped."""
        return [b for b in self.bias.values() if b.spec.benchmark == benchmark and kind == "causal"]


def by_name(suites: list[Any], what: str, source: str) -> dict[str, Any]:
    """`suites` keyed by name; a name listed twice is an error in the config (unit ids and results name suites)."""
    out: dict[str, Any] = {}
    for suite in suites:
        if suite.name in out:
            raise ConfigError(f"{what} '{suite.name}' is listed twice; each suite may appear once", source or None)
        out[suite.name] = suite
    return out


def load_suites(cfg: BakeoffConfig) -> Suites:
    """Read every spec and data file, and check them against each other."""
    suites = Suites(by_name([Benchmark(*load_benchmark(b, cfg.base_dir)) for b in cfg.benchmarks], "benchmark",
                            cfg.source),
                    by_name([Probe(*load_probe(p, cfg.base_dir)) for p in cfg.probes], "probe", cfg.source),
                    by_name([Bias(*load_bias_suite(b.spec, cfg.base_dir)) for b in cfg.bias], "bias suite",
                            cfg.source))
    errors = cross_checks(cfg, suites.loaded(), [b.spec for b in suites.bias.values()])
    if errors:
        raise ConfigError(errors[0].message, errors[0].path or None, errors[0].line)
    return suites


def resolve_all(cfg: BakeoffConfig, progress: Any) -> dict[str, ModelHandle]:
    handles = {}
    for c in cfg.candidates:
        progress.stage(c.name, "resolving model")  # a bundled GGUF model is converted once, with a bar
        try:
            handles[c.name] = resolve(c.model, c.revision, c.trust_remote_code, c.allow_pickle, on_step=progress.step,
                                      adapter=c.adapter)
        except ModelError as err:  # one line naming the candidate, then the model's own message
            raise ModelError(f"candidate {c.name}: {err.message}", err.path, err.line) from None
    return handles
