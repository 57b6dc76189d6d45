"""Candidate rows: a finished bake-off's candidates (harness.run's dataclasses) as results.json rows, each
benchmark with its generalisation gap and interval. The first stage of finishing a run (harness/results/finish.py).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from harness.execution.outcome import CandidateResult
from harness.scoring.metrics import METRICS, confusion_matrix, scale_bound
from harness.statistics.gap import generalisation


def candidate_dict(c: CandidateResult, main_metrics: dict[str, str], resamples: int, seed: int,
                   references: dict[str, Any] | None = None) -> dict[str, Any]:
    benches = []
    is_reference = c.zero_shot and not c.adapter  # an adapter the user brings is a candidate, not a reference row
    train_seconds, tps, latency, conditions = 0.0, 0.0, None, None
    for b in c.benchmarks:
        d = {"benchmark": b.benchmark, "version": b.version, "task": b.task, "status": b.status, "reason": b.reason,
             "learning_rate": b.learning_rate, "data_sha256": b.data_sha256,
             "scores": {s: {m: v.to_dict() for m, v in ms.items()} for s, ms in b.scores.items()},
             "train": (dataclasses.asdict(b.train) | {"tokens_per_second": b.train.tokens_per_second}
                       if b.train else None),
             "latency_ms_per_item": b.latency_ms, "probes": b.probes, "predictions": b.predictions,
             "per_class_f1": b.per_class_f1, "confusion": None, "sweep": b.sweep,
             "bias": b.bias, "files": b.files, "unit": str(b.unit) if b.unit else None,
             "chance": b.chance, "learned": b.learned, "learned_reason": b.learned_reason,
             "zero_shot": b.zero_shot and is_reference,
             "seeds": b.seeds, "seed_runs": b.seed_runs, "seed_predictions": b.seed_predictions,
             "params": b.params, "trainable_params": b.trainable_params,
             "latency_conditions": b.latency_conditions}
        main = main_metrics.get(b.benchmark, "")
        d["generalisation"] = generalisation(d, main, resamples, seed, (references or {}).get(b.benchmark),
                                             bound=scale_bound(main) if main in METRICS else None)
        if b.task == "classification":
            d["confusion"] = confusions(b.seed_predictions or b.predictions or {},
                                        (references or {}).get(b.benchmark) or {},
                                        b.data_sha256) or None
        benches.append(d)
        if b.train:
            train_seconds += b.train.seconds
            tps = b.train.tokens_per_second
        if latency is None and b.latency_ms is not None:  # the first benchmark's, with what it was measured under
            latency, conditions = b.latency_ms, b.latency_conditions
    h = c.handle
    return {"name": c.name, "model": c.model, "status": c.status, "reason": c.reason,
            "source": h.source if h else None, "path": h.path if h else None,
            "architecture": h.architecture if h else None, "kind": h.kind if h else None,
            "revision": h.revision if h else None, "weights_sha": h.weights_hash if h else None,
            "params": c.params, "trainable_params": c.trainable_params, "zero_shot": is_reference,
            "did_not_learn": [b.benchmark for b in c.benchmarks if b.learned is False],
            "cost": {"train_seconds": train_seconds, "train_tokens_per_second": tps,
                     "latency_ms_per_item": latency, "latency_conditions": conditions,
                     "peak_rss_mb": c.peak_rss_mb, "peak_gpu_mb": c.peak_gpu_mb,
                     "gpu_seconds": c.gpu_seconds},
            "benchmarks": benches} | ({"adapter": c.adapter} if c.adapter else {})


def confusions(predictions: dict[str, Any], references: dict[str, Any],
               data_sha256: dict[str, str]) -> dict[str, dict[str, Any]]:
    """split -> confusion matrix of a classification benchmark's stored predictions against the references of the
    same data (the hash must match: a split read again after its file changed is left out). Under several training
    seeds (`predictions[split]` a list per seed) the counts are summed over the seeds, and `seeds` says how many."""
    out = {}
    for split, preds in predictions.items():
        ref = references.get(split) or {}
        if ref.get("items") is None or ref.get("data_sha256") != data_sha256.get(split):
            continue
        per_seed = preds if preds and isinstance(preds[0], list) else [preds]
        matrix = confusion_matrix([p for seed in per_seed for p in seed], list(ref["items"]) * len(per_seed))
        out[split] = matrix | ({"seeds": len(per_seed)} if len(per_seed) > 1 else {})
    return out
