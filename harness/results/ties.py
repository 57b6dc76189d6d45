"""Tie groups for the leaderboards: which candidates the test data cannot tell apart on a benchmark's main metric.

The rule (RULE, printed under every leaderboard): candidates are sorted best first by the main metric on test;
the first one leads group 1; each next candidate joins the current group when its paired difference from that
group's leader is not significant at ALPHA, and otherwise leads a new group. The p-values are Holm-adjusted
(step-down) over every pair of the benchmark's candidates, so equal candidates are split in at most ALPHA of
bake-offs however many there are (the family-wise rate). Without a correction 4 equal candidates were split in
15.2% of bake-offs; with Holm over only the leader's own comparisons, 5.7-6.3%: the leader is the best of the
sample, chosen by the data, so its comparisons are not a fixed family. The test is
harness.statistics.paired's paired_difference on the stored per-item scores (McNemar exact for 0/1 scores,
null-shifted paired bootstrap otherwise), two-sided, or the seed-aware t test (harness/statistics/seeds.py) when a
side has several training seeds. Corpus metrics (BLEU, chrF, macro-F1) are compared on what results.json stores
per item (sentence-level scores, or correctness for macro-F1), since the references that would recompute the
corpus score are not stored; the note says so whenever that happens.

Computed once, when the run is finished (harness/results/finish.py), and stored in results.json (`tie_groups`):
renderers read them and never recompute them. Inputs are results.json-shaped dicts, so a stored version-1 run
(which has none) gets them on load the same way.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from harness.errors import ConfigError, DataError
from harness.results.model import MetricScore, TieGroup
from harness.scoring.metrics import higher_is_better
from harness.statistics.paired import holm_adjusted, paired_difference
from harness.statistics.seeds import is_seeded, paired_difference_seeds

ALPHA = 0.05
RULE = (f"Tie groups: per benchmark, candidates sorted best first by the main metric on test; a candidate joins "
        f"the group of the candidate leading the group above it when their paired difference on the same items "
        f"is not significant at {ALPHA:g}, Holm-adjusted over every pair of candidates (two-sided; McNemar exact "
        f"for 0/1 scores, paired bootstrap otherwise, the seed-aware t test when a side has several training "
        f"seeds). Same group = these test items (and seeds) cannot tell them apart; equal candidates are split in at "
        f"most {ALPHA:g} of runs.")


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


def _scored(results: dict[str, Any], bench: str, metric: str) -> list[tuple[str, MetricScore, str | None]]:
    """(candidate, test entry, test data hash) for every candidate with a finite main metric on test."""
    out: list[tuple[str, MetricScore, str | None]] = []
    for c in results.get("candidates", []):
        b = next((x for x in c.get("benchmarks", []) if x.get("benchmark") == bench), None)
        if b is None or b.get("status") != "ok":
            continue
        entry = ((b.get("scores") or {}).get("test") or {}).get(metric)
        value = (entry or {}).get("value")
        if entry is not None and isinstance(value, (int, float)) and math.isfinite(value):
            out.append((c["name"], MetricScore.from_json(entry), (b.get("data_sha256") or {}).get("test")))
    return out


def _settings(results: dict[str, Any]) -> tuple[int, int]:
    """The run's own bootstrap resamples and seed, so a report agrees with the run's intervals."""
    config = results.get("config") or {}
    return int(config.get("bootstrap_resamples") or 1000), int((config.get("recipe") or {}).get("seed") or 0)


def _p_value(metric: str, leader: tuple[str, MetricScore, str | None],
             other: tuple[str, MetricScore, str | None], resamples: int, seed: int) -> tuple[float | None, str, str]:
    """(two-sided p-value, or None when the two cannot be compared; why not, or ""; what the test compared)."""
    if other[2] and leader[2] and other[2] != leader[2]:
        return None, f"{other[0]} was scored on other test data than {leader[0]}: not paired, own group", ""
    try:
        if is_seeded(leader[1]) or is_seeded(other[1]):  # several training seeds: count their variance too
            res = paired_difference_seeds(metric, leader[1], other[1], resamples, seed)
        else:
            res = paired_difference(metric, leader[1].per_item or [], other[1].per_item or [],
                                    resamples, seed)
    except (DataError, ValueError) as err:
        return None, f"{other[0]} vs {leader[0]}: not paired ({err}), own group", ""
    return res["p_value"], "", res["test"].split(";")[0]


def split(count: int, p_value: Callable[[int, int], float | None], alpha: float = ALPHA) -> list[int]:
    """The rule on `count` candidates sorted best first: each one's 1-based group. p_value(i, j) is the two-sided
    p of candidates i and j (i < j), None when they cannot be compared (j then differs from leader i). The family
    is every pair: the leader is chosen by the data (the best of the sample), so only a correction over every
    comparison it could have led keeps equal candidates together in 1 - alpha of runs."""
    p = {(i, j): p_value(i, j) for i in range(count) for j in range(i + 1, count)}
    tested = [pair for pair, value in p.items() if value is not None]
    adjusted = dict(zip(tested, holm_adjusted([p[pair] for pair in tested])))  # type: ignore[misc]
    group = [0] * count
    leader, number = 0, 1
    while leader < count:
        first = next((j for j in range(leader + 1, count) if p[leader, j] is None or adjusted[leader, j] < alpha),
                     count)
        group[leader:first] = [number] * (first - leader)
        leader, number = first, number + 1
    return group


def tie_groups(results: dict[str, Any], bench: str, metric: str) -> TieGroup:
    scored = _scored(results, bench, metric)
    try:
        sign = 1 if higher_is_better(metric) else -1
    except ConfigError:  # a stored run scored with a metric this version no longer registers
        return TieGroup(bench, metric, [], {}, [f"{metric}: no longer a registered metric, so no direction to rank"])
    scored.sort(key=lambda s: -sign * s[1].number)  # stable: equal values keep the results' order
    resamples, seed = _settings(results)
    tests: dict[tuple[int, int], tuple[float | None, str, str]] = {}

    def p_value(i: int, j: int) -> float | None:
        tests[i, j] = _p_value(metric, scored[i], scored[j], resamples, seed)
        return tests[i, j][0]

    group = split(len(scored), p_value)
    leaders = [group.index(g) for g in sorted(set(group))]
    notes = [tests[i, j][1] for i, j in zip(leaders, leaders[1:]) if tests[i, j][1]]  # why each new group began
    compared = next((c for _, _, c in tests.values() if c.startswith("NOT")), "")  # "NOT corpus bleu (...): mean of"
    basis = [f"{metric}: groups compare the {compared.split(': ', 1)[-1]}, not the {metric} shown"] if compared else []
    return TieGroup(bench, metric, [s[0] for s in scored], {s[0]: g for s, g in zip(scored, group)}, basis + notes)


def all_tie_groups(results: dict[str, Any]) -> list[TieGroup]:
    """One TieGroups per benchmark, in the leaderboards' column order."""
    return [tie_groups(results, bench, metric) for bench, metric, _ in main_metrics(results)]
