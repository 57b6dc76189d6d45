"""Everything a bake-off reads before any model loads: its suites (benchmarks with their splits, probe and bias
suites) and its resolved candidate models. Bad input fails here, fast (exit 2)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.config import BakeoffConfig
from harness.data.specs import BenchmarkSpec, Split, load_benchmark
from harness.errors import ConfigError, ModelError
from harness.execution.preflight import cross_checks
from harness.models.loading import ModelHandle, resolve
from harness.scoring.bias import load_bias_suite
from harness.scoring.probes import ProbeItem, ProbeSpec, load_probe


@dataclass(frozen=True)
class Suites:
    benchmarks: list[tuple[BenchmarkSpec, dict[str, Split]]]
    probes: list[tuple[ProbeSpec, list[ProbeItem], str]]
    bias: list[tuple[Any, list[Any], str]] = field(default_factory=list)


def load_suites(cfg: BakeoffConfig) -> Suites:
    """Read every spec and data file, and check them against each other."""
    suites = Suites([load_benchmark(b, cfg.base_dir) for b in cfg.benchmarks],
                    [load_probe(p, cfg.base_dir) for p in cfg.probes],
                    [load_bias_suite(b.spec, cfg.base_dir) for b in cfg.bias])
    errors = cross_checks(cfg, suites.benchmarks, [b for b, _, _ in suites.bias])
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
