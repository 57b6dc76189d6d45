"""Bootstrap agreement of the recommendation: the share of bootstrap resamples of the run (training seeds and test
items) that recommend what the run recommended. Stored as `recommendation_stability` (the results.json key and the
`{recommendation_stability: 0.8}` gate keep their names) with `recommendation_agreement` beside it.

What it is, and what it is not. It is a bootstrap centred on the observed run: when a re-run's true chance of
recommending the same candidate is 0.51, the agreement reported has a median of 0.72 (the audit of issue 27). So it
is not the probability that a re-run agrees; it says how near the observed data sit to a different
recommendation. Beside it: the deciding gate, the recommended candidate's re-evaluated gate nearest its threshold,
and how far past the threshold it is in standard errors (its resampled sd), a number that reads the same at any
agreement.

Each resample draws every candidate's training seeds with replacement once (its own seeds: candidates train
independently; the same seed draw for every gate of the candidate) and the test items with replacement (the same
items for every candidate: they share the test set), then re-evaluates every threshold gate on a per-item-mean
metric (harness/statistics/seeds.py item_draws): `on: value` on the resampled value, `on: ci_low`/`ci_high` on the
bound moved by the resampled change of the value (its width held). The other gates keep their observed verdict,
and `held_fixed` lists them: baseline gates (a resampled non-inferiority test per resample would be a double
bootstrap), caps (forgetting, bias, gap, cost) and thresholds on corpus metrics (macro-F1, BLEU, chrF: their
resampled value needs every seed's predictions). "Did not learn" is kept too. The selection rule is
harness/gates/check.py's: the smallest eligible candidate that passes every gate. With one seed per candidate only
the items vary.
"""
from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from harness.config import GateConfig
from harness.gates.lookup import Rows, Verdict, as_rows, lookup, smallest
from harness.results.model import CandidateRow, MetricScore
from harness.statistics.paired import CORPUS
from harness.statistics.seeds import item_draws, per_seed_items

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class Agreement:
    share: float  # of resamples recommending what the run recommended (or, when it recommended nothing, nothing)
    held_fixed: list[str]  # gates whose observed verdict every resample keeps
    deciding_gate: str | None = None  # the recommended candidate's re-evaluated gate nearest its threshold
    margin_se: float | None = None  # how far past that threshold, in standard errors (inf: no spread at all)

    reliability: str | None = None  # "reliable" or "tentative" (below tentative_below); None: nothing recommended
    tentative_below: float = 0.8
    settle: str = ""  # what would settle a tentative recommendation
    per_benchmark: tuple[dict[str, Any], ...] = ()  # harness/gates/check.py per_benchmark

    def to_json(self) -> dict[str, Any]:
        margin = None if self.margin_se is None or not math.isfinite(self.margin_se) else self.margin_se
        return {"share": self.share, "held_fixed": self.held_fixed, "deciding_gate": self.deciding_gate,
                "margin_se": margin, "reliability": self.reliability, "tentative_below": self.tentative_below,
                "settle": self.settle, "per_benchmark": list(self.per_benchmark)}


def settle(candidates: list[CandidateRow], deciding_gate: str | None, margin_se: float | None,
           tentative_below: float) -> str:
    """What would settle a tentative recommendation: more training seeds (3 when there is one, else twice as many),
    or more test items. The items: the deciding gate's standard error shrinks as 1 / sqrt(n) (its item part), and
    an agreement of `tentative_below` asks for about z_{tentative_below} SE past the threshold (0.84 SE for 0.8),
    so n (z / margin_se)^2 items; without a deciding gate (the candidates' own order decides) no count is said."""
    ran = [b for c in candidates if c.status == "ok" and not c.zero_shot for b in c.benchmarks if b.status == "ok"]
    seeds = max((len(b.seeds or []) for b in ran), default=1) or 1
    more = 3 if seeds < 3 else 2 * seeds
    text = f"{more} training seeds per candidate (recipe.seeds: {more}; now {seeds})"
    bench = deciding_gate.split(".")[0] if deciding_gate else ""
    sizes = [e.n or len(e.per_item or []) for b in ran if b.benchmark == bench
             for e in (b.scores.get("test") or {}).values()]
    n = max((x for x in sizes if x), default=None)
    z = float(sps.norm.ppf(tentative_below))
    if n and margin_se is not None and 0 < margin_se < z:
        return text + f", or about {math.ceil(n * (z / margin_se) ** 2):,} {bench} test items instead of {n:,}"
    return text + ", or more test items"


def _resampled(gate: GateConfig) -> bool:
    """Threshold gates on a per-item-mean metric, on its value or an interval bound (module docstring)."""
    return bool(gate.metric) and not gate.baseline and gate.metric.split(".")[1] not in CORPUS


def _values(entry: MetricScore, metric: str, picks: dict[int, np.ndarray], resamples: int, seed: int,
            rng: np.random.Generator) -> np.ndarray:
    """(R,) the metric on R resamples: the candidate's seed draw (made once per seed count), then the shared
    item draw `seed` fixes."""
    draws = item_draws(metric, per_seed_items(entry), None, resamples, seed)  # (S, R)
    if len(draws) not in picks:
        picks[len(draws)] = rng.integers(0, len(draws), size=(resamples, len(draws)))  # (R, S) seed indices
    return draws[picks[len(draws)], np.arange(resamples)[:, None]].mean(axis=1)


def _past(gate: GateConfig, observed: Any) -> Any:
    """How far `observed` is on the passing side of the gate's threshold (negative: on the failing side)."""
    return observed - gate.value if gate.op in (">=", ">") else gate.value - observed


def bootstrap_agreement(candidates: Rows, verdicts: list[Verdict], gates: list[GateConfig],
                        recommended: str | None, resamples: int = 500, seed: int = 0,
                        tentative_below: float = 0.8) -> Agreement:
    """The agreement, and in words how reliable the recommendation is: tentative below `tentative_below`, with what
    would settle it."""
    candidates = as_rows(candidates)
    agreement = _agreement(candidates, verdicts, gates, recommended, resamples, seed)
    if recommended is None:
        return agreement
    if agreement.share >= tentative_below:
        return dataclasses.replace(agreement, reliability="reliable", tentative_below=tentative_below)
    return dataclasses.replace(agreement, reliability="tentative", tentative_below=tentative_below,
                               settle=settle(candidates, agreement.deciding_gate, agreement.margin_se,
                                             tentative_below))


def _agreement(candidates: list[CandidateRow], verdicts: list[Verdict], gates: list[GateConfig],
               recommended: str | None, resamples: int, seed: int) -> Agreement:
    rng = np.random.Generator(np.random.PCG64(seed))
    eligible = [c for c in candidates if c.status == "ok" and not c.zero_shot and not c.did_not_learn
                and any(b.status == "ok" for b in c.benchmarks)]
    again = [g for g in gates if _resampled(g)]
    names = {g.name for g in again}
    held = [g.name for g in gates if g.name not in names and g.recommendation_stability is None]
    passes = np.ones((len(eligible), resamples), dtype=bool)
    margins: list[tuple[float, str]] = []
    for i, cand in enumerate(eligible):
        mine = [v for v in verdicts if v.candidate == cand.name]
        if not all(v.passed for v in mine if v.gate not in names):
            passes[i] = False
            continue
        picks: dict[int, np.ndarray] = {}  # the candidate's seed draw, shared by all its gates
        for gate in again:
            _, entry, _ = lookup(cand, gate.metric)
            if entry is None or getattr(entry, gate.on) is None or not (entry.per_item or entry.per_seed):
                passes[i] &= any(v.passed for v in mine if v.gate == gate.name)
                continue
            values = _values(entry, gate.metric.split(".")[1], picks, resamples, seed, rng)
            observed = getattr(entry, gate.on) + (values - entry.value)  # a bound moves with the value, width held
            passes[i] &= OPS[gate.op](observed, gate.value)
            if cand.name == recommended:
                sd = float(np.std(values, ddof=1))
                past = float(_past(gate, getattr(entry, gate.on)))
                margins.append((past / sd if sd > 0 else math.copysign(math.inf, past), gate.name))
    order = sorted(range(len(eligible)), key=lambda i: smallest(eligible[i]))
    same = sum(next((eligible[i].name for i in order if passes[i, r]), None) == recommended
               for r in range(resamples))
    margin, deciding = min(margins) if margins else (None, None)
    return Agreement(same / resamples, held, deciding, margin)
