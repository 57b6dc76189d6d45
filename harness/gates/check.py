"""Gates: a verdict per candidate and gate, failing closed.

The `gates:` list of a bake-off config (or of the file given to `sftbench gate RUN --gates FILE`) holds
three kinds of gate, each a mapping:

  {metric: support_intents.accuracy, op: ">=", value: 0.6}      # threshold on `benchmark.metric[.split]`
  {metric: support_intents.accuracy, baseline: demo, margin: 0.02, alpha: 0.05}   # non-inferiority
  {forgetting: general_knowledge, max: 0.05}                    # caps: a ceiling on one number
  {generalisation_gap: support_intents, max: 0.10, on: ci_high}
  {bias: intent_bias, max: 0.05}
  {cost: params, max: 2e8}           # or latency_ms_per_item, peak_rss_mb, train_seconds, peak_gpu_mb, gpu_seconds

Thresholds check the point estimate or an interval bound (`on: ci_low|ci_high`); the split defaults to
`test`. Non-inferiority gates compare with a promoted baseline on the same items (harness/gates/baseline.py).
Caps pass when the number is <= `max`; `on: ci_high` caps the upper bound of its 95% interval instead:
- forgetting: before - after accuracy of a probe (a fraction: 0.05 is 5 points), on every benchmark the
  candidate was tuned on (each tune is probed); the worst one counts. `forgetting: "*"` caps every probe the
  candidate ran, which suits bake-offs that mix model kinds (each probe runs on the kind it tests).
- generalisation_gap: how much worse the main metric is on the benchmark's `shifted` split than on `test`
  (test - shifted, negated for a lower-is-better metric), in the metric's units.
- bias: the increase in counterfactual flip rate from the base to the tuned model (after - before).
- cost: total parameters, or the candidate's latency per item, peak RSS (MB, the process's peak so far) or
  training seconds (summed over benchmarks). No interval: `on` must stay `value`.

Nothing passes silently: a missing metric, a probe or bias suite that was not run for the candidate (a
knowledge probe on an encoder), a failed candidate, a benchmark that was not applicable, a missing cost
or a NaN fails the gate with the reason.

Several baseline gates on one candidate: each blocks on evidence of a regression beyond its margin, and
the candidate fails if any does, so with k gates an unchanged candidate would be flagged in up to k alpha
of runs. Their regression p-values are therefore adjusted across the candidate's baseline gates (the
family: those that produced a test) with `gate_correction:` in the config, `holm` (default, family-wise
error rate), `bh` (Benjamini-Hochberg, false discovery rate) or `none`; a gate flags a regression when its
adjusted p is below its alpha. Showing non-inferiority on every gate needs no correction (an
intersection-union test), so that claim in the message is not adjusted.

The bake-off passes when at least one candidate passes every gate: that candidate can ship.
"""
from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

from harness.config import GateConfig
from harness.gates.baseline import baseline_test, baseline_verdict
from harness.gates.lookup import Rows, Verdict, as_row, as_rows, closed, lookup, smallest
from harness.results.model import CandidateRow
from harness.scoring.metrics import higher_is_better
from harness.statistics.paired import adjust

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def check(candidates: Rows, gates: list[GateConfig], baselines: dict[str, Any] | None = None,
          resamples: int = 1000, seed: int = 0, correction: str = "holm") -> list[Verdict]:
    """Every candidate's verdict on every gate, in gate order; `correction` adjusts across a candidate's
    baseline gates (holm, bh or none)."""
    return [v for cand in as_rows(candidates)
            for v in _candidate(cand, gates, baselines or {}, resamples, seed, correction)]


def _candidate(cand: CandidateRow, gates: list[GateConfig], baselines: dict[str, Any], resamples: int, seed: int,
               correction: str) -> list[Verdict]:
    verdicts: dict[int, Verdict] = {}
    tests: dict[int, dict[str, Any]] = {}
    for i, gate in enumerate(gates):
        if gate.recommendation_stability is not None:
            continue  # the bake-off's own gate, checked on the recommendation (harness/results/finish.py)
        if gate.baseline:
            res, why = baseline_test(cand, gate.metric, baselines.get(gate.baseline), gate.margin, gate.alpha,
                                     resamples=resamples, seed=seed)
            if res is None:
                verdicts[i] = closed(cand.name, gate.name, why)
            else:
                tests[i] = res
        else:
            verdicts[i] = check_cap(cand, gate) if gate.cap else _threshold(cand, gate)
    blocking = {i: res for i, res in tests.items() if gates[i].mode != "non_inferior"}
    adjusted = dict(zip(blocking, adjust([res["p_regression"] for res in blocking.values()], correction)))
    for i, res in tests.items():
        verdicts[i] = baseline_verdict(cand.name, gates[i].name, res, adjusted.get(i, res["p_value"]), correction,
                                       len(blocking), gates[i].mode)
    return [verdicts[i] for i in range(len(gates)) if i in verdicts]


def _threshold(cand: CandidateRow, gate: GateConfig) -> Verdict:
    _, entry, why = lookup(cand, gate.metric)
    if entry is None:
        return closed(cand.name, gate.name, why)
    observed = getattr(entry, gate.on)
    if observed is None:  # an absent bound (null in hand-edited or older results) is missing: no crash
        return closed(cand.name, gate.name, f"no {gate.on} recorded for {gate.metric}")
    passed = observed == observed and OPS[gate.op](observed, gate.value)  # NaN never passes
    return Verdict(cand.name, gate.name, bool(passed), observed,
                   f"{gate.on} {observed:.4f} {'meets' if passed else 'misses'} {gate.op} {gate.value:g}")


def check_cap(candidate: CandidateRow | Mapping[str, Any], gate: GateConfig) -> Verdict:
    """A cap's verdict: every value it applies to (one per benchmark or probe) must be <= gate.max."""
    cand = as_row(candidate)
    values, why = cap_values(cand, gate)
    if why:
        return closed(cand.name, gate.name, why)
    assert gate.max is not None  # GateConfig requires it for caps
    nans = [where for where, v in values if v != v]
    if nans:
        return Verdict(cand.name, gate.name, False, float("nan"), f"NaN on {', '.join(nans)}: NaN never passes")
    where, worst = max(values, key=lambda wv: wv[1])
    passed = worst <= gate.max
    label = {"generalisation_gap": "gap", "bias": "flip-rate increase", "cost": gate.cost}.get(gate.cap, gate.cap)
    what = f" {gate.on}" if gate.on != "value" else ""
    scope = f" ({'worst of ' + str(len(values)) + ': ' if len(values) > 1 else ''}{where})" if where else ""
    caveat = "".join(f"; {line}" for line in uninformative(cand, gate)) if gate.cap == "forgetting" else ""
    return Verdict(cand.name, gate.name, passed, worst,
                   f"{label}{what} {worst:.4g}{scope} {'within' if passed else 'exceeds'} max {gate.max:g}{caveat}")


def uninformative(cand: CandidateRow, gate: GateConfig) -> list[str]:
    """The probes a forgetting cap reads whose base score is not shown above chance (harness/scoring/probes.py
    probe_chance), each with chance beside before and after: their forgetting cannot say much either way."""
    out = []
    for b in cand.benchmarks:
        for p in b.probes if b.status == "ok" else ():
            if p.informative is False and gate.forgetting in ("*", p.probe):
                out.append(f"{b.benchmark}/{p.probe} is uninformative for {cand.name}: base "
                           f"{100 * _value(p.before):.1f}% is not above chance {100 * (p.chance or 0.0):.1f}% "
                           f"(after {100 * _value(p.after):.1f}%)")
    return out


def _value(score: Any) -> float:
    return float("nan") if score is None or score.value is None else score.value


def _bound(score: Any, on: str) -> float | None:
    """A score's value or interval bound (`gate.on`), None when it has none."""
    return None if score is None else getattr(score, on)


def cap_values(cand: CandidateRow, gate: GateConfig) -> tuple[list[tuple[str, float]], str]:
    """(where, value) pairs a cap applies to, or ([], what is missing)."""
    name, kind = cand.name, cand.kind or "unknown-kind"
    if cand.status == "failed":
        return [], f"candidate failed: {cand.reason}"
    ran = [b for b in cand.benchmarks if b.status == "ok"]
    if not ran:
        return [], f"no benchmark ran for {name}, so there is no {gate.cap} to cap"
    if gate.cap == "cost":
        value = (cand.params or None) if gate.cost == "params" else cand.cost.to_json().get(gate.cost)
        return _present([("", value)] if value is not None else [], f"no {gate.cost} recorded for {name}")
    if gate.cap == "generalisation_gap":
        return _gap(cand, gate)
    if gate.cap == "bias":
        found = [(f"{b.benchmark}/{r.probe}", _bound(r.change, gate.on)) for b in ran for r in b.bias
                 if r.probe == gate.bias]
        return _present(found, f"bias suite '{gate.bias}' was not run for {name} (model kind: {kind})")
    found = []
    for b in ran:
        probes = {p.probe: p for p in b.probes}
        for probe in sorted(probes) if gate.forgetting == "*" else [gate.forgetting]:
            if probe not in probes:
                return [], f"probe '{probe}' was not run for {name} (model kind: {kind}) on {b.benchmark}"
            found.append((f"{b.benchmark}/{probe}", _bound(probes[probe].forgetting, gate.on)))
    return _present(found, f"no forgetting probe was run for {name} (model kind: {kind})")


def _gap(cand: CandidateRow, gate: GateConfig) -> tuple[list[tuple[str, float]], str]:
    bench = cand.benchmark(gate.generalisation_gap)
    if bench is None:
        return [], f"no benchmark '{gate.generalisation_gap}' in the results"
    if bench.status != "ok":
        return [], f"benchmark {bench.benchmark} {bench.status}: {bench.reason}"
    gen = bench.generalisation
    if gen.gap is None:
        return [], (f"no generalisation gap on {bench.benchmark} (it needs a `shifted` split scored with the "
                    "main metric)")
    if higher_is_better(gen.metric or ""):
        worse = gen.gap if gate.on == "value" else gen.gap_ci_high
    else:  # test - shifted is negative when a lower-is-better metric is worse on shifted
        worse = -gen.gap if gate.on == "value" else _negate(gen.gap_ci_low)
    return _present([(f"{bench.benchmark} {gen.metric}", worse)], "")


def _negate(x: float | None) -> float | None:
    return None if x is None else -x


def _present(found: list[tuple[str, Any]], absent: str) -> tuple[list[tuple[str, float]], str]:
    if not found:
        return [], absent
    missing = [where or "the candidate" for where, v in found if v is None]
    if missing:
        return [], f"no value recorded on {', '.join(missing)}"
    return [(where, float(v)) for where, v in found], ""


def passing(candidates: Rows, verdicts: list[Verdict]) -> list[str]:
    failed = {v.candidate for v in verdicts if not v.passed}
    scored = [c for c in as_rows(candidates) if any(b.status == "ok" for b in c.benchmarks)]  # all n/a: none to ship
    return [c.name for c in scored if c.status == "ok" and c.name not in failed]


def recommend(candidates: Rows, verdicts: list[Verdict]) -> tuple[str | None, str]:
    """The smallest, then cheapest-to-train candidate that passes every gate, and why. Never a zero-shot
    reference row, and never a candidate that did not learn a benchmark (harness/scoring/chance.py): a gate it passes
    at chance level is a gate that could not tell."""
    candidates = as_rows(candidates)
    ok = set(passing(candidates, verdicts))
    tuned = [c for c in candidates if not c.zero_shot]
    unlearned = {c.name: c.did_not_learn for c in tuned if c.did_not_learn}
    pool = [c for c in tuned if c.name in ok and c.name not in unlearned]
    names = {c.name for c in tuned}
    untuned = [f"{c.name} passes every gate untuned (a zero-shot reference row)" for c in candidates
               if c.zero_shot and c.name in ok]
    if not pool:
        reasons = sorted({f"{v.candidate}: {v.gate} ({v.message})" for v in verdicts if not v.passed
                          and v.candidate in names}
                         | {f"{c.name}: {c.reason}" for c in tuned if c.status == "failed"}
                         | {f"{c.name}: no applicable benchmark" for c in tuned
                            if c.status == "ok" and not any(b.status == "ok" for b in c.benchmarks)}
                         | {f"{n}: did not learn {', '.join(b)}" for n, b in unlearned.items()})
        return None, "no candidate passes every gate: " + "; ".join(reasons + untuned)
    best = min(pool, key=smallest)
    others = len(pool) - 1
    notes = [f"{name} did not learn {', '.join(benches)} (not eligible)" for name, benches in unlearned.items()]
    return best.name, (f"{best.name} is the smallest candidate ({(best.params or 0) / 1e6:.1f}M parameters) "
                          f"that passes every gate" + (f"; {others} other(s) pass too" if others else "")
                          + "".join(f"; {n}" for n in notes + untuned))


def gate_benchmark(gate: GateConfig) -> str:
    """The benchmark a gate is about ("" for one that applies to every benchmark: forgetting, bias, cost)."""
    return gate.metric.split(".")[0] if gate.metric else gate.generalisation_gap


def per_benchmark(candidates: Rows, verdicts: list[Verdict], gates: list[GateConfig]) -> list[dict[str, Any]]:
    """With several benchmarks, what each benchmark alone would recommend: `recommend`'s rule (the smallest tuned
    candidate that learned it and passes every gate) over the gates about that benchmark and those about none,
    with its main (first) test metric. [] with one benchmark."""
    candidates = as_rows(candidates)
    order = list(dict.fromkeys(b.benchmark for c in candidates for b in c.benchmarks))
    if len(order) < 2:
        return []
    out: list[dict[str, Any]] = []
    for bench in order:
        other = {g.name for g in gates if gate_benchmark(g) not in ("", bench)}
        failed = {v.candidate for v in verdicts if not v.passed and v.gate not in other}
        rows = [(c, b) for c in candidates if c.status == "ok" and not c.zero_shot
                and c.name not in failed and bench not in (c.did_not_learn or [])
                for b in c.benchmarks if b.benchmark == bench and b.status == "ok"]
        if not rows:
            out.append({"benchmark": bench, "candidate": None, "metric": None, "value": None, "params": None})
            continue
        best, b = min(rows, key=lambda cb: smallest(cb[0]))
        metric, entry = next(iter((b.scores.get("test") or {}).items()), ("", None))
        out.append({"benchmark": bench, "candidate": best.name, "metric": metric or None,
                    "value": entry.value if entry is not None else None, "params": best.params})
    return out

