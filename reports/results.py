"""results.json: the one versioned results object every renderer reads.

Schema (version 1):
  schema_version, run_id, name, created, config_hash, config, git_sha, packages{}, recommendation,
  recommendation_reason, passed (bool), gates[{candidate, gate, passed, observed, message}],
  units{reused, computed, root} (units of work reused from an earlier run or computed by this one),
  warnings[{level, path, line, message}] (data lint findings that did not stop the run: harness/validate.py),
  references{benchmark{split{data_sha256, items[[reference]]}}}
    (what predictions are scored against: harness/references.py),
  candidates[{name, model, status, reason, source, path, architecture, kind, revision, weights_sha,
    params, trainable_params, zero_shot (a reference row: the base model untuned, never recommended),
    did_not_learn[benchmark names whose `learned` is false],
    cost{train_seconds, train_tokens_per_second, latency_ms_per_item, peak_rss_mb},
    benchmarks[{benchmark, version, task, status, reason, learning_rate, data_sha256{split},
      scores{split{metric{value, ci_low, ci_high, n, ci_method, per_item[]}}},
      train{train_loss[], val_loss[], seconds, tokens, tokens_per_second, steps, bf16,
        curve[{step, train_loss, val_loss,
               val_metric (main metric on validation, null when not evaluated: recipe.eval_metric)}],
        best_step (best evaluation by recipe.monitor), stopped_early},
      chance{split{value, how}} (the best trivial predictor on that split, by the same metric code: harness/chance.py),
      learned (true | false | null: beats chance by the documented margin), learned_reason, zero_shot,
      generalisation{gap, gap_ci_low, gap_ci_high, overfit_loss_gap}, predictions{split[]}, per_class_f1{split{label}},
      sweep[{learning_rate, epochs, best_step, validation, val_loss (of the kept weights), chosen}],
      bias[{probe, version, data_sha256, files{spec, data}, flip rates before/after with intervals, change,
            per attribute}],
      files{spec, split: resolved data path}, unit (folder of the kept tuned setting: trainable.safetensors, adapter/),
      probes[{probe, version, kind, n, data_sha256, files{spec, data}, before{}, after{},
              forgetting{value, ci_low, ci_high},
              forgotten, gained, mcnemar_p, most_forgotten[], per_item{before[], after[]}}]}]}]
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from harness.cache import package_versions
from harness.config import BakeoffConfig, GateConfig
from harness.gate import Verdict, check, recommend
from harness.references import scored_references
from harness.run import Bakeoff, CandidateResult
from harness.stability import recommendation_stability

SCHEMA_VERSION = 1
def git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _corpus_gap(bench: dict[str, Any], metric: str, references: dict[str, Any], resamples: int,
                seed: int) -> tuple[float, float] | None:
    """The gap's interval for a corpus metric (macro-F1, BLEU, chrF): the corpus score recomputed on each split's
    own resamples (independent samples) from the predictions and references, as the metric itself is computed.
    None when the predictions or references are not at hand."""
    import numpy as np

    from harness.compare import CORPUS, corpus_stats, resample_counts, statistic

    preds = bench.get("predictions") or {}
    if metric not in CORPUS or not all(preds.get(s) and (references.get(s) or {}).get("items") for s in
                                       ("test", "shifted")):
        return None
    sides = []
    for offset, split in enumerate(("test", "shifted")):
        items = references[split]["items"]
        per_item = np.asarray(bench["scores"][split][metric]["per_item"], dtype=float)
        stat = statistic(metric, per_item, corpus_stats(metric, preds[split], items))
        sides.append(np.concatenate([stat(c) for c in resample_counts(len(items), resamples, seed + offset)]))
    diffs = sides[0] - sides[1]
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def _seeded_gap(bench: dict[str, Any], metric: str, references: dict[str, Any], resamples: int,
                seed: int) -> dict[str, Any] | None:
    """The gap over several training seeds: each seed's gap (its model on both splits), a seed-aware interval
    (harness/seeds.py) whose item part resamples the two splits independently. None with one seed."""
    from harness.compare import seed_stats
    from harness.seeds import combine, is_seeded, item_draws, per_seed_items

    entries = [bench["scores"][s][metric] for s in ("test", "shifted")]
    if not all(is_seeded(e) for e in entries):
        return None
    draws = [item_draws(metric, per_seed_items(e), seed_stats(metric, bench, split, (references.get(split) or {})
                                                               .get("items")), resamples, seed + offset).mean(axis=0)
             for offset, (split, e) in enumerate(zip(("test", "shifted"), entries))]
    gaps = [a - b for a, b in zip(entries[0]["seeds"], entries[1]["seeds"])]
    sa = combine([gaps], draws[0] - draws[1])
    low, high = sa.interval()
    return {"gap_ci_low": low, "gap_ci_high": high, "gap_seeds": gaps, "gap_seed_sd": sa.seed_sd}


def _generalisation(bench: dict[str, Any], main_metric: str, resamples: int, seed: int,
                    references: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    test = bench["scores"].get("test", {}).get(main_metric)
    shifted = bench["scores"].get("shifted", {}).get(main_metric)
    seeded = _seeded_gap(bench, main_metric, references or {}, resamples, seed) if test and shifted else None
    corpus = _corpus_gap(bench, main_metric, references or {}, resamples, seed) if test and shifted else None
    if seeded:
        out.update(metric=main_metric, gap=test["value"] - shifted["value"], **seeded)
    elif corpus:
        out.update(metric=main_metric, gap=test["value"] - shifted["value"], gap_ci_low=corpus[0],
                   gap_ci_high=corpus[1])
    elif test and shifted:
        # independent samples: the gap's interval comes from resampling each split separately
        import numpy as np

        a, b = np.asarray(test["per_item"]), np.asarray(shifted["per_item"])
        rng = np.random.Generator(np.random.PCG64(seed))  # PCG64 named: default_rng's bit generator may change
        diffs = [a[rng.integers(0, len(a), len(a))].mean() - b[rng.integers(0, len(b), len(b))].mean()
                 for _ in range(resamples)]
        out.update(metric=main_metric, gap=test["value"] - shifted["value"],
                   gap_ci_low=float(np.percentile(diffs, 2.5)), gap_ci_high=float(np.percentile(diffs, 97.5)))
    train = bench.get("train")
    # no validation split: every validation loss is NaN, and there is no overfitting signal to report
    if train and train["train_loss"] and len(train["val_loss"]) > 1 and math.isfinite(train["val_loss"][-1]):
        out["overfit_loss_gap"] = train["val_loss"][-1] - train["train_loss"][-1]
    return out


def candidate_dict(c: CandidateResult, main_metrics: dict[str, str], resamples: int, seed: int,
                   references: dict[str, Any] | None = None) -> dict[str, Any]:
    benches = []
    train_seconds, tps, latency = 0.0, 0.0, None
    for b in c.benchmarks:
        d = {"benchmark": b.benchmark, "version": b.version, "task": b.task, "status": b.status, "reason": b.reason,
             "learning_rate": b.learning_rate, "data_sha256": b.data_sha256,
             "scores": {s: {m: v.to_dict() for m, v in ms.items()} for s, ms in b.scores.items()},
             "train": (dataclasses.asdict(b.train) | {"tokens_per_second": b.train.tokens_per_second}
                       if b.train else None),
             "latency_ms_per_item": b.latency_ms, "probes": b.probes, "predictions": b.predictions,
             "per_class_f1": b.per_class_f1, "sweep": b.sweep,
             "bias": b.bias, "files": b.files, "unit": str(b.unit) if b.unit else None,
             "chance": b.chance, "learned": b.learned, "learned_reason": b.learned_reason, "zero_shot": b.zero_shot,
             "seeds": b.seeds, "seed_runs": b.seed_runs, "seed_predictions": b.seed_predictions}
        d["generalisation"] = _generalisation(d, main_metrics.get(b.benchmark, ""), resamples, seed,
                                              (references or {}).get(b.benchmark))
        benches.append(d)
        if b.train:
            train_seconds += b.train.seconds
            tps = b.train.tokens_per_second
        latency = latency if latency is not None else b.latency_ms
    h = c.handle
    return {"name": c.name, "model": c.model, "status": c.status, "reason": c.reason,
            "source": h.source if h else None, "path": h.path if h else None,
            "architecture": h.architecture if h else None, "kind": h.kind if h else None,
            "revision": h.revision if h else None, "weights_sha": h.weights_hash if h else None,
            "params": c.params, "trainable_params": c.trainable_params, "zero_shot": c.zero_shot,
            "did_not_learn": [b.benchmark for b in c.benchmarks if b.learned is False],
            "cost": {"train_seconds": train_seconds, "train_tokens_per_second": tps,
                     "latency_ms_per_item": latency, "peak_rss_mb": c.peak_rss_mb},
            "benchmarks": benches}


def build_results(bakeoff: Bakeoff, cfg: BakeoffConfig, baselines: dict[str, Any] | None = None) -> dict[str, Any]:
    references = scored_references(cfg)
    cands = [candidate_dict(c, bakeoff.main_metrics, cfg.bootstrap_resamples, cfg.recipe.seed, references)
             for c in bakeoff.candidates]
    verdicts = check(cands, cfg.gates, baselines, cfg.bootstrap_resamples, cfg.recipe.seed, cfg.gate_correction)
    return finish(bakeoff.run_id, cfg.name, cfg.hash(), dataclasses.asdict(cfg), cands, verdicts, cfg.gates) | {
        "warnings": bakeoff.warnings, "references": references}


def finish(run_id: str, name: str, config_hash: str, config: dict[str, Any], cands: list[dict[str, Any]],
           verdicts: list[Verdict], gates: list[GateConfig] | None = None) -> dict[str, Any]:
    choice, reason = recommend(cands, verdicts)
    resamples, seed = int(config.get("bootstrap_resamples") or 1000), int((config.get("recipe") or {}).get("seed") or 0)
    stability = recommendation_stability(cands, verdicts, gates or [], choice, min(resamples, 500), seed)
    for gate in gates or []:
        minimum = gate.recommendation_stability
        if minimum is None:
            continue
        ok = stability >= minimum
        verdicts = [*verdicts, Verdict(choice or "-", gate.name, ok, stability,
                                       f"the same candidate is recommended in {stability:.0%} of resamples of seeds "
                                       f"and items ({'meets' if ok else 'misses'} {minimum:g})")]
        if not ok and choice is not None:
            reason = (f"{choice} would be recommended, but only in {stability:.0%} of resamples of seeds and items "
                      f"(gate: {minimum:g}): not a stable choice; {reason}")
            choice = None
    return {"schema_version": SCHEMA_VERSION, "run_id": run_id, "name": name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config_hash": config_hash, "config": config,
            "git_sha": git_sha(), "packages": package_versions(),
            "passed": choice is not None, "recommendation": choice, "recommendation_reason": reason,
            "recommendation_stability": stability,
            "gates": [dataclasses.asdict(v) for v in verdicts], "candidates": cands}


def write_json(results: dict[str, Any], path: Path) -> None:
    """Atomic write: a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(results, indent=1, default=float))
    tmp.replace(path)
