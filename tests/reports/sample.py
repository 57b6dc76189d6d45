"""A small, fixed results object for renderer tests (the shape reports/results.py writes)."""
from __future__ import annotations


def metric(value, low, high, n=200):
    return {"value": value, "ci_low": low, "ci_high": high, "n": n, "ci_method": "wilson", "per_item": []}


def candidate(name, params, trainable, acc, shifted, forgetting, status="ok", reason=""):
    bench = {"benchmark": "support_intents", "version": "1", "task": "classification", "status": status,
             "reason": reason, "learning_rate": 1e-3, "data_sha256": {},
             "scores": {"test": {"accuracy": metric(*acc), "macro_f1": metric(acc[0] - 0.01, acc[1], acc[2])},
                        "shifted": {"accuracy": metric(*shifted), "macro_f1": metric(*shifted)}} if status == "ok" else {},
             "train": None, "latency_ms_per_item": 12.5, "generalisation": {},
             "probes": [{"probe": "general_knowledge", "forgetting": metric(*forgetting)}] if status == "ok" else []}
    return {"name": name, "model": name, "status": status if status != "n/a" else "ok", "reason": reason,
            "params": params, "trainable_params": trainable,
            "cost": {"train_seconds": 120.0, "train_tokens_per_second": 350.0, "latency_ms_per_item": 12.5,
                     "peak_rss_mb": 2048.0}, "benchmarks": [bench]}


def sample_results():
    cands = [candidate("smollm2-135m", 134_515_008, 460_800, (0.68, 0.617, 0.737), (0.657, 0.584, 0.723), (0.005, -0.013, 0.024)),
             candidate("minilm-l6", 22_792_334, 76_423, (0.829, 0.775, 0.872), (0.846, 0.785, 0.892), (0.012, -0.03, 0.06)),
             candidate("broken", 0, 0, None, None, None, status="failed", reason="RunFailure: loss became nan")]
    return {"schema_version": 1, "run_id": "20261125-000000-abcdef", "name": "demo", "passed": True,
            "recommendation": "minilm-l6",
            "recommendation_reason": "minilm-l6 is the smallest candidate (22.8M parameters) that passes every gate",
            "gates": [{"candidate": "smollm2-135m", "gate": "support_intents.accuracy >= 0.7", "passed": False,
                       "observed": 0.68, "message": "value 0.6800 misses >= 0.7"},
                      {"candidate": "minilm-l6", "gate": "support_intents.accuracy >= 0.7", "passed": True,
                       "observed": 0.829, "message": "value 0.8290 meets >= 0.7"},
                      {"candidate": "broken", "gate": "support_intents.accuracy >= 0.7", "passed": False,
                       "observed": None, "message": "fails closed"}],
            "candidates": cands}
