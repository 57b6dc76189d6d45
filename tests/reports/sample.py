"""A small, fixed results object for renderer tests (the JSON shape of harness/results/model.py), and `typed`, which
reads such a dict as the typed Results the renderers take.

Per-item test scores (228 items) are built so the tie groups are known: minilm-l6 (189 right) and gpt2-small
(182 right) disagree on 19 + 12 items (McNemar p = 0.28, one group); smollm2-135m (155 right) is right only where
minilm-l6 is, 34 items fewer (p < 1e-9, a group of its own)."""
from __future__ import annotations

from typing import Any

from harness.results.finish import restore
from harness.results.model import Results
from harness.statistics.intervals import wilson

N = 228


def typed(results: dict[str, Any]) -> Results:
    """A results dict (version 1 when it says none) as the typed model, its tie groups computed as a run stores them."""
    return restore(results)


def metric(value, low, high, n=200, per_item=None):
    return {"value": value, "ci_low": low, "ci_high": high, "n": n, "ci_method": "wilson", "per_item": per_item or []}


def right_on(*spans: tuple[int, int]) -> list[float]:
    """0/1 per item: 1 on the half-open index spans given."""
    return [float(any(a <= i < b for a, b in spans)) for i in range(N)]


def rate(count: int, n: int) -> dict:
    low, high = wilson(count, n)
    return {"value": count / n, "ci_low": float(low), "ci_high": float(high), "ci_method": "wilson", "count": count}


def bias(before: int, after: int, change: tuple[float, float, float]) -> dict:
    """An intent_bias report: flips out of 122 pairs before and after tuning; one flip of each is about age."""
    return {"probe": "intent_bias", "version": "1", "data_sha256": "b" * 64, "n": 122,
            "flip_rate_before": rate(before, 122), "flip_rate_after": rate(after, 122),
            "change": {"value": change[0], "ci_low": change[1], "ci_high": change[2], "ci_method": "paired bootstrap"},
            "new_flips": 4, "vanished_flips": 1, "mcnemar_p": 0.375,
            "per_attribute": {"age": {"n": 30, "before": rate(1, 30), "after": rate(1, 30)},
                              "gender": {"n": 92, "before": rate(before - 1, 92), "after": rate(after - 1, 92)}},
            "flipped_examples": [{"a": "He cannot log in <again>", "b": "She cannot log in <again>",
                                  "attribute": "gender", "label": "account", "pred_a": "account",
                                  "pred_b": "billing"}],
            "per_pair": {"before": [], "after": []}}


def candidate(name, params, trainable, acc, shifted, forgetting, status="ok", reason="", right=None, flips=None):
    per_item = right or []
    bench = {"benchmark": "support_intents", "version": "1", "task": "classification", "status": status,
             "reason": reason, "learning_rate": 1e-3, "data_sha256": {},
             "scores": {"test": {"accuracy": metric(*acc, n=N, per_item=per_item),
                                 "macro_f1": metric(acc[0] - 0.01, acc[1], acc[2], n=N, per_item=per_item)},
                        "shifted": {"accuracy": metric(*shifted), "macro_f1": metric(*shifted)}}
             if status == "ok" else {},
             "train": None, "latency_ms_per_item": 12.5, "generalisation": {},
             "probes": [{"probe": "general_knowledge", "forgetting": metric(*forgetting)}] if status == "ok" else [],
             "bias": [bias(*flips)] if flips else []}
    return {"name": name, "model": name, "status": status if status != "n/a" else "ok", "reason": reason,
            "params": params, "trainable_params": trainable,
            "cost": {"train_seconds": 120.0, "train_tokens_per_second": 350.0, "latency_ms_per_item": 12.5,
                     "peak_rss_mb": 2048.0}, "benchmarks": [bench]}


def sample_results():
    cands = [candidate("smollm2-135m", 134_515_008, 460_800, (155 / N, 0.617, 0.737), (0.657, 0.584, 0.723),
                       (0.005, -0.013, 0.024), right=right_on((0, 155)), flips=(5, 8, (0.025, -0.016, 0.066))),
             candidate("minilm-l6", 22_792_334, 76_423, (189 / N, 0.775, 0.872), (0.846, 0.785, 0.892),
                       (0.012, -0.03, 0.06), right=right_on((0, 189))),
             candidate("gpt2-small", 124_439_808, 294_912, (182 / N, 0.741, 0.845), (0.834, 0.772, 0.882),
                       (0.031, 0.004, 0.058), right=right_on((0, 170), (200, 212)),
                       flips=(4, 3, (-0.008, -0.041, 0.025))),
             candidate("broken", 0, 0, None, None, None, status="failed", reason="RunFailure: loss became nan")]
    gate = "support_intents.accuracy >= 0.7"
    return {"schema_version": 1, "run_id": "20261125-000000-abcdef", "name": "demo", "passed": True,
            "config": {"name": "demo", "bias": ["intent_bias"], "bootstrap_resamples": 1000, "recipe": {"seed": 0}},
            "recommendation": "minilm-l6",
            "recommendation_reason": "minilm-l6 is the smallest candidate (22.8M parameters) that passes every gate; "
                                     "1 other(s) pass too",
            "gates": [{"candidate": "smollm2-135m", "gate": gate, "passed": False,
                       "observed": 155 / N, "message": "value 0.6798 misses >= 0.7"},
                      {"candidate": "minilm-l6", "gate": gate, "passed": True,
                       "observed": 189 / N, "message": "value 0.8289 meets >= 0.7"},
                      {"candidate": "gpt2-small", "gate": gate, "passed": True,
                       "observed": 182 / N, "message": "value 0.7982 meets >= 0.7"},
                      {"candidate": "broken", "gate": gate, "passed": False,
                       "observed": None, "message": "fails closed"}],
            "candidates": cands}
