"""From the outputs of one candidate's units on one benchmark to its BenchmarkResult: forgetting and bias from
the before/after probes, chance and the learned rule, and under several training seeds the merge into means
over seeds with seed-aware intervals (harness/statistics/seeds.py). Pure functions of kept records: the driver runs
them, wherever the units ran."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.config import BakeoffConfig
from harness.data.specs import BenchmarkSpec, Split
from harness.execution.compute import Context, Output, kept_value
from harness.execution.outcome import BenchmarkResult
from harness.execution.plan import SCORED_SPLITS, BenchPlan
from harness.scoring.bias import bias_report
from harness.scoring.chance import Chance, chance, learned, what_to_try
from harness.scoring.metrics import MetricValue, combine_metric
from harness.scoring.probes import ProbeScore, forgetting_report
from harness.statistics.seeds import combine_change
from harness.training.loop import TrainResult

ZERO_SHOT_RECORD = {"learning_rate": None, "epochs": None, "train": None, "validation": None, "trainable_params": 0}


def assemble(bp: BenchPlan, out: dict[str, Output], ctx: Context,
             folder: Callable[[str], Path | None]) -> tuple[BenchmarkResult, int, int]:
    """The result, with the chosen setting's parameter counts. `folder(key)`: where a tuned setting is kept."""
    cfg, bench = ctx.cfg, ctx.benchmark(bp.benchmark)
    spec, splits = bench.spec, bench.splits
    if bp.zero_shot:
        chosen = [ZERO_SHOT_RECORD | {"params": out[bp.select].record["params"]}]
        keys: list[str | None] = [None]
        sweep: list[dict[str, Any]] = []
    else:
        select = out[bp.select].record
        keys = [out[ts[select["best"]]].key for ts in bp.tunes]
        chosen, sweep = [out[ts[select["best"]]].record for ts in bp.tunes], select["sweep"]
    results = [_one_seed(bp, s, out, ctx, spec, splits, chosen[s], sweep, _folder(folder, keys[s]))
               for s in range(len(chosen))]
    result = results[0] if len(results) == 1 else merge(results, list(bp.seeds), spec, splits, cfg, sweep)
    return result, chosen[-1]["params"], chosen[-1]["trainable_params"]


def _one_seed(bp: BenchPlan, s: int, out: dict[str, Output], ctx: Context, spec: BenchmarkSpec,
              splits: dict[str, Split], chosen: dict[str, Any], sweep: list[dict[str, Any]],
              unit: Path | None) -> BenchmarkResult:
    recipe = bp.recipes[s]
    seed = recipe.seed
    scores, predictions, per_class, latency = {}, {}, {}, None
    for split, uid in bp.scores[s].items():
        rec = out[uid].record
        scores[split] = {m: MetricValue.from_dict(v) for m, v in rec["scores"].items()}
        predictions[split] = rec["predictions"]
        if rec["per_class_f1"] is not None:
            per_class[split] = rec["per_class_f1"]
        latency = latency if latency is not None else rec["latency_ms"]
    reports = []
    for name, uid in bp.base_probes.items():
        p, was = ctx.suites.probes[name], _probe_score(out[uid].record)
        after = _probe_score(out[bp.probes[s][name]].record) if name in bp.probes[s] else was  # untuned: no "after"
        reports.append(forgetting_report(p.spec, p.items, was, after, p.digest)
                       | {"files": {"spec": p.spec.path, "data": p.spec.data}})
    bias_reports = []
    for name, uid in bp.base_bias.items():
        b, pairs_before = ctx.suites.bias[name], out[uid].record
        pairs_after = out[bp.bias[s][name]].record if name in bp.bias[s] else pairs_before
        bias_reports.append({"probe": b.name, "version": b.spec.version, "data_sha256": b.digest,
                             "files": {"spec": b.spec.path, "data": b.spec.data},
                             **bias_report(pairs_before["a"], pairs_before["b"], pairs_after["a"], pairs_after["b"],
                                           b.pairs)})
    chances, did_learn, why = learning(spec, splits, scores, chosen, sweep, recipe.restore_best)
    return BenchmarkResult(spec.name, spec.version, spec.task, "ok", "", chosen["learning_rate"],
                           {name: sp.sha256 for name, sp in splits.items()}, scores,
                           TrainResult(**chosen["train"]) if chosen["train"] else None, latency,
                           reports, predictions, per_class, sweep, bias_reports,
                           {"spec": spec.path, **{name: sp.path for name, sp in splits.items()}},
                           unit, chances, did_learn, why, bp.zero_shot, [] if bp.zero_shot else [seed])


def _folder(folder: Callable[[str], Path | None], key: str | None) -> Path | None:
    return folder(key) if key else None


def _probe_score(rec: dict[str, Any]) -> ProbeScore:
    return ProbeScore(rec["correct"], rec["margin"], rec["correct_norm"], rec["outputs"])


def learning(spec: BenchmarkSpec, splits: dict[str, Split], scores: dict[str, dict[str, MetricValue]],
             chosen: dict[str, Any], sweep: list[dict[str, Any]],
             restore_best: bool) -> tuple[dict[str, dict[str, Any]], bool | None, str]:
    """Chance per split, and whether the candidate beats it (harness/scoring/chance.py). A zero-shot row is judged the
    same way: a base model at chance is worth knowing about too."""
    metric = spec.main_metric
    found = {s: chance(spec, splits[s], metric) for s in ("validation", *SCORED_SPLITS) if s in splits}
    chances = {s: {"value": c.value, "how": c.how} for s, c in found.items() if c is not None}
    test = scores.get("test", {}).get(metric)
    if test is None:
        return chances, None, f"no test {metric}"
    validation = chosen.get("validation")
    if validation is None and chosen.get("train"):
        validation = kept_value(chosen["train"], restore_best, "val_metric")
    did, why = learned(metric, test, found.get("test"), validation, found.get("validation"))
    if did is False and chosen.get("train") is not None:
        why += "; " + what_to_try(sweep, chosen["learning_rate"], chosen.get("epochs"))
    return chances, did, why


def merge(results: list[BenchmarkResult], seeds: list[int], spec: BenchmarkSpec, splits: dict[str, Split],
          cfg: BakeoffConfig, sweep: list[dict[str, Any]]) -> BenchmarkResult:
    """One result from per-seed results: means over seeds with seed-aware intervals, per-seed values kept."""
    from harness.statistics.paired import CORPUS, corpus_stats

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
        seed_predictions={split: [r.predictions[split] for r in results] for split in first.predictions},
        per_class_f1={split: _mean_f1([r.per_class_f1[split] for r in results]) for split in first.per_class_f1})


def _mean_f1(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Each label's F1 averaged over seeds: their mean is the macro F1 over seeds, as the leaderboard shows it."""
    return {label: sum(f[label] for f in per_seed) / len(per_seed) for label in per_seed[0]}


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
