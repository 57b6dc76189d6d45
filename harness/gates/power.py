"""Power before spending compute: for every metric gate, the smallest effect it can detect at 80% power given the
test size and the training seeds (`sftbench validate` prints it).

The variance model is harness/statistics/seeds.py's, for one candidate: with S seeds the seed mean varies by
sigma^2 / S per side, sigma the sd of one seed's score (which holds that seed's item noise), plus what the seeds
share, the spread of the items: rho p (1 - p) / n for a proportion-like score p, rho the correlation of the same
model's per-item scores under two seeds. A baseline gate is powered for a re-run against the candidate's own
baseline (same model, same recipe): the shared item part cancels in the difference, so se^2 = 2 sigma^2 / S, with
t quantiles of S - 1 degrees of freedom (the test's own). With one seed per side the test counts items only,
se^2 = 2 p (1 - p) (1 - rho) / n with normal quantiles, and the line says that the seed spread still moves results.
Per gate mode:
- threshold `on: value`: the true value must exceed the threshold by z_0.8 se to pass 80% of the time;
- threshold `on: ci_low`: by (t_0.975 + t_0.8) se;
- baseline gate, blocking: a regression beyond the margin of (t_{1-alpha/k} + t_0.8) se is flagged 80% of the
  time, k the candidate's baseline gates (the Holm family: its smallest p is held to alpha / k);
- baseline gate, "non-inferior": shown 80% of the time when the true gain exceeds -margin by (t_{1-alpha} + t_0.8)
  se (an intersection-union claim: not adjusted).
sigma, p and rho come from each candidate of the latest stored run of the same bake-off name (sigma as an upper
UCB_LEVEL confidence bound from its seeds, since three seeds say little about their spread; rho from its per-seed
rows), else the assumed values below, and each line says which.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from harness.config import BakeoffConfig, GateConfig
from harness.scoring.metrics import METRICS

ASSUMED_SEED_SD = 0.05  # 5 points: between peft's +-1 and the 8.7 points measured for MiniLM on support_intents
ASSUMED_LEVEL = 0.7
ASSUMED_RHO = 0.5  # per-item correlation of one model's correctness under two seeds
POWER = 0.8
UCB_LEVEL = 0.8  # the stored seed sd is replaced by its upper bound at this level (docs/statistics.md)


@dataclass(frozen=True)
class Evidence:
    seed_sd: float  # an upper confidence bound when measured
    level: float
    rho: float
    source: str  # where sigma, p and rho came from


ASSUMED = Evidence(ASSUMED_SEED_SD, ASSUMED_LEVEL, ASSUMED_RHO,
                   f"assumed: seed sd {ASSUMED_SEED_SD:g}, level {ASSUMED_LEVEL:g}, item correlation {ASSUMED_RHO:g}")


def seed_sd_bound(sd: Any, seeds: int, level: float = UCB_LEVEL) -> Any:
    """The upper `level` confidence bound of a seed sd measured on `seeds` seeds: (S - 1) s^2 / sigma^2 is
    chi-square with S - 1 degrees of freedom for normal seed effects. Arrays work too (the calibration tests)."""
    return np.asarray(sd) * math.sqrt((seeds - 1) / sps.chi2.ppf(1 - level, seeds - 1))


def seed_correlation(per_seed: Any) -> float | None:
    """rho: the mean correlation of one model's per-item scores under two different seeds; None with one seed."""
    rows = np.asarray(per_seed if per_seed is not None else [], dtype=float)
    if rows.ndim != 2 or len(rows := rows[rows.std(axis=1) > 0]) < 2:
        return None
    corr = np.corrcoef(rows)
    return float(corr[np.triu_indices(len(rows), 1)].mean())


def entry_evidence(entry: dict[str, Any], where: str) -> Evidence:
    """sigma (its upper bound), p and rho from one candidate's stored metric entry."""
    seeds = entry.get("seeds") or []
    sd = entry.get("seed_sd")
    rho = seed_correlation(entry.get("per_seed"))
    sigma = float(seed_sd_bound(sd, len(seeds))) if sd is not None and len(seeds) > 1 else None
    level = float(entry["value"])
    text = (f"{where}: seed sd {sigma:.3g} (upper {UCB_LEVEL:.0%} bound of {sd:.3g} over {len(seeds)} seeds)"
            if sigma is not None else f"{where}: seed sd {ASSUMED_SEED_SD:g} (assumed: one seed)")
    text += f", level {level:.3g}, item correlation " + (f"{rho:.2g}" if rho is not None
                                                        else f"{ASSUMED_RHO:g} (assumed)")
    return Evidence(sigma if sigma is not None else ASSUMED_SEED_SD, level, rho if rho is not None else ASSUMED_RHO,
                    text)


StoredRun = tuple[str, dict[str, Any]]  # (run id, results.json) of the latest stored run of the bake-off


def stored_evidence(cfg: BakeoffConfig, metric: str, latest: StoredRun | None) -> list[Evidence]:
    """Each candidate's sigma, p and rho for `benchmark.metric` in `latest`, the latest stored run of this bake-off
    (the caller reads the run store), or the assumed values."""
    assumed = Evidence(ASSUMED.seed_sd, ASSUMED.level, ASSUMED.rho,
                       f"{ASSUMED.source} (no stored run of '{cfg.name}' with this metric)")
    run_id, results = latest or ("", {})
    found = [(c["name"], e) for c in results.get("candidates", []) if (e := _entry(c, metric))]
    return [entry_evidence(e, f"{name} in run {run_id}") for name, e in found] or [assumed]


def _entry(candidate: dict[str, Any], metric: str) -> dict[str, Any] | None:
    bench, name = metric.split(".")[:2]
    split = metric.split(".")[2] if metric.count(".") == 2 else "test"
    for b in candidate.get("benchmarks", []):
        if b.get("benchmark") == bench and b.get("status") == "ok":
            return ((b.get("scores") or {}).get(split) or {}).get(name)
    return None


def standard_error(gate: GateConfig, n: int, seeds: int, ev: Evidence) -> tuple[float, float]:
    """(se of what the gate tests, its degrees of freedom) under the module's variance model."""
    p = min(max(ev.level, 0.01), 0.99)
    if seeds == 1:  # the item-only test: it cannot see the seed spread
        var = (2 * p * (1 - p) * (1 - ev.rho) if gate.baseline else p * (1 - p)) / n
        return math.sqrt(var), math.inf
    shared = 0.0 if gate.baseline else ev.rho * p * (1 - p) / n  # a re-run against its own baseline: items cancel
    return math.sqrt((2 if gate.baseline else 1) * ev.seed_sd ** 2 / seeds + shared), float(seeds - 1)


def baseline_detectable(se: float, df: float, alpha: float, mode: str, family: int = 1) -> float:
    """The effect beyond the margin that a baseline gate in `mode` decides 80% of the time, given the se and degrees
    of freedom of its difference (df inf: normal): no_regression flags a drop that exceeds the margin by this
    (its alpha shared by the `family` of Holm-adjusted gates); non_inferior shows non-inferiority when the true
    gain exceeds -margin by this (an intersection-union claim: not adjusted)."""
    level = alpha / family if mode == "no_regression" else alpha
    return float((sps.t.ppf(1 - level, df) + sps.t.ppf(POWER, df)) * se)


def detectable(gate: GateConfig, n: int, seeds: int, ev: Evidence, family: int = 1) -> list[tuple[float, str]]:
    """(smallest effect detectable at 80% power, in the metric's units; what the effect is), one per gate mode;
    `family`: the baseline gates of a candidate, Holm-adjusted together."""
    se, df = standard_error(gate, n, seeds, ev)

    def q(x: float) -> float:
        return float(sps.t.ppf(x, df))  # df inf: normal

    if gate.baseline:
        holm = f" (alpha {gate.alpha:g}/{family}: Holm over {family} baseline gates)" if family > 1 else ""
        return [(baseline_detectable(se, df, gate.alpha, "no_regression", family),
                 f"no_regression: flags a true regression 80% of the time{holm} only when it exceeds the margin by"),
                (baseline_detectable(se, df, gate.alpha, "non_inferior"),
                 "non_inferior: shows non-inferiority 80% of the time only when the true gain exceeds -margin by")]
    if gate.on == "value":  # the point estimate is not studentised: normal
        return [(float(sps.norm.ppf(POWER)) * se,
                 f"passes 80% of the time only when the true value exceeds {gate.value:g} by")]
    return [((q(0.975) + q(POWER)) * se,
             f"passes (95% bound) 80% of the time only when the true value exceeds {gate.value:g} by")]


def effect_text(effect: float, metric: str) -> str:
    """An effect in the metric's display units: points for 0-1 fractions, the metric's own units otherwise."""
    if metric not in METRICS:  # an unknown metric: shown in its own units
        return f"{effect:.3g}"
    registered = METRICS.get(metric)
    if registered.scale == 1 and not registered.from_losses:
        return f"{100 * effect:.1f} points"
    return f"{effect:.1f}"


def power_lines(cfg: BakeoffConfig, test_sizes: dict[str, int], latest: StoredRun | None) -> list[str]:
    """Per metric gate and stored candidate (of `latest`, see stored_evidence): what it can detect at 80% power,
    and on what assumptions."""
    seeds = len(cfg.recipe.seed_values)
    family = sum(1 for g in cfg.gates if g.baseline)
    out = []
    for gate in (g for g in cfg.gates if g.metric):
        bench = gate.metric.split(".")[0]
        n = test_sizes.get(bench)
        if not n:
            continue
        for ev in stored_evidence(cfg, gate.metric, latest):
            modes = "; ".join(f"{what} {effect_text(effect, gate.metric.split('.')[1])} or more"
                              for effect, what in detectable(gate, n, seeds, ev, family))
            caveat = ("; with one training seed per side the test counts items only, while a retraining moves the "
                      f"score by about {100 * ev.seed_sd:.1f} points (seed sd): set recipe.seeds: 3"
                      if seeds == 1 else "")
            out.append(f"power: gate '{gate.name}' {modes} (n={n} test items, {seeds} seed{'s' * (seeds != 1)}; "
                       f"{ev.source}){caveat}")
    return out
