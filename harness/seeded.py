"""A candidate on a benchmark under several training seeds (recipe.seeds): every seed is its own tune unit (and
its own scoring units), the sweep setting is chosen on the mean over seeds of the validation metric, and the
per-seed results are merged into one BenchmarkResult whose numbers are means over seeds with seed-aware
intervals (harness/seeds.py). The base model's probes and bias pairs are scored once: they do not depend on the
seed. With one seed, harness/run.py's path is used unchanged.
"""
from __future__ import annotations

import dataclasses
import gc
from typing import Any

from harness.cache import UnitCache
from harness.chance import Chance, learned, what_to_try
from harness.config import BakeoffConfig, CandidateConfig
from harness.data import BenchmarkSpec, Split
from harness.device import use_bf16
from harness.models import ModelHandle
from harness.run import (
    BenchmarkResult,
    Progress,
    Suites,
    base_units,
    choose,
    kept_value,
    train_settings,
    tune_and_score,
)
from harness.score import MetricValue
from harness.seeds import combine_change, combine_metric
from harness.units import Bench


def tune_and_score_seeds(cand: CandidateConfig, handle: ModelHandle, spec: BenchmarkSpec, cfg: BakeoffConfig,
                         cache: UnitCache, splits: dict[str, Split], suites: Suites,
                         progress: Progress) -> tuple[BenchmarkResult, int, int, list[float]]:
    seeds = cfg.recipe.seed_values
    benches = [Bench(handle, spec, dataclasses.replace(cfg, recipe=cfg.recipe.for_seed(s)), cache) for s in seeds]
    bf16 = use_bf16(cfg.recipe.bf16)
    try:
        base = base_units(cand, benches[0], suites, bf16, progress)
        trained = []
        for bench in benches:  # phase 1: every setting under every seed (reused from the cache when kept)
            trained.append(train_settings(cand, bench, splits, bf16, progress))
            bench.drop_model()
            gc.collect()
        best, sweep = choose(spec, cfg, [keys for keys, _ in trained], [done for _, done in trained])
        results, params, trainable = [], 0, 0
        for bench, (keys, done) in zip(benches, trained):  # phase 2: score each seed's chosen setting
            key = keys[best]
            bench.kept = {k: v for k, v in bench.kept.items() if k == key}
            result, params, trainable = tune_and_score(cand, bench, splits, suites, progress, (key, done[key], sweep),
                                                       base)
            results.append(result)
            bench.drop_model()
            gc.collect()
        peaks = [p for bench in benches for p in bench.peaks]
    finally:
        for bench in benches:
            bench.release()
    return merge(results, seeds, spec, splits, cfg, sweep), params, trainable, peaks


def merge(results: list[BenchmarkResult], seeds: list[int], spec: BenchmarkSpec, splits: dict[str, Split],
          cfg: BakeoffConfig, sweep: list[dict[str, Any]]) -> BenchmarkResult:
    """One result from per-seed results: means over seeds with seed-aware intervals, per-seed values kept."""
    from harness.compare import CORPUS, corpus_stats

    resamples, first = cfg.bootstrap_resamples, results[0]
    scores: dict[str, dict[str, MetricValue]] = {}
    for split, metrics in first.scores.items():
        refs = [list(ex.references) for ex in splits[split].examples]
        scores[split] = {}
        for metric in metrics:
            stats = ([corpus_stats(metric, r.predictions[split], refs) for r in results] if metric in CORPUS
                     else None)
            scores[split][metric] = combine_metric(metric, [r.scores[split][metric] for r in results], stats,
                                                   resamples, cfg.recipe.seed)
    probes = [_merge_probe([r.probes[j] for r in results], resamples, cfg.recipe.seed)
              for j in range(len(first.probes))]
    bias = [_merge_bias([r.bias[j] for r in results], resamples, cfg.recipe.seed) for j in range(len(first.bias))]
    trains = [r.train for r in results if r.train is not None]
    train = dataclasses.replace(trains[0], seconds=sum(t.seconds for t in trains),
                                tokens=sum(t.tokens for t in trains)) if trains else None
    did, why = _learned(spec, scores, first.chance, sweep, results, cfg.recipe.restore_best)
    latencies = [r.latency_ms for r in results if r.latency_ms is not None]
    runs = [{"seed": s, "unit": str(r.unit) if r.unit else None, "train_seconds": r.train.seconds if r.train else None,
             "final_val_loss": r.train.val_loss[-1] if r.train and r.train.val_loss else None}
            for s, r in zip(seeds, results)]
    return dataclasses.replace(
        first, scores=scores, train=train, latency_ms=sum(latencies) / len(latencies) if latencies else None,
        probes=probes, bias=bias, learned=did, learned_reason=why, seeds=list(seeds), seed_runs=runs,
        seed_predictions={split: [r.predictions[split] for r in results] for split in first.predictions})


def _learned(spec: BenchmarkSpec, scores: dict[str, dict[str, MetricValue]], chances: dict[str, dict[str, Any]],
             sweep: list[dict[str, Any]], results: list[BenchmarkResult],
             restore_best: bool) -> tuple[bool | None, str]:
    """The learned rule on the mean over seeds and its seed-aware interval, with the mean validation score."""
    metric = spec.main_metric
    test = scores.get("test", {}).get(metric)
    if test is None:
        return None, f"no test {metric}"
    found = {s: Chance(c["value"], c["how"]) for s, c in chances.items()}
    chosen = next((row for row in sweep if row.get("chosen")), None)
    validation = chosen["validation"] if chosen else _mean_validation(results, restore_best)
    did, why = learned(metric, test, found.get("test"), validation, found.get("validation"))
    if did is False:
        first = results[0]
        why += "; " + what_to_try(sweep, first.learning_rate, len(first.train.train_loss) if first.train else None)
    return did, f"mean over {len(results)} seeds: {why}"


def _mean_validation(results: list[BenchmarkResult], restore_best: bool) -> float | None:
    """The mean over seeds of the kept weights' validation metric, where training measured it for every seed."""
    values = [kept_value(dataclasses.asdict(r.train), restore_best, "val_metric") for r in results if r.train]
    found = [v for v in values if v is not None]
    return sum(found) / len(found) if found and len(found) == len(results) else None


def _merge_probe(reports: list[dict[str, Any]], resamples: int, seed: int) -> dict[str, Any]:
    """Forgetting over seeds: the base model's answers are shared, the tuned model's differ by seed."""
    before = reports[0]["per_item"]["before"]
    afters = [r["per_item"]["after"] for r in reports]
    forgetting = combine_change([[b - a for b, a in zip(before, after)] for after in afters], resamples, seed)
    after = combine_change(afters, resamples, seed)
    return reports[0] | {"forgetting": forgetting, "after": after,
                         "per_item": {"before": before, "after": afters[0], "after_per_seed": afters},
                         "forgotten_per_seed": [r["forgotten"] for r in reports],
                         "gained_per_seed": [r["gained"] for r in reports]}


def _merge_bias(reports: list[dict[str, Any]], resamples: int, seed: int) -> dict[str, Any]:
    before = reports[0]["per_pair"]["before"]
    afters = [r["per_pair"]["after"] for r in reports]
    change = combine_change([[a - b for a, b in zip(after, before)] for after in afters], resamples, seed)
    return reports[0] | {"change": change, "flip_rate_after": combine_change(afters, resamples, seed),
                         "per_pair": {"before": before, "after": afters[0], "after_per_seed": afters}}

