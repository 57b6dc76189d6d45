"""Run against run (`sftbench compare A B`): per candidate, benchmark, split and metric, the paired difference of
two stored runs on the same items (harness/statistics/paired.py), with a multiplicity correction across rows.

Corpus metrics are recomputed from each run's stored predictions and references; a row that cannot show the
metric it names (an old run without references; loss without token counts) carries `omitted` and no numbers.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from harness.data.references import stored_references
from harness.errors import DataError
from harness.models.hardware import differences, latency_comparable
from harness.results.model import BenchmarkRow, MetricScore
from harness.scoring.metrics import higher_is_better
from harness.statistics.paired import (
    CORPUS,
    PROBE_METRIC,
    UNWEIGHTED,
    benjamini_hochberg,
    corpus_stats,
    holm,
    paired_difference,
    seed_stats,
)
from harness.statistics.seeds import is_seeded, paired_difference_seeds


def _corpus_side(results: dict[str, Any], cand: str, bench: BenchmarkRow, split: str, metric: str,
                 references: dict[tuple[str, str], list[list[str]]] | None) -> tuple[Any, str]:
    """`corpus_stats` for one run's side of a corpus metric, from its stored predictions and references (or the
    `references` passed in); or (None, why not)."""

    key, run = (bench.benchmark, split), results.get("run_id", "?")
    refs, why = ((references[key], "") if references and key in references
                 else stored_references(results, *key, bench.data_sha256.get(split)))
    if refs is None:
        return None, why
    preds = (bench.predictions or {}).get(split)
    if preds is None:
        return None, f"run {run} stores no predictions of {cand} for {key[0]}/{split}"
    if len(preds) != len(refs):
        return None, (f"run {run} stores {len(preds)} predictions of {cand} but {len(refs)} references for "
                      f"{key[0]}/{split}")
    return corpus_stats(metric, preds, refs), ""


def _metric_row(ra: dict[str, Any], rb: dict[str, Any], cand: str, ba: BenchmarkRow, bb: BenchmarkRow, split: str,
                metric: str, resamples: int, seed: int,
                references: dict[tuple[str, str], list[list[str]]] | None) -> dict[str, Any]:
    """One metric of one split compared, or the row with `omitted` saying why it cannot be: a number is only ever
    shown under the name of the metric it is, so `a` and `b` must be the values the runs themselves report."""
    ea, eb = ba.scores[split][metric], bb.scores[split][metric]
    row = {"candidate": cand, "benchmark": ba.benchmark, "split": split, "metric": metric,
           "higher_is_better": higher_is_better(metric)}
    if metric in UNWEIGHTED:
        return row | {"omitted": f"{metric} is token-weighted and token counts are not stored; the mean of per-item "
                                 f"{metric} is another number"}
    stats: tuple[Any, Any] = (None, None)
    if metric in CORPUS:
        (sa, why_a), (sb, why_b) = (_corpus_side(ra, cand, ba, split, metric, references),
                                    _corpus_side(rb, cand, bb, split, metric, references))
        if sa is None or sb is None:
            return row | {"omitted": f"corpus {metric} needs predictions and references: {why_a or why_b}"}
        stats = sa, sb
    try:
        if is_seeded(ea) or is_seeded(eb):  # several training seeds: the test counts the seed variance too
            refs = [(references or {}).get((ba.benchmark, split))
                    or stored_references(r, ba.benchmark, split, b.data_sha256.get(split))[0]
                    for r, b in ((ra, ba), (rb, bb))]
            res = paired_difference_seeds(metric, ea, eb, resamples, seed, seed_stats(metric, ba, split, refs[0]),
                                          seed_stats(metric, bb, split, refs[1]))
        else:
            res = paired_difference(metric, ea.per_item or [], eb.per_item or [], resamples, seed, *stats)
    except (DataError, ValueError) as err:
        return row | {"omitted": str(err)}
    for _side, got, entry, results in (("a", res["a"], ea, ra), ("b", res["b"], eb, rb)):
        want = entry.value
        if want is None or not abs(got - want) <= 1e-9 * max(1.0, abs(want)):
            return row | {"omitted": f"{metric} recomputed from what run {results.get('run_id', '?')} stores is "
                                     f"{got:.6g}, not the {want} it reports"}
    return row | res


def _rows_for(ra: dict[str, Any], rb: dict[str, Any], ca: dict[str, Any], cb: dict[str, Any], problems: list[str],
              resamples: int, seed: int, references: dict[tuple[str, str], list[list[str]]] | None
              ) -> Iterator[dict[str, Any]]:
    """Rows comparing one candidate across runs ra and rb: every benchmark split metric and probe both have."""
    for ba in ca["benchmarks"]:
        bb = next((b for b in cb["benchmarks"] if b["benchmark"] == ba["benchmark"]), None)
        if bb is None or ba["status"] != "ok" or bb["status"] != "ok":
            continue
        where = f"{ca['name']}/{ba['benchmark']}"
        if ba["version"] != bb["version"]:
            problems.append(f"{where}: benchmark version {ba['version']} (a) != {bb['version']} (b)")
            continue
        for split, metrics in ba["scores"].items():
            ha, hb = ba["data_sha256"].get(split), bb["data_sha256"].get(split)
            if split not in bb["scores"]:
                continue
            if not ha or ha != hb:
                problems.append(f"{where}/{split}: data sha256 {ha} (a) != {hb} (b)")
                continue
            for metric in (m for m in metrics if m in bb["scores"][split]):
                yield _metric_row(ra, rb, ca["name"], BenchmarkRow.from_json(ba), BenchmarkRow.from_json(bb), split,
                                  metric, resamples, seed, references)
        probes_b = {p["probe"]: p for p in bb.get("probes") or []}
        for pa in ba.get("probes") or []:
            pb = probes_b.get(pa["probe"])
            if pb is None:
                continue
            if (pa["version"], pa["data_sha256"]) != (pb["version"], pb["data_sha256"]):
                problems.append(f"{where}/probe {pa['probe']}: version {pa['version']} / data sha256 "
                                f"{pa['data_sha256']} (a) != version {pb['version']} / {pb['data_sha256']} (b)")
                continue
            ea, eb = _probe_entry(pa), _probe_entry(pb)
            res = (paired_difference_seeds(PROBE_METRIC, ea, eb, resamples, seed) if is_seeded(ea) or is_seeded(eb)
                   else paired_difference(PROBE_METRIC, ea.per_item, eb.per_item, resamples, seed))
            yield {"candidate": ca["name"], "benchmark": pa["probe"], "split": "after", "metric": PROBE_METRIC,
                   "higher_is_better": True, **res}


def _probe_entry(probe: dict[str, Any]) -> MetricScore:
    """A probe's after-tuning correctness as a metric: every seed's row (`after` is seed 0's alone)."""
    rows = probe["per_item"].get("after_per_seed") or [probe["per_item"]["after"]]
    seeds = [sum(r) / len(r) for r in rows]
    return MetricScore(value=sum(seeds) / len(seeds), per_item=probe["per_item"]["after"], seeds=seeds,
                       per_seed=rows if len(rows) > 1 else None)


def compare_runs(results_a: dict[str, Any], results_b: dict[str, Any], *, resamples: int = 2000, seed: int = 0,
                 alpha: float = 0.05, correction: str = "holm",
                 references: dict[tuple[str, str], list[list[str]]] | None = None) -> list[dict[str, Any]]:
    """Run a vs run b, per candidate (matched by name) x benchmark x split x metric, plus each probe's
    after-tuning correctness. `significant` applies Holm (or "bh": Benjamini-Hochberg) across the compared rows.
    Corpus metrics are recomputed from each run's stored predictions and references (`references[(benchmark,
    split)]`, when given, replaces both runs' own). A row that cannot show the metric it names (an old run
    without references; loss without token counts) has `omitted`, the reason, and no numbers.
    A benchmark or probe whose version or data hash differs between the runs raises DataError naming it."""
    if correction not in ("holm", "bh"):
        raise ValueError(f"correction must be holm or bh (got {correction!r})")
    by_name = {c["name"]: c for c in results_b["candidates"]}
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for ca in results_a["candidates"]:
        if ca["name"] in by_name:
            rows += _rows_for(results_a, results_b, ca, by_name[ca["name"]], problems, resamples, seed, references)
    if problems:
        raise DataError(f"runs {results_a['run_id']} and {results_b['run_id']} are not comparable: "
                        + "; ".join(problems))
    if not rows:
        raise DataError(f"runs {results_a['run_id']} and {results_b['run_id']} share no candidate, benchmark, split "
                        "and metric to compare")
    scales = (results_b.get("metric_scales") or {}) | (results_a.get("metric_scales") or {})
    for row in rows:  # a metric a spec declares: the factor the reports show it with (harness/results/model.py)
        if row.get("metric") in scales:
            row["scale"] = scales[row["metric"]]
    compared = [r for r in rows if "omitted" not in r]
    flags = (holm if correction == "holm" else benjamini_hochberg)([r["p_value"] for r in compared], alpha)
    for row, flag in zip(compared, flags):
        row["significant"] = flag
    return rows




def environment_notes(results_a: dict[str, Any], results_b: dict[str, Any]) -> list[str]:
    """What `compare` says beside the scores: whether the runs came from different hardware (bf16 and other kernels
    differ between CPUs, so scores can differ in their last digits), and per candidate in both runs whether its
    latencies can be compared (the same measuring conditions: harness/execution/latency.py) and, if so, their
    ratio."""
    ha, hb = results_a.get("hardware"), results_b.get("hardware")
    ids = results_a.get("run_id", "a"), results_b.get("run_id", "b")
    out = []
    if not ha or not hb:
        missing = " and ".join(run for run, hw in zip(ids, (ha, hb)) if not hw)
        out.append(f"hardware: run {missing} records none (written before sftbench recorded it): whether the runs "
                   "came from the same machine is unknown")
    elif differences(ha, hb):
        out.append(f"the runs came from different hardware ({'; '.join(differences(ha, hb))}): scores computed "
                   "with bf16 or other machine-specific kernels can differ in their last digits, and costs differ")
    by_name = {c["name"]: c for c in results_b["candidates"]}
    for ca in results_a["candidates"]:
        cb = by_name.get(ca["name"])
        if cb is None:
            continue
        (la, ka), (lb, kb) = ((c["cost"].get("latency_ms_per_item"), c["cost"].get("latency_conditions"))
                              for c in (ca, cb))
        if la is None or lb is None:
            continue
        why = latency_comparable(ka, kb)
        out.append(f"latency of {ca['name']} not compared: {why}" if why else
                   f"latency of {ca['name']}: a {la:.1f} vs b {lb:.1f} ms/item (a/b {la / lb:.2f}), measured under "
                   f"the same conditions")
    return out
