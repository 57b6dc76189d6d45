"""Several training seeds' results on one benchmark merged into one row: means over seeds with seed-aware intervals
(harness/statistics/seeds.py), each seed's values kept beside them; forgetting and bias changes over seeds with
the base model's answers shared. Pure functions of the per-seed rows assemble built."""
from __future__ import annotations

import dataclasses
from typing import Any

from harness.config import BakeoffConfig
from harness.data.specs import BenchmarkSpec, Split
from harness.execution.compute import kept_value
from harness.results.model import BenchmarkRow, BiasRow, MetricScore, ProbeRow
from harness.scoring.chance import Chance, learned, what_to_try
from harness.scoring.metrics import combine_metric
from harness.statistics.paired import CORPUS, corpus_stats
from harness.statistics.seeds import combine_change
from harness.training.loop import TrainResult


def merge(results: list[BenchmarkRow], seeds: list[int], spec: BenchmarkSpec, splits: dict[str, Split],
          cfg: BakeoffConfig, sweep: list[dict[str, Any]]) -> BenchmarkRow:
    """One row from per-seed rows: means over seeds with seed-aware intervals, per-seed values kept."""
    resamples, first = cfg.bootstrap_resamples, results[0]
    scores: dict[str, dict[str, MetricScore]] = {}
    for split, metrics in first.scores.items():
        refs = [list(ex.references) for ex in splits[split].examples]
        scores[split] = {}
        for metric in metrics:
            stats = ([corpus_stats(metric, (r.predictions or {})[split], refs) for r in results]
                     if metric in CORPUS else None)
            scores[split][metric] = combine_metric(metric, [r.scores[split][metric] for r in results], stats,
                                                   resamples, cfg.recipe.seed)
    probes = [_merge_probe([r.probes[j].to_json() for r in results], resamples, cfg.recipe.seed)
              for j in range(len(first.probes))]
    bias = [_merge_bias([r.bias[j].to_json() for r in results], resamples, cfg.recipe.seed)
            for j in range(len(first.bias))]
    trains = [training(r.train) for r in results if r.train is not None]
    train = dataclasses.replace(trains[0], seconds=sum(t.seconds for t in trains), tokens=sum(t.tokens for t in trains),
                                tokens_computed=sum(t.tokens_computed for t in trains),
                                prefix=merge_prefix([t.prefix for t in trains])) if trains else None
    did, why = _learned(spec, scores, first.chance or {}, sweep, results, cfg.recipe.restore_best)
    latencies = [r.latency_ms_per_item for r in results if r.latency_ms_per_item is not None]
    runs = [{"seed": s, "unit": r.unit, "train_seconds": r.train["seconds"] if r.train else None,
             "final_val_loss": r.train["val_loss"][-1] if r.train and r.train["val_loss"] else None}
            for s, r in zip(seeds, results)]
    per_class = first.per_class_f1 or {}
    return dataclasses.replace(
        first, scores=scores,
        train=train_json(train), latency_ms_per_item=sum(latencies) / len(latencies) if latencies else None,
        probes=tuple(ProbeRow.from_json(p) for p in probes), bias=tuple(BiasRow.from_json(b) for b in bias),
        learned=did, learned_reason=why, seeds=list(seeds), seed_runs=runs,
        seed_predictions={split: [(r.predictions or {})[split] for r in results] for split in first.predictions or {}},
        per_class_f1={split: _mean_f1([(r.per_class_f1 or {})[split] for r in results]) for split in per_class},
        tokens=merge_tokens([r.tokens for r in results]))


def merge_tokens(per_seed: list[dict[str, dict[str, Any]] | None]) -> dict[str, dict[str, Any]] | None:
    """Scoring's token counts summed over seeds (each seed's row counts its own units; the first, the base model's
    too); None when any seed's are unknown."""
    if any(t is None for t in per_seed):
        return None
    total: dict[str, dict[str, Any]] = {}
    for counts in per_seed:
        for stage, counted in (counts or {}).items():
            add_tokens(total, stage, counted)
    return total


def add_tokens(total: dict[str, dict[str, Any]], stage: str, counted: dict[str, Any]) -> None:
    """Add one count {data, computed, paths{path: calls}} (harness/scoring/lm.py Tokens) into total[stage]."""
    into = total.setdefault(stage, {"data": 0, "computed": 0, "paths": {}})
    into["data"] += counted["data"]
    into["computed"] += counted["computed"]
    for path, n in counted["paths"].items():
        into["paths"][path] = into["paths"].get(path, 0) + n


def merge_prefix(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The training loop's prefix tallies (harness/training/loop.py PrefixSharing.record) summed over seeds; {} when
    a unit kept before the tally has none."""
    if not all(records):
        return {}
    shared, batches = sum(r["shared_batches"] for r in records), sum(r["batches"] for r in records)
    why: dict[str, int] = {}
    for r in records:
        for reason, n in r["unshared_why"].items():
            why[reason] = why.get(reason, 0) + n
    mean = sum(r["mean_prefix_tokens"] * r["shared_batches"] for r in records) / shared if shared else 0.0
    return {"path": "shared" if shared == batches else "unshared" if not shared else "mixed",
            "shared_batches": shared, "batches": batches, "mean_prefix_tokens": round(mean, 1), "unshared_why": why}


def training(train: dict[str, Any]) -> TrainResult:
    """A row's training record as the training loop's result (its derived tokens_per_second left out)."""
    names = {f.name for f in dataclasses.fields(TrainResult)}
    return TrainResult(**{k: v for k, v in train.items() if k in names})


def train_json(train: TrainResult | None) -> dict[str, Any] | None:
    """The row's training record: the loop's result and its tokens per second."""
    return dataclasses.asdict(train) | {"tokens_per_second": train.tokens_per_second} if train else None


def _mean_f1(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Each label's F1 averaged over seeds: their mean is the macro F1 over seeds, as the leaderboard shows it."""
    return {label: sum(f[label] for f in per_seed) / len(per_seed) for label in per_seed[0]}


def _learned(spec: BenchmarkSpec, scores: dict[str, dict[str, MetricScore]], chances: dict[str, dict[str, Any]],
             sweep: list[dict[str, Any]], results: list[BenchmarkRow],
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
        why += "; " + what_to_try(sweep, first.learning_rate, len(first.train["train_loss"]) if first.train else None)
    return did, f"mean over {len(results)} seeds: {why}"


def _mean_validation(results: list[BenchmarkRow], restore_best: bool) -> float | None:
    """The mean over seeds of the kept weights' validation metric, where training measured it for every seed."""
    values = [kept_value(r.train, restore_best, "val_metric") for r in results if r.train]
    found = [v for v in values if v is not None]
    return sum(found) / len(found) if found and len(found) == len(results) else None


def _seed_counts(reports: list[dict[str, Any]], counts: tuple[str, ...]) -> dict[str, Any]:
    """One seed's transition counts and McNemar p describe that seed's tuned model, not the candidate. Over seeds
    each count is the mean over seeds (each seed's kept beside it); McNemar's p, a test of one seed's items, gives
    way to the seed-aware interval of the change (None here, each seed's p kept)."""
    out: dict[str, Any] = {k: sum(r[k] for r in reports) / len(reports) for k in counts}
    out |= {f"{k}_per_seed": [r[k] for r in reports] for k in (*counts, "mcnemar_p")}
    return out | {"mcnemar_p": None}


def _merge_probe(reports: list[dict[str, Any]], resamples: int, seed: int) -> dict[str, Any]:
    """Forgetting over seeds: the base model's answers are shared, the tuned model's differ by seed."""
    before = reports[0]["per_item"]["before"]
    afters = [r["per_item"]["after"] for r in reports]
    forgetting = combine_change([[b - a for b, a in zip(before, after)] for after in afters], resamples, seed)
    after = combine_change(afters, resamples, seed)
    return reports[0] | _seed_counts(reports, ("forgotten", "gained")) | {
        "forgetting": forgetting, "after": after, "most_forgotten": _most_forgotten(reports, before, afters),
        "per_item": {"before": before, "after": afters[0], "after_per_seed": afters}}


def _most_forgotten(reports: list[dict[str, Any]], before: list[int], afters: list[list[int]]) -> list[dict[str, Any]]:
    """The items most seeds forgot (counted from every seed's per-item answers), then the largest mean margin drop
    over the seeds that listed them: each seed lists only its own ten worst (harness/scoring/probes.py). An item
    is shown as the seed that dropped it most did."""
    if any("item" not in e for r in reports for e in r["most_forgotten"]):
        return reports[0]["most_forgotten"]  # probe units kept before items were numbered (Dec 2026): one seed's
    worst: dict[int, dict[str, Any]] = {}
    drops: dict[int, list[float]] = {}
    for s, report in enumerate(reports):
        for entry in report["most_forgotten"]:
            i = entry["item"]
            drop = entry["margin_before"] - entry["margin_after"]
            drops.setdefault(i, []).append(drop)
            if i not in worst or drop > worst[i]["margin_before"] - worst[i]["margin_after"]:
                worst[i] = entry | {"seed_index": s}
    forgot = {i: sum(before[i] and not after[i] for after in afters) for i in worst}
    order = sorted(worst, key=lambda i: (-forgot[i], -sum(drops[i]) / len(drops[i]), i))
    return [worst[i] | {"forgotten_by": forgot[i], "seeds": len(afters)} for i in order[:10]]


def _merge_bias(reports: list[dict[str, Any]], resamples: int, seed: int) -> dict[str, Any]:
    before = reports[0]["per_pair"]["before"]
    afters = [r["per_pair"]["after"] for r in reports]
    change = combine_change([[a - b for a, b in zip(after, before)] for after in afters], resamples, seed)
    return reports[0] | _seed_counts(reports, ("new_flips", "vanished_flips")) | {
        "change": change, "flip_rate_after": combine_change(afters, resamples, seed),
        "per_pair": {"before": before, "after": afters[0], "after_per_seed": afters}}
