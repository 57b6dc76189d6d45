"""What a bake-off checks before any model loads, beyond each file's own checks: every suite of the config loads,
the suites agree with each other and with the gates, the executor is registered (the tuner and its options are
checked as the config is read: harness/config/recipe.py), and each candidate is a model sftbench can load (without
converting, downloading or hashing it). `sftbench validate` runs all of it and reports every finding
(harness/commands/validate.py); `run` stops at the first error (harness/run.py, harness/execution/suites.py).
No torch import."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from harness.config import DEMO_CONFIG, BakeoffConfig, CandidateConfig, load_config
from harness.data.specs import SCORED_SPLITS, BenchmarkSpec, Split, load_benchmark
from harness.data.validate import Finding, run_warnings
from harness.errors import ModelError, SftbenchError, did_you_mean
from harness.execution import check_executor
from harness.models.gguf import gguf_unsupported
from harness.models.loading import ALIASES, check_adapter, inspect_folder, package_dir, source_of
from harness.scoring.bias import BiasSpec, load_bias_suite
from harness.scoring.probes import load_probe
from harness.scoring.tasks import metric_while_training, scored_metrics


def validate(config: str | Path | None, overrides: list[str] | None = None) -> list[Finding]:
    """Every error and warning for a config file (the bundled demo when None)."""
    try:
        cfg = load_config(config, overrides)
    except SftbenchError as err:
        return [config_error(err, str(config or DEMO_CONFIG))]  # the bundled demo, when no config was named
    return lint(cfg)


def lint(cfg: BakeoffConfig) -> list[Finding]:
    """Load every suite of a parsed config, check the executor and the candidates, and lint the benchmark data."""
    source, base = cfg.source, cfg.base_dir
    findings: list[Finding] = []

    def attempt(load: Callable[[], Any]) -> Any:
        try:
            return load()
        except SftbenchError as err:  # one finding per failing suite; the others are still checked
            findings.append(config_error(err, source))
            return None

    benchmarks = [b for ref in cfg.benchmarks if (b := attempt(partial(load_benchmark, ref, base)))]
    for ref in cfg.probes:
        attempt(partial(load_probe, ref, base))
    bias = [b for ref in cfg.bias if (b := attempt(partial(load_bias_suite, ref.spec, base)))]
    findings += cross_checks(cfg, benchmarks, [spec for spec, _, _ in bias])
    attempt(lambda: check_executor(cfg.executor.kind))
    for cand in cfg.candidates:
        findings += attempt(partial(check_candidate, cand)) or []
    return findings + run_warnings(cfg, benchmarks)


def config_error(err: SftbenchError, source: str) -> Finding:
    # an error raised without a file (an unknown name) is about the config that named it
    return Finding("error", err.path or source, err.line, err.message)


def cross_checks(cfg: BakeoffConfig, benchmarks: list[tuple[BenchmarkSpec, dict[str, Split]]],
                 bias: list[BiasSpec]) -> list[Finding]:
    """Errors between suites that each loaded fine: a bias suite's benchmark missing from the config, a
    sweep over a benchmark with no validation split, early stopping on a metric a benchmark does not evaluate
    while training, a gate on a metric no benchmark produces."""
    names = {spec.name for spec, _ in benchmarks}
    findings = [Finding("error", cfg.source, None, f"bias suite '{b.name}' needs benchmark '{b.benchmark}', which "
                        "the config does not list") for b in bias if b.benchmark not in names]
    findings += gate_errors(cfg, benchmarks)
    if any(len(cfg.settings(c)) > 1 for c in cfg.candidates):
        findings += [Finding("error", cfg.source, None, f"a sweep picks settings on validation data, and benchmark "
                             f"'{spec.name}' has no validation split") for spec, splits in benchmarks
                     if "validation" not in splits]
    if cfg.recipe.monitor == "metric":
        for spec, splits in benchmarks:
            n = len(splits["validation"].examples) if "validation" in splits else 0
            if why := metric_while_training(spec, n, cfg.recipe.eval_metric):
                findings.append(Finding("error", cfg.source, None, f"recipe.monitor is metric, but benchmark "
                                        f"'{spec.name}' does not evaluate {spec.main_metric} while training: {why}"))
    return findings


def check_candidate(cand: CandidateConfig) -> list[Finding]:
    """What `run` checks before loading weights, without converting, downloading or hashing them."""
    source = source_of(cand.model)
    if cand.adapter:
        check_adapter(Path(cand.adapter).expanduser().resolve())
    if source == "alias":
        alias = ALIASES.get(cand.model)
        package_dir(alias.package, alias.pip)
    elif source == "local":
        inspect_folder(Path(cand.model).expanduser().resolve(), cand.trust_remote_code, cand.allow_pickle)
    elif source == "gguf":  # its metadata only: the conversion waits for `run`
        unsupported = gguf_unsupported(Path(cand.model).expanduser())
        if unsupported:
            raise ModelError(unsupported, cand.model)
    else:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(cand.model, "config.json", revision=cand.revision)
        if not isinstance(cached, str):
            what, hint = ("", "") if "/" in cand.model else \
                ("not a bundled alias or a local path, so a hub id, and ", did_you_mean(cand.model, ALIASES))
            return [Finding("warning", cand.model, None, f"{what}not in the local Hugging Face cache: `run` downloads "
                            f"it (needs the network), so it was not checked{hint}")]
        inspect_folder(Path(cached).parent, cand.trust_remote_code, cand.allow_pickle)
    return []


def gate_errors(cfg: BakeoffConfig, benchmarks: list[tuple[BenchmarkSpec, dict[str, Split]]]) -> list[Finding]:
    """A metric gate (threshold or baseline) on a benchmark, metric or split that no benchmark of the config
    produces would fail closed after all the training: a config error, with the closest name the config does
    produce. (When a benchmark failed to load, its error is already reported.)"""
    if len(benchmarks) < len(cfg.benchmarks):
        return []
    scored = {spec.name: (scored_metrics(spec), [s for s in SCORED_SPLITS if s in splits])
              for spec, splits in benchmarks}
    findings = []
    for gate in (g for g in cfg.gates if g.metric):
        bench, metric, *split = gate.metric.split(".")
        metrics, splits = scored.get(bench, ((), []))
        on = f".{split[0]}" if split else ""
        if bench not in scored:
            why = f"no benchmark '{bench}' in the config ({', '.join(scored)})"
            hint = did_you_mean(gate.metric, [f"{b}.{m}{on}" for b, (ms, _) in scored.items() for m in ms])
        elif metric not in metrics:
            why = f"benchmark '{bench}' does not compute '{metric}' ({', '.join(metrics)})"
            hint = did_you_mean(metric, {m: f"{bench}.{m}{on}" for m in metrics})
        elif split and split[0] not in splits:
            why = f"benchmark '{bench}' scores no '{split[0]}' split ({', '.join(splits)})"
            hint = f"; did you mean '{bench}.{metric}' (the test split)?"
        else:
            continue
        findings.append(Finding("error", cfg.source, None, f"gate '{gate.name}': {why}{hint}"))
    return findings
