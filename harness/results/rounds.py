"""Adaptive seeds, round by round (issue 30): the plan grows as results arrive.

Round 0 plans every tuned candidate and sweep setting (an arm) with `recipe.seeds.min` seeds; the executor runs the
round's units (Ray: all of them in flight together), the run is finished as usual (rows, gates, recommendation), and
harness/gates/adaptive.py decides from those results which arms get another seed. The next round plans one more
seed for them, and every unit already run is a unit-cache hit, so a resumed run (after Ctrl-C or SIGKILL) reads the
same outputs and reaches the same decisions. A setting clearly behind on validation leaves the plan (its candidate's
selection then compares the settings still in it); a stopped candidate keeps its seeds. It ends when no arm gets
another seed; the final results carry `adaptive`: seeds per arm and why each stopped, fine-tunes run against the full
grid, the rule's stability and why the run stopped.

Evidence from the finished rows: each setting's per-seed validation scores from the sweep table, each candidate's
per-seed test items for every threshold gate on a per-item-mean metric (the rule's model of a gate); every other gate
(caps, baseline gates, corpus metrics) and "did not learn" are held at their observed verdict, as the bootstrap
agreement holds them. Candidates are ordered as the recommendation orders them (parameters, then training time).
Baseline gates are checked at the alpha spent by the earliest round any candidate last got a seed in (the spending
rule: no candidate is tested at more than the level of the round its seeds stopped growing).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.config import BakeoffConfig, GateConfig
from harness.gates import adaptive
from harness.gates.adaptive import BEHIND, RUNNING, WHY, Decision, Evidence, GateRule, Policy
from harness.gates.lookup import as_row, lookup
from harness.results.model import Results
from harness.results.ties import main_metrics
from harness.scoring.metrics import higher_is_better
from harness.statistics.paired import CORPUS

Arm = tuple[str, int]  # (candidate, index of its sweep setting)


def modelled(gate: GateConfig) -> bool:
    """Threshold gates on a per-item-mean metric: what the rule reads from per-seed scores."""
    return bool(gate.metric) and not gate.baseline and gate.metric.split(".")[1] not in CORPUS


def run_rounds(cfg: BakeoffConfig, finish_round: Callable[[BakeoffConfig, dict[str, Any]], Results],
               on_round: Callable[[str], None] = lambda _: None) -> Results:
    """The adaptive run. finish_round(cfg, arms): run and finish one round's plan (arms: each tuned candidate's
    seeds and settings)."""
    seeds = cfg.recipe.adaptive
    assert seeds is not None
    policy = Policy(seeds.min, seeds.max, seeds.stability, budget=cfg.budget.units)
    grid = cfg.recipe.seed_values
    tuned = [c for c in cfg.candidates if not c.zero_shot]
    settings = {c.name: cfg.settings(c) for c in tuned}
    arms: list[Arm] = [(c.name, i) for c in tuned for i in range(len(settings[c.name]))]
    count = {a: seeds.min for a in arms}
    stopped = {a: RUNNING for a in arms}
    frozen: dict[Arm, list[float]] = {}  # validation seeds of a setting that left the plan
    history: list[dict[str, Any]] = []
    last = {c: 0 for c in settings}  # the round each candidate last got a seed in
    paid: dict[str, float] = {}  # every unit run so far -> its measured device seconds
    devices: set[str] = set()
    look = 0
    while True:
        plan_arms = {c: (tuple(grid[:max(count[(c, i)] for i in range(len(s)) if stopped[(c, i)] != BEHIND)]),
                         [st for i, st in enumerate(s) if stopped[(c, i)] != BEHIND]) for c, s in settings.items()}
        final_cfg = _spent_gates(cfg, policy, min(last.values(), default=look))
        results = finish_round(final_cfg, plan_arms)
        paid.update((results.units or {}).get("device_seconds") or {})  # units that left the plan stay paid for
        devices |= set((results.units or {}).get("devices") or [])
        round_policy, spend = _round_policy(cfg, policy, sum(paid.values()), sorted(devices), sum(count.values()))
        d, order = _decide(results, cfg, round_policy, look, arms, count, stopped, frozen, settings)
        for a in arms:
            stopped[a] = int(d.stopped[arms.index(a)])
        history.append({"round": look, "fine_tunes": sum(count.values()), "stability": float(d.stability),
                        "recommended": order[int(d.recommended)] if d.recommended >= 0 else None,
                        "device_hours": spend["device_hours"]})
        on_round(f"round {look + 1}: {sum(count.values())} fine-tunes, stability {float(d.stability):.2f}"
                 + ("" if d.done else f"; {int(d.more.sum())} more"))
        if d.done or look >= policy.looks - 1:
            return results.with_changes(adaptive=summary(cfg, policy, arms, settings, count, stopped, d, history,
                                                         order, spend),
                                        units={"device_seconds": sum(paid.values()), "devices": sorted(devices)})
        for i, a in enumerate(arms):
            if d.more[i]:
                count[a] += 1
                last[a[0]] = look + 1
        # a candidate's settings in the plan share its seeds: a setting still in the plan follows the candidate
        for c, s in settings.items():
            top = max(count[(c, i)] for i in range(len(s)) if stopped[(c, i)] != BEHIND)
            for i in range(len(s)):
                if stopped[(c, i)] != BEHIND:
                    count[(c, i)] = top
        look += 1


def _round_policy(cfg: BakeoffConfig, policy: Policy, seconds: float, devices: list[str], used: int
                  ) -> tuple[Policy, dict[str, Any]]:
    """The policy of this round's decision and what the run has spent. A device-hours budget becomes the fine-tunes it
    still pays for: the hours left over the mean device time per fine-tune so far (each fine-tune's scoring units
    included), every unit of the plan counted at its measured wall time, kept units too (a resumed run spends as the
    first did). `bound`: which budget binds this round."""
    spend: dict[str, Any] = {"device_hours": seconds / 3600, "devices": devices,
                             "bound": "units" if policy.budget is not None else None}
    hours = cfg.budget.device_hours
    if hours is None:
        return policy, spend
    per = seconds / max(used, 1)
    if per <= 0:  # nothing measured (units kept before durations were recorded): the hours cannot bind
        return policy, spend
    cap = used + max(math.floor((hours * 3600 - seconds) / per), 0)
    if policy.budget is not None and policy.budget <= cap:
        return policy, spend
    return dataclasses.replace(policy, budget=cap), spend | {"bound": "device_hours"}


def _spent_gates(cfg: BakeoffConfig, policy: Policy, look: int) -> BakeoffConfig:
    """Baseline gates at the level spent by round `look`: the earliest round any candidate last got a seed in, so
    each candidate's test runs at no more than the level of the round its data stopped growing (the union bound)."""
    gates = [dataclasses.replace(g, alpha=adaptive.spent(g.alpha, look, policy.looks)) if g.baseline else g
             for g in cfg.gates]
    return dataclasses.replace(cfg, gates=gates)


def _decide(results: Results, cfg: BakeoffConfig, policy: Policy, look: int, arms: list[Arm], count: dict[Arm, int],
            stopped: dict[Arm, int], frozen: dict[Arm, list[float]], settings: dict[str, list[tuple[float, int]]]
            ) -> tuple[Decision, list[str]]:
    rows = {c.name: c.to_json() for c in results.candidates if not c.zero_shot}
    count = {a: n for a, n in count.items()}
    order = sorted(rows, key=lambda n: (rows[n]["params"], rows[n]["cost"]["train_seconds"]))
    arms_sorted = sorted(arms, key=lambda a: (order.index(a[0]), a[1]))
    index = [arms_sorted.index(a) for a in arms]  # arms -> rule order
    gates = [g for g in cfg.gates if modelled(g)]
    names = {g.name for g in gates}
    held = np.array([all(v.passed for v in results.gates if v.candidate == n and v.gate not in names)
                     and rows[n]["status"] == "ok" and not rows[n].get("did_not_learn") for n in order])
    width = policy.max
    val = np.full((len(arms_sorted), width), np.nan)
    mains = main_metrics({"candidates": list(rows.values())})
    sign = 1.0 if not mains or higher_is_better(mains[0][1]) else -1.0  # the rule reads "higher is better"
    pool = np.ones(len(arms_sorted), bool)
    for k, (name, i) in enumerate(arms_sorted):
        found = frozen.get((name, i)) or _validation(rows[name], settings[name][i])
        values = [sign * v for v in found] if found and (name, i) not in frozen else found
        pool[k] = bool(found)
        values = values or [0.0] * count[(name, i)]  # nothing to compare: it is its candidate's one setting left
        val[k, :len(values)] = values
    evidence = [_gate_evidence(rows, order, g, width) for g in gates]
    rules = [GateRule(g.name, g.op, float(g.value if g.value is not None else 0.0), g.on) for g in gates]
    candidate_of = np.array([order.index(a[0]) for a in arms_sorted])
    d = adaptive.decide(look, policy, candidate_of, Evidence(val, np.zeros(len(val)), pool=pool), rules, evidence, held,
                        np.array([stopped[a] for a in arms_sorted]), proxies=_proxies(gates, rows[order[0]], mains))
    for k, a in enumerate(arms_sorted):  # a setting that leaves the plan keeps the validation seeds it had
        if d.stopped[k] == BEHIND and a not in frozen:
            frozen[a] = [float(v) for v in val[k] if v == v]
    back = dataclasses.replace(d, more=d.more[index], stopped=d.stopped[index])  # in the caller's arm order
    return back, order


def _proxies(gates: list[GateConfig], row: dict[str, Any], mains: list[tuple[str, str, list[str]]]) -> list[bool]:
    """Per gate, whether the sweep's validation scores measure its metric (the benchmark _validation reads, its main
    metric, higher is better): then a setting clearly under the gate on validation is ruled out (adaptive.ruled_out)."""
    bench = next((b["benchmark"] for b in row["benchmarks"] if b["status"] == "ok"), None)
    main = next((m for b, m, _ in mains if b == bench), None)
    return [main is not None and g.metric == f"{bench}.{main}" and higher_is_better(main) for g in gates]


def _validation(row: dict[str, Any], setting: tuple[float, int]) -> list[float]:
    """A setting's per-seed validation scores (the sweep table's); [] for a candidate's one setting in the plan (no
    sweep table: a config without a sweep, or every other setting left the plan), which has none to compare."""
    bench = next((b for b in row["benchmarks"] if b["status"] == "ok"), None)
    for entry in (bench or {}).get("sweep") or []:
        if (entry["learning_rate"], entry["epochs"]) == setting and entry.get("seeds"):
            return [float(v) for v in entry["seeds"]]
    return []


def _gate_evidence(rows: dict[str, dict[str, Any]], order: list[str], gate: GateConfig, width: int) -> Evidence:
    values = np.full((len(order), width), np.nan)
    item = np.zeros(len(order))
    for k, name in enumerate(order):
        _, entry, _ = lookup(as_row(rows[name]), gate.metric)
        per_seed = entry.per_seed if entry is not None else None
        if per_seed is not None and len(per_seed) > 1:
            v, item[k] = adaptive.evidence_of(np.asarray(per_seed, dtype=float))
            values[k, :len(v)] = v
        elif entry is not None and entry.value is not None:
            values[k, 0] = entry.value
    return Evidence(values, item)


def summary(cfg: BakeoffConfig, policy: Policy, arms: list[Arm], settings: dict[str, list[tuple[float, int]]],
            count: dict[Arm, int], stopped: dict[Arm, int], d: Decision, history: list[dict[str, Any]],
            order: list[str], spend: dict[str, Any] | None = None) -> dict[str, Any]:
    """What results.json stores under `adaptive` (reports read it)."""
    used, full = sum(count.values()), len(arms) * policy.max
    spend = spend or {"device_hours": 0.0, "devices": [], "bound": None}
    codes = set(stopped.values())
    why = "every candidate and setting is settled"
    if adaptive.STABLE in codes:
        why = f"the stability reached its target {policy.stability:g}"
    elif adaptive.BUDGET in codes and spend["bound"] == "device_hours":
        why = (f"the budget of {cfg.budget.device_hours:g} device-hours ran out ({spend['device_hours']:.3g} spent, "
               f"{device_words(spend['devices'])})")
    elif adaptive.BUDGET in codes:
        why = f"the budget of {policy.budget} fine-tunes ran out"
    elif adaptive.AT_MAX in codes:
        why = f"recipe.seeds.max ({policy.max}) was reached where the verdict stayed open"
    return {"min": policy.min, "max": policy.max, "stability_target": policy.stability, "budget": policy.budget,
            "device_budget_hours": cfg.budget.device_hours, "device_hours": spend["device_hours"],
            "devices": device_words(spend["devices"]),
            "fine_tunes": used, "full_grid": full, "rounds": len(history), "stability": float(d.stability),
            "stopped_because": why, "history": history,
            "arms": [{"candidate": c, "learning_rate": settings[c][i][0], "epochs": settings[c][i][1],
                      "seeds": count[(c, i)], "stopped": WHY[stopped[(c, i)]] if stopped[(c, i)] != RUNNING
                      else WHY[RUNNING]} for c, i in arms],
            "order": order}



def device_words(devices: list[str]) -> str:
    """What a device-hour is on these devices."""
    if "cuda" in devices:
        return "GPU-hours" + (" and CPU wall-hours of the units on the CPU" if "cpu" in devices else "")
    if devices and set(devices) != {"cpu"}:
        return f"wall-hours on {', '.join(devices)}"
    return "CPU wall-hours: no accelerator"
