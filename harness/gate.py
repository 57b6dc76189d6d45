"""Gates: a verdict per candidate and gate, failing closed.

A gate names `benchmark.metric[.split]` (split defaults to `test`) and a threshold, checked on the
point estimate or on an interval bound (`on: ci_low`). A missing metric, a failed candidate or a
benchmark that was not applicable fails the gate with the reason; nothing passes silently.
The bake-off passes when at least one candidate passes every gate: that candidate can ship.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

from harness.config import GateConfig

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class Verdict:
    candidate: str
    gate: str
    passed: bool
    observed: float | None
    message: str


def lookup(candidate: dict[str, Any], metric: str) -> tuple[float | None, dict[str, Any] | None, str]:
    """Find `benchmark.metric[.split]` in a candidate's results dict; (None, None, why) when absent."""
    parts = metric.split(".")
    bench, name, split = parts[0], parts[1], parts[2] if len(parts) == 3 else "test"
    if candidate["status"] == "failed" and not candidate["benchmarks"]:
        return None, None, f"candidate failed: {candidate['reason']}"
    for b in candidate["benchmarks"]:
        if b["benchmark"] != bench:
            continue
        if b["status"] != "ok":
            return None, None, f"benchmark {bench} {b['status']}: {b['reason']}"
        value = b["scores"].get(split, {}).get(name)
        if value is None:
            return None, None, f"no metric '{name}' on {bench}/{split}"
        return value["value"], value, ""
    return None, None, f"no benchmark '{bench}' in the results"


def check(candidates: list[dict[str, Any]], gates: list[GateConfig], baselines: dict[str, Any] | None = None,
          resamples: int = 1000, seed: int = 0) -> list[Verdict]:
    verdicts = []
    for cand in candidates:
        for gate in gates:
            if gate.baseline:
                from harness.compare import check_vs_baseline  # compare imports this module

                verdicts.append(check_vs_baseline(cand, gate.metric, (baselines or {}).get(gate.baseline), gate.margin,
                                                  gate.alpha, gate.name, resamples=resamples, seed=seed))
                continue
            _, entry, why = lookup(cand, gate.metric)
            if entry is None:
                verdicts.append(Verdict(cand["name"], gate.name, False, None, f"fails closed: {why}"))
                continue
            observed = entry[gate.on]
            passed = observed == observed and OPS[gate.op](observed, gate.value)  # NaN never passes
            verdicts.append(Verdict(cand["name"], gate.name, bool(passed), observed,
                                    f"{gate.on} {observed:.4f} {'meets' if passed else 'misses'} {gate.op} {gate.value:g}"))
    return verdicts


def passing(candidates: list[dict[str, Any]], verdicts: list[Verdict]) -> list[str]:
    failed = {v.candidate for v in verdicts if not v.passed}
    scored = [c for c in candidates if any(b["status"] == "ok" for b in c["benchmarks"])]  # all n/a: nothing to ship
    return [c["name"] for c in scored if c["status"] == "ok" and c["name"] not in failed]


def recommend(candidates: list[dict[str, Any]], verdicts: list[Verdict]) -> tuple[str | None, str]:
    """The smallest, then cheapest-to-train candidate that passes every gate, and why."""
    ok = set(passing(candidates, verdicts))
    pool = [c for c in candidates if c["name"] in ok]
    if not pool:
        reasons = sorted({f"{v.candidate}: {v.gate} ({v.message})" for v in verdicts if not v.passed}
                         | {f"{c['name']}: {c['reason']}" for c in candidates if c["status"] == "failed"}
                         | {f"{c['name']}: no applicable benchmark" for c in candidates
                            if c["status"] == "ok" and not any(b["status"] == "ok" for b in c["benchmarks"])})
        return None, "no candidate passes every gate: " + "; ".join(reasons)
    best = min(pool, key=lambda c: (c["params"], c["cost"]["train_seconds"]))
    others = len(pool) - 1
    return best["name"], (f"{best['name']} is the smallest candidate ({best['params'] / 1e6:.1f}M parameters) "
                          f"that passes every gate" + (f"; {others} other(s) pass too" if others else ""))
