"""From the outputs of one candidate's units on one benchmark to its row of the results model (BenchmarkRow,
harness/results/model.py), and from its rows to its CandidateRow: forgetting and bias from the before/after probes,
chance and the learned rule, under several training seeds the merge into means over seeds (merge.py), the
generalisation gap and the confusion matrices against the references the run read. Pure functions of kept
records: the driver runs them, wherever the units ran."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import CandidateConfig
from harness.data.specs import BenchmarkSpec, Split
from harness.execution.compute import Context, Output, kept_value
from harness.execution.merge import add_tokens, merge, train_json, training
from harness.execution.plan import SCORED_SPLITS, BenchPlan
from harness.execution.suites import Benchmark
from harness.models.loading import ModelHandle
from harness.results.model import BenchmarkRow, BiasRow, CandidateRow, Cost, Generalisation, MetricScore, ProbeRow
from harness.scoring.bias import bias_report
from harness.scoring.chance import chance, learned, what_to_try
from harness.scoring.metrics import METRICS, confusion_matrix, scale_bound
from harness.scoring.probes import ProbeScore, forgetting_report
from harness.statistics.gap import generalisation

ZERO_SHOT_RECORD = {"learning_rate": None, "epochs": None, "train": None, "validation": None, "trainable_params": 0}


@dataclass(frozen=True)
class Bakeoff:
    """An executed bake-off before comparison and gates: each candidate's row, and what the rows are scored
    against (the references travel with the run: harness/data/references.py)."""

    run_id: str
    candidates: list[CandidateRow]
    main_metrics: dict[str, str]  # benchmark -> its main metric
    warnings: list[dict[str, Any]] = field(default_factory=list)  # data lint findings that did not stop the run
    references: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # benchmark -> split -> items
    device_seconds: dict[str, float] = field(default_factory=dict)  # unit id -> its measured wall time on its
    # device, kept units included (a device-hours budget sums them over the rounds: harness/results/rounds.py)
    devices: tuple[str, ...] = ()  # the devices they ran on (cpu, cuda, mps)


def assemble(bp: BenchPlan, out: dict[str, Output], ctx: Context, folder: Callable[[str], Path | None],
             latency_ms: float | None = None, latency_conditions: dict[str, Any] | None = None) -> BenchmarkRow:
    """The benchmark's row, with the chosen setting's parameter counts and its latency measured under fixed
    conditions (harness/execution/latency.py). `folder(key)`: where a tuned setting is kept."""
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
    rows = [_one_seed(bp, s, out, ctx, spec, splits, chosen[s], sweep, _folder(folder, keys[s]))
            for s in range(len(chosen))]
    row = rows[0] if len(rows) == 1 else merge(rows, list(bp.seeds), spec, splits, cfg, sweep)
    row = _with(row, params=chosen[-1]["params"], trainable_params=chosen[-1]["trainable_params"],
                latency_ms_per_item=latency_ms, latency_conditions=latency_conditions)
    return _compared(row, bench, cfg.bootstrap_resamples, cfg.recipe.seed)


def _with(row: BenchmarkRow, **changes: Any) -> BenchmarkRow:
    import dataclasses

    return dataclasses.replace(row, **changes)


def _compared(row: BenchmarkRow, bench: Benchmark, resamples: int, seed: int) -> BenchmarkRow:
    """The row with its generalisation gap (test against shifted) and, for classification, its confusion matrices:
    both against the references of the items this run scored."""
    main, references = bench.spec.main_metric, bench.references()
    gap = generalisation(row, main, resamples, seed, references,
                         bound=scale_bound(main) if main in METRICS else None)
    confusion = confusions(row.seed_predictions or row.predictions or {}, references, row.data_sha256) or None \
        if row.task == "classification" else None
    return _with(row, generalisation=Generalisation.from_json(gap), confusion=confusion)


def not_run(spec: BenchmarkSpec, status: str, reason: str) -> BenchmarkRow:
    """The row of a benchmark that was not applicable to the candidate (n/a) or whose units failed."""
    return BenchmarkRow(benchmark=spec.name, version=spec.version, task=spec.task, status=status, reason=reason,
                        predictions={}, per_class_f1={}, sweep=[], files={}, chance={}, learned_reason="", seeds=[],
                        seed_runs=[], seed_predictions={}, generalisation=Generalisation.from_json({}))


def candidate_row(cand: CandidateConfig, handle: ModelHandle | None, benches: list[BenchmarkRow],
                  records: list[dict[str, Any]]) -> CandidateRow:
    """A candidate's row from its benchmark rows and its units' records (memory and GPU peaks, GPU-seconds)."""
    is_reference = cand.zero_shot and not cand.adapter  # an adapter the user brings is a candidate, not a reference
    benches = [_with(b, zero_shot=b.zero_shot and is_reference) for b in benches]
    failed = [b for b in benches if b.status == "failed"]
    trains = [b.train for b in benches if b.train]
    timed = next((b for b in benches if b.latency_ms_per_item is not None), None)  # the first benchmark's
    gpu = [r for r in records if r.get("gpu_seconds") is not None]
    cost = Cost(train_seconds=sum((t["seconds"] for t in trains), 0.0),
                train_tokens_per_second=trains[-1]["tokens_per_second"] if trains else 0.0,
                latency_ms_per_item=timed.latency_ms_per_item if timed else None,
                latency_conditions=timed.latency_conditions if timed else None,
                peak_rss_mb=max((r.get("peak_rss_mb") or 0.0 for r in records), default=0.0),
                peak_gpu_mb=max((r.get("peak_gpu_mb") or 0.0 for r in gpu), default=None) if gpu else None,
                gpu_seconds=sum(r["gpu_seconds"] for r in gpu) if gpu else None, **token_costs(benches))
    ok = [b for b in benches if b.status == "ok"]
    return CandidateRow(
        name=cand.name, model=cand.model, status="failed" if failed else "ok",
        reason=failed[0].reason if failed else "", source=handle.source if handle else None,
        path=handle.path if handle else None, architecture=handle.architecture if handle else None,
        kind=handle.kind if handle else None, revision=handle.revision if handle else None,
        weights_sha=handle.weights_hash if handle else None,
        params=max((b.params or 0 for b in ok), default=0),  # the largest, in any order (an encoder's head)
        trainable_params=max((b.trainable_params or 0 for b in ok), default=0), zero_shot=is_reference,
        did_not_learn=[b.benchmark for b in benches if b.learned is False], cost=cost, benchmarks=tuple(benches),
        adapter=cand.adapter)


def token_costs(benches: list[BenchmarkRow]) -> dict[str, Any]:
    """The cost column's tokens in the data and computed, for training (the kept settings' rows, every seed) and
    scoring (every stage), summed over the benchmarks that ran; None where a unit kept before they were recorded
    has none (a training record without its `prefix` tally, a scoring record without `tokens`)."""
    ok = [b for b in benches if b.status == "ok"]
    trains = [b.train for b in ok if b.train]
    counted = all(t.get("prefix") for t in trains)
    scored = [b.tokens for b in ok]
    stages = [t for found in scored if found for t in found.values()]
    known = all(found is not None for found in scored)
    return {"train_tokens_in_data": sum(t["tokens"] for t in trains) if trains and counted else None,
            "train_tokens_computed": sum(t["tokens_computed"] for t in trains) if trains and counted else None,
            "scoring_tokens_in_data": sum(t["data"] for t in stages) if stages and known else None,
            "scoring_tokens_computed": sum(t["computed"] for t in stages) if stages and known else None}


def _one_seed(bp: BenchPlan, s: int, out: dict[str, Output], ctx: Context, spec: BenchmarkSpec,
              splits: dict[str, Split], chosen: dict[str, Any], sweep: list[dict[str, Any]],
              unit: Path | None) -> BenchmarkRow:
    recipe = bp.recipes[s]
    seed = recipe.seed
    values, predictions, per_class, latency = {}, {}, {}, None
    for split, uid in bp.scores[s].items():
        rec = out[uid].record
        values[split] = {m: MetricScore.from_json(v) for m, v in rec["scores"].items()}
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
    chances, did_learn, why = learning(spec, splits, values, chosen, sweep, recipe.restore_best)
    return BenchmarkRow(
        benchmark=spec.name, version=spec.version, task=spec.task, status="ok", reason="",
        learning_rate=chosen["learning_rate"], data_sha256={name: sp.sha256 for name, sp in splits.items()},
        scores=values,
        train=train_json(training(chosen["train"])) if chosen["train"] else None, latency_ms_per_item=latency,
        probes=tuple(ProbeRow.from_json(r) for r in reports), predictions=predictions, per_class_f1=per_class,
        sweep=sweep, bias=tuple(BiasRow.from_json(r) for r in bias_reports),
        files={"spec": spec.path, **{name: sp.path for name, sp in splits.items()}},
        unit=str(unit) if unit else None, chance=chances, learned=did_learn, learned_reason=why,
        zero_shot=bp.zero_shot, epochs=chosen["epochs"], seeds=[] if bp.zero_shot else [seed], seed_runs=[],
        seed_predictions={}, tokens=scoring_tokens(bp, s, out))


def scoring_tokens(bp: BenchPlan, s: int, out: dict[str, Output]) -> dict[str, dict[str, Any]] | None:
    """stage (score, probe, bias) -> {data, computed, paths}: the tokens of seed `s`'s scored splits and its tuned
    model's probes and bias pairs, and with the first seed (every seed shares them) the base model's. A unit whose
    scorer counts none (a paraphrase or lm-eval task probe) adds nothing; None when a unit kept before tokens were
    recorded has no count."""
    units = [("score", uid) for uid in bp.scores[s].values()] + [("probe", uid) for uid in bp.probes[s].values()] + \
        [("bias", uid) for uid in bp.bias[s].values()]
    if s == 0:
        units += [("probe", uid) for uid in bp.base_probes.values()] + [("bias", uid) for uid in bp.base_bias.values()]
    total: dict[str, dict[str, Any]] = {}
    for stage, uid in units:
        counted = out[uid].record.get("tokens")
        if counted is None:
            return None
        if counted["paths"]:
            add_tokens(total, stage, counted)
    return total


def _folder(folder: Callable[[str], Path | None], key: str | None) -> Path | None:
    return folder(key) if key else None


def _probe_score(rec: dict[str, Any]) -> ProbeScore:
    return ProbeScore(rec["correct"], rec["margin"], rec["correct_norm"], rec["outputs"])


def learning(spec: BenchmarkSpec, splits: dict[str, Split], scores: dict[str, dict[str, MetricScore]],
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




def confusions(predictions: dict[str, Any], references: dict[str, Any],
               data_sha256: dict[str, str]) -> dict[str, dict[str, Any]]:
    """split -> confusion matrix of a classification benchmark's predictions against the references of the same
    data (the hash must match: a split whose items differ is left out). Under several training seeds
    (`predictions[split]` a list per seed) the counts are summed over the seeds, and `seeds` says how many."""
    out = {}
    for split, preds in predictions.items():
        ref = references.get(split) or {}
        if ref.get("items") is None or ref.get("data_sha256") != data_sha256.get(split):
            continue
        per_seed = preds if preds and isinstance(preds[0], list) else [preds]
        matrix = confusion_matrix([p for seed in per_seed for p in seed], list(ref["items"]) * len(per_seed))
        out[split] = matrix | ({"seeds": len(per_seed)} if len(per_seed) > 1 else {})
    return out
