"""Baseline gates: a candidate against the promoted baseline on the same items with a margin, and the verdict in the
gate's mode: no_regression (its regression p-value adjusted across the candidate's no_regression gates) or
non_inferior (non-inferiority shown)."""
from __future__ import annotations

import math
from typing import Any

from harness.data.references import stored_references
from harness.errors import DataError
from harness.gates.lookup import Verdict, as_row, closed, lookup
from harness.gates.power import baseline_detectable, effect_text
from harness.models.hardware import latency_comparable
from harness.results.model import CandidateRow
from harness.scoring.metrics import higher_is_better
from harness.statistics.paired import (
    CORPUS,
    CORRECTION_NAMES,
    bench_stats,
    non_inferiority,
    p_text,
    seed_stats,
)
from harness.statistics.seeds import is_seeded, non_inferiority_seeds, per_seed_items, too_few_seeds


def baseline_test(candidate: CandidateRow | dict[str, Any], metric: str, baseline: tuple[dict[str, Any], str] | None,
                  margin: float = 0.0, alpha: float = 0.05, *, resamples: int = 2000, seed: int = 0,
                  references: dict[tuple[str, str], list[list[str]]] | None = None
                  ) -> tuple[dict[str, Any] | None, str]:
    """`non_inferiority` of `candidate` against the promoted baseline on `benchmark.metric[.split]`, plus `metric` and
    `source` (which baseline); or (None, why) when there is no baseline, either side lacks the metric, or the
    benchmark version or the split's data hash differs from the baseline's. Corpus metrics are recomputed from both
    sides' predictions and the baseline run's stored references (the data hashes match: they are the candidate's
    too), unless `references` is given; with neither, the per-item stand-in is tested and its `test` says NOT."""
    if baseline is None:
        return None, "no promoted baseline in the store; promote one with `sftbench promote RUN_ID`"
    base_results, base_name = baseline
    stored = next((c for c in base_results["candidates"] if c["name"] == base_name), None)
    if stored is None:
        return None, f"baseline run {base_results['run_id']} has no candidate '{base_name}'"
    cand, base = as_row(candidate), as_row(stored)
    if metric.split(".")[1] == "latency_ms_per_item":
        return None, latency_refusal(cand, base, metric.split(".")[0], base_name)
    (_, found, why), (_, base_found, base_why) = lookup(cand, metric), lookup(base, metric)
    if found is None or base_found is None:
        return None, why or f"baseline {base_name}: {base_why}"
    bench_name, metric_name = metric.split(".")[:2]
    split = metric.split(".")[2] if metric.count(".") == 2 else "test"
    bench, base_bench = cand.benchmark(bench_name), base.benchmark(bench_name)
    assert bench is not None and base_bench is not None  # lookup found the metric in both
    entry, base_entry = found, base_found
    if bench.version != base_bench.version:
        return None, f"{bench_name} version {bench.version} differs from the baseline's {base_bench.version}"
    here, there = bench.data_sha256.get(split), base_bench.data_sha256.get(split)
    if not here or here != there:
        return None, f"{bench_name}/{split} data sha256 {here} differs from the baseline's {there}"
    if references is None and metric_name in CORPUS:  # same items, so the baseline run's references are both sides'
        items = stored_references(base_results, bench_name, split, there)[0]
        references = {(bench_name, split): items} if items is not None else None
    try:
        if is_seeded(entry) or is_seeded(base_entry):  # several training seeds on either side: seed-aware test
            few = too_few_seeds([len(per_seed_items(entry)), len(per_seed_items(base_entry))])
            if few:  # fail closed: a gate that blocks only on evidence could block nothing (seeds.py)
                return None, f"{metric} against {base_name}: {few}"
            refs = (references or {}).get((bench_name, split))
            return non_inferiority_seeds(entry, base_entry, margin, alpha, higher_is_better(metric_name),
                                         metric=metric_name, resamples=resamples, seed=seed,
                                         candidate_stats=seed_stats(metric_name, bench, split, refs),
                                         baseline_stats=seed_stats(metric_name, base_bench, split, refs)) | {
                "metric": metric_name, "source": f"{base_name} of run {base_results['run_id']}"}, ""
        res = non_inferiority(entry.per_item or [], base_entry.per_item or [], margin, alpha,
                              higher_is_better(metric_name), metric=metric_name, resamples=resamples, seed=seed,
                              candidate_stats=bench_stats(metric_name, bench, split, references),
                              baseline_stats=bench_stats(metric_name, base_bench, split, references))
    except DataError as err:
        return None, err.message
    return res | {"metric": metric_name, "source": f"{base_name} of run {base_results['run_id']}"}, ""


def latency_refusal(candidate: CandidateRow, base: CandidateRow, bench_name: str, base_name: str) -> str:
    """Why a baseline gate does not compare latencies: measured under different conditions (which), or, under the
    same ones, a single figure per run with no per-item values to test; a cost gate is the way to bound it."""
    sides = [candidate.benchmark(bench_name), base.benchmark(bench_name)]
    figures = [b.latency_ms_per_item if b else None for b in sides]
    how = "bound it with a cost gate ({cost: latency_ms_per_item, max: ...})"
    if None in figures:
        return f"latency_ms_per_item on {bench_name}: not measured on both sides; {how}"
    why = latency_comparable(*(b.latency_conditions if b else None for b in sides))
    if why:
        return f"latency_ms_per_item on {bench_name} not compared with {base_name}: {why}; {how}"
    return (f"latency_ms_per_item on {bench_name}: {figures[0]:.1f} against {base_name}'s {figures[1]:.1f} ms/item, "
            f"under the same conditions, but one figure per run has no per-item values for a test; {how}")


def baseline_verdict(candidate: str, gate: str, res: dict[str, Any], p_adjusted: float, correction: str,
                     family: int, mode: str = "no_regression") -> Verdict:
    """The verdict of one baseline gate in `mode` (harness/config/gates.py BASELINE_MODES):
    - no_regression blocks on evidence of a drop beyond the margin: its regression p-value, adjusted across the
      candidate's `family` of no_regression gates (p_adjusted), is below alpha. A rerun of the baseline passes.
    - non_inferior passes only on evidence that any drop is within the margin (res["passed"]; not adjusted: an
      intersection-union claim). Too few items to tell fails.
    Either message ends with what the test could detect: the drop beyond the margin (no_regression) or the gain
    over -margin (non_inferior) that it decides 80% of the time, from this test's own standard error."""
    conf, alpha, resamples = f"{1 - res['alpha']:.0%}", res["alpha"], res.get("resamples", 0)
    up = higher_is_better(res["metric"])
    if mode == "non_inferior":
        passed = bool(res["passed"])
        verdict = "non-inferior" if passed else "non-inferiority not shown"
        low, limit = (res["ci_low"], -res["margin"]) if up else (res["ci_high"], res["margin"])
        p_text_ = f"p(drop beyond the margin) {p_text(res['p_value'], resamples)}, not adjusted (intersection-union)"
    else:
        passed = not p_adjusted < alpha
        verdict = "no significant regression" if passed else "significant regression"
        low, limit = (res["ci_high"], -res["margin"]) if up else (res["ci_low"], res["margin"])
        gates = f"{family} baseline gate{'s' if family != 1 else ''}"
        raw = p_text(res["p_regression"], resamples)
        # a raw p at its floor is a bound, and so is what the correction makes of it
        q = f"< {p_adjusted * (resamples + 1) / resamples:.2g}" if raw.startswith("<") else f"{p_adjusted:.4g}"
        adjusted = (f"no multiplicity correction ({gates})" if correction == "none"
                    else f"{CORRECTION_NAMES[correction]}-adjusted over {gates} {q}")
        p_text_ = f"p(regression) {raw}, {adjusted}"
    side = ("lower" if up else "upper") if mode == "non_inferior" else ("upper" if up else "lower")
    sign = "-margin" if up else "margin"
    cmp = (">" if low > limit else "<=") if side == "lower" else ("<" if low < limit else ">=")
    bound = f"{side} {conf} bound {low:+.4f} {cmp} {sign} {limit + 0.0:+.4f}"  # + 0.0: no -0.0000
    note = f" [{res['test']}]" if res["test"].startswith("NOT") or res.get("borrowed") else ""
    message = (f"{verdict}: {res['candidate']:.4f} vs {res['baseline']:.4f} ({res['source']}), "
               f"diff {res['diff']:+.4f}, {bound}, n={res['n']}; {p_text_}, alpha {alpha:g}{note}; "
               f"{_detects(res, mode, family)}")
    return Verdict(candidate, gate, passed, res["diff"], message, p_adjusted=p_adjusted, baseline=res["source"],
                   metric=res["metric"])


def _detects(res: dict[str, Any], mode: str, family: int) -> str:
    """What this test could detect, 80% of the time (harness/gates/power.py's quantiles on its own se)."""
    if res.get("se") is None:
        return "its power is unknown (no standard error recorded)"
    effect = effect_text(baseline_detectable(res["se"], res.get("df", math.inf), res["alpha"], mode,
                                             family if mode == "no_regression" else 1), res["metric"])
    seeds = res.get("seeds")
    size = f"{res['n']} items" + (f" and {seeds[0]} vs {seeds[1]} seeds" if seeds else "")
    if mode == "non_inferior":
        return (f"with {size} this gate shows non-inferiority 80% of the time when the true gain exceeds -margin "
                f"by {effect}")
    return f"with {size} this gate detects a drop beyond the margin by {effect} 80% of the time"


def check_vs_baseline(candidate: CandidateRow | dict[str, Any], metric: str,
                      baseline: tuple[dict[str, Any], str] | None, margin: float = 0.0, alpha: float = 0.05,
                      name: str = "", *, resamples: int = 2000, seed: int = 0,
                      references: dict[tuple[str, str], list[list[str]]] | None = None,
                      mode: str = "no_regression") -> Verdict:
    """One baseline gate on its own (a family of one: nothing to adjust); harness/gates/check.py `check` runs a
    candidate's baseline gates together and adjusts their p-values."""
    name = name or f"{metric} vs baseline (margin {margin:g})"
    res, why = baseline_test(candidate, metric, baseline, margin, alpha, resamples=resamples, seed=seed,
                             references=references)
    row = as_row(candidate)
    if res is None:
        return closed(row.name, name, why)
    return baseline_verdict(row.name, name, res, res["p_regression"], "none", 1, mode)
