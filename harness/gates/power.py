"""Power before spending compute: for every metric gate, the smallest effect it can detect at 80% power given the
test size and the training seeds (`sftbench validate` prints it).

The variance model is harness/seeds.py's: seed variance sigma^2 / S per side, plus the item variance of a
proportion-like score p (1 - p) / n (a paired comparison of two models on the same items: 2 p (1 - p) (1 - rho) / n,
rho the correlation of their per-item scores). Quantiles are Student t with the Welch degrees of freedom of the
seed part (normal with one seed per side, where the test cannot see the seed spread at all: then the effect a
gate can detect is computed from the items alone and the line says that the seed spread still moves results).
- threshold gate `on: value`: the true value must exceed the threshold by z_0.8 se to pass 80% of the time;
- threshold gate `on: ci_low`: by (t_0.975 + t_0.8) se;
- baseline gate (non-inferiority, regression at level alpha): a regression beyond the margin of
  (t_{1-alpha} + t_0.8) se is flagged 80% of the time.
sigma, p and rho come from the latest stored run of the same bake-off name when it has them (the largest seed sd
over its candidates; the mean value; the per-item correlation between candidates), else the assumed values below,
and each line says which.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from harness.config import BakeoffConfig, GateConfig

ASSUMED_SEED_SD = 0.05  # 5 points: between peft's +-1 and the 8.7 points measured for MiniLM on support_intents
ASSUMED_LEVEL = 0.7
ASSUMED_RHO = 0.5  # per-item correlation of two tuned models' correctness on the same items
POWER = 0.8


@dataclass(frozen=True)
class Evidence:
    seed_sd: float
    level: float
    rho: float
    source: str  # where sigma, p and rho came from


def stored_evidence(cfg: BakeoffConfig, metric: str) -> Evidence:
    """sigma, p and rho for `benchmark.metric` from the latest stored run of this bake-off, or assumed."""
    from harness.storage.store import Store

    assumed = Evidence(ASSUMED_SEED_SD, ASSUMED_LEVEL, ASSUMED_RHO,
                       f"assumed: seed sd {ASSUMED_SEED_SD:g}, level {ASSUMED_LEVEL:g}, item correlation "
                       f"{ASSUMED_RHO:g} (no stored run of '{cfg.name}' with this metric)")
    try:
        with Store() as store:
            runs = [r for r in store.runs() if r["name"] == cfg.name]
            results = store.get(runs[-1]["run_id"]) if runs else None
    except Exception:  # a store that cannot be read is not a reason to refuse a power estimate
        return assumed
    entries = [e for c in (results or {}).get("candidates", []) if (e := _entry(c, metric))]
    if not entries:
        return assumed
    sds = [e["seed_sd"] for e in entries if e.get("seed_sd") is not None]
    level = float(np.mean([e["value"] for e in entries]))
    items = [np.asarray(e.get("per_item") or [], dtype=float) for e in entries]
    pairs = [np.corrcoef(a, b)[0, 1] for i, a in enumerate(items) for b in items[i + 1:]
             if len(a) == len(b) > 2 and a.std() > 0 and b.std() > 0]
    rho = float(np.mean(pairs)) if pairs else ASSUMED_RHO
    sd = max(sds) if sds else ASSUMED_SEED_SD
    run = runs[-1]["run_id"]
    return Evidence(sd, level, rho, f"from run {run}: seed sd {sd:.3g}" + ("" if sds else " (assumed: it had one seed)")
                    + f", level {level:.3g}, item correlation {rho:.2g}" + ("" if pairs else " (assumed)"))


def _entry(candidate: dict[str, Any], metric: str) -> dict[str, Any] | None:
    bench, name = metric.split(".")[:2]
    split = metric.split(".")[2] if metric.count(".") == 2 else "test"
    for b in candidate.get("benchmarks", []):
        if b.get("benchmark") == bench and b.get("status") == "ok":
            return ((b.get("scores") or {}).get(split) or {}).get(name)
    return None


def detectable(gate: GateConfig, n: int, seeds: int, ev: Evidence) -> tuple[float, str]:
    """(smallest effect detectable at 80% power, in the metric's units; what the effect is)."""
    p = min(max(ev.level, 0.01), 0.99)
    sides = 2 if gate.baseline else 1
    seed_part = sides * ev.seed_sd ** 2 / seeds if seeds > 1 else 0.0
    item_part = (2 * p * (1 - p) * (1 - ev.rho) if gate.baseline else p * (1 - p)) / n
    se = math.sqrt(seed_part + item_part)
    seed_df = sides * (ev.seed_sd ** 2 / seeds) ** 2 / (seeds - 1) if seeds > 1 else 0.0
    df = (seed_part + item_part) ** 2 / seed_df if seed_df > 0 else math.inf

    def q(x: float) -> float:
        return float(sps.norm.ppf(x) if math.isinf(df) else sps.t.ppf(x, df))

    if gate.baseline:
        effect = (q(1 - gate.alpha) + q(POWER)) * se
        what = "flags a true regression 80% of the time only when it exceeds the margin by"
    elif gate.on == "value":
        effect, what = q(POWER) * se, f"passes 80% of the time only when the true value exceeds {gate.value:g} by"
    else:
        effect = (q(0.975) + q(POWER)) * se
        what = f"passes (95% bound) 80% of the time only when the true value exceeds {gate.value:g} by"
    return effect, what


def power_lines(cfg: BakeoffConfig, test_sizes: dict[str, int]) -> list[str]:
    """One line per metric gate: what it can detect at 80% power, and on what assumptions."""
    seeds = len(cfg.recipe.seed_values)
    out = []
    for gate in (g for g in cfg.gates if g.metric):
        bench = gate.metric.split(".")[0]
        n = test_sizes.get(bench)
        if not n:
            continue
        ev = stored_evidence(cfg, gate.metric)
        effect, what = detectable(gate, n, seeds, ev)
        scale = 100 if gate.metric.split(".")[1] not in ("bleu", "chrf", "loss", "perplexity") else 1
        unit = " points" if scale == 100 else ""
        caveat = ("; with one training seed per side the test counts items only, while a retraining moves the score "
                  f"by about {100 * ev.seed_sd:.1f} points (seed sd): set recipe.seeds: 3") if seeds == 1 else ""
        out.append(f"power: gate '{gate.name}' {what} {scale * effect:.1f}{unit} or more "
                   f"(n={n} test items, {seeds} seed{'s' * (seeds != 1)}; {ev.source}){caveat}")
    return out
