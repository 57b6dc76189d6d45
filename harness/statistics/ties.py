"""Tie groups for the leaderboards: which candidates the test data cannot tell apart on a benchmark's main metric.

The rule (RULE, printed under every leaderboard): candidates are sorted best first by the main metric on test;
the first one leads group 1; each next candidate joins the current group when its paired difference from that
group's leader is not significant at ALPHA, and otherwise leads a new group. The test is harness.statistics.paired's
paired_difference on the stored per-item scores (McNemar exact for 0/1 scores, null-shifted paired bootstrap
otherwise), two-sided, with no multiplicity correction. Corpus metrics (BLEU, chrF, macro-F1) are compared
on what results.json stores per item (sentence-level scores, or correctness for macro-F1), since the
references that would recompute the corpus score are not stored; the note says so whenever that happens.

Computed once, when the run is finished (harness/results/finish.py), and stored in results.json (`tie_groups`):
renderers read them and never recompute them. Inputs are results.json-shaped dicts, so a stored version-1 run
(which has none) gets them on load the same way.
"""
from __future__ import annotations

import math
from typing import Any

from harness.errors import ConfigError, DataError
from harness.results.model import TieGroup
from harness.statistics.paired import higher_is_better, paired_difference
from harness.statistics.seeds import is_seeded, paired_difference_seeds

ALPHA = 0.05
RULE = (f"Tie groups: per benchmark, candidates sorted best first by the main metric on test; a candidate joins "
        f"the group of the candidate leading the group above it when their paired difference on the same items "
        f"is not significant at {ALPHA:g} (two-sided; McNemar exact for 0/1 scores, paired bootstrap otherwise, "
        f"the seed-aware t test when a side has several training seeds; no multiplicity correction). Same group "
        f"= these test items (and seeds) cannot tell them apart.")


def main_metrics(results: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(benchmark, main metric, other metrics) in the order each benchmark declares them. The main metric is
    the one the run's generalisation gap was computed on (the benchmark's `main_metric:`), else the first."""
    seen: dict[str, list[str]] = {}
    for c in results.get("candidates", []):
        for b in c.get("benchmarks", []):
            names = list((b.get("scores") or {}).get("test") or {})
            if names and b["benchmark"] not in seen:
                main = (b.get("generalisation") or {}).get("metric")
                seen[b["benchmark"]] = [main] + [n for n in names if n != main] if main in names else names
    return [(bench, names[0], names[1:]) for bench, names in seen.items()]


def _scored(results: dict[str, Any], bench: str, metric: str) -> list[tuple[str, dict[str, Any], str | None]]:
    """(candidate, test entry, test data hash) for every candidate with a finite main metric on test."""
    out: list[tuple[str, dict[str, Any], str | None]] = []
    for c in results.get("candidates", []):
        b = next((x for x in c.get("benchmarks", []) if x.get("benchmark") == bench), None)
        if b is None or b.get("status") != "ok":
            continue
        entry = ((b.get("scores") or {}).get("test") or {}).get(metric)
        value = (entry or {}).get("value")
        if entry is not None and isinstance(value, (int, float)) and math.isfinite(value):
            out.append((c["name"], entry, (b.get("data_sha256") or {}).get("test")))
    return out


def _settings(results: dict[str, Any]) -> tuple[int, int]:
    """The run's own bootstrap resamples and seed, so a report agrees with the run's intervals."""
    config = results.get("config") or {}
    return int(config.get("bootstrap_resamples") or 1000), int((config.get("recipe") or {}).get("seed") or 0)


def _significant(metric: str, leader: tuple[str, dict[str, Any], str | None],
                 other: tuple[str, dict[str, Any], str | None], resamples: int, seed: int) -> tuple[bool, str, str]:
    """(differs significantly, why it could not be tested or "", what the test compared)."""
    if other[2] and leader[2] and other[2] != leader[2]:
        return True, f"{other[0]} was scored on other test data than {leader[0]}: not paired, own group", ""
    try:
        if is_seeded(leader[1]) or is_seeded(other[1]):  # several training seeds: count their variance too
            res = paired_difference_seeds(metric, leader[1], other[1], resamples, seed)
        else:
            res = paired_difference(metric, leader[1].get("per_item") or [], other[1].get("per_item") or [],
                                    resamples, seed)
    except (DataError, ValueError) as err:
        return True, f"{other[0]} vs {leader[0]}: not paired ({err}), own group", ""
    return res["p_value"] < ALPHA, "", res["test"].split(";")[0]


def tie_groups(results: dict[str, Any], bench: str, metric: str) -> TieGroup:
    scored = _scored(results, bench, metric)
    try:
        sign = 1 if higher_is_better(metric) else -1
    except ConfigError:  # a stored run scored with a metric this version no longer registers
        return TieGroup(bench, metric, [], {}, [f"{metric}: no longer a registered metric, so no direction to rank"])
    scored.sort(key=lambda s: -sign * s[1]["value"])  # stable: equal values keep the results' order
    resamples, seed = _settings(results)
    group: dict[str, int] = {}
    notes: list[str] = []
    basis = ""
    leader = scored[0] if scored else None
    for item in scored:
        if item is leader:
            group[item[0]] = 1
            continue
        assert leader is not None
        differs, why, compared = _significant(metric, leader, item, resamples, seed)
        notes += [why] if why else []
        if compared.startswith("NOT"):  # "NOT corpus bleu (...): mean of sentence-level bleu"
            basis = f"{metric}: groups compare the {compared.split(': ', 1)[-1]}, not the {metric} shown"
        if differs:
            leader, group[item[0]] = item, group[leader[0]] + 1
        else:
            group[item[0]] = group[leader[0]]
    return TieGroup(bench, metric, [s[0] for s in scored], group, [basis] * bool(basis) + notes)


def all_tie_groups(results: dict[str, Any]) -> list[TieGroup]:
    """One TieGroups per benchmark, in the leaderboards' column order."""
    return [tie_groups(results, bench, metric) for bench, metric, _ in main_metrics(results)]
