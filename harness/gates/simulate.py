"""Simulated bake-offs of known truth for the adaptive-seed rule (harness/gates/adaptive.py): what it saves against
the full grid of `max` seeds everywhere, and what it gets wrong. No training: every answer is drawn.

The model. Each trial draws its own validation and test items (item logits b_i ~ N(0, 1.2^2), shared by every arm,
as a real test set is), and every arm (a candidate under one sweep setting) has a logit shift that makes its
population accuracy (over items and seeds) the scenario's true value; each training seed adds u_s ~ N(0, tau^2) to
the logits, tau set so the accuracy's sd over seeds is about `seed_sd`, and each answer is right with probability
sigmoid(b_i + shift + u_s). Setting k of a candidate is `setting_gap` x k below its first setting, on validation and
test alike. The gate is `test accuracy >= threshold` (on the value), or, in the A/A scenario, a no_regression
baseline gate against a stored 3-seed baseline of the same truth.

Every trial of a scenario runs at once, as arrays, through the rule's own functions (adaptive.decide, Evidence,
item_part): the full grid is one decision at `max` seeds per arm; the adaptive run adds a seed to the arms the rule
asks for, round by round, reading prefixes of the same seeds. Run it yourself:

    python -m harness.gates.simulate                      # every scenario, 2,000 trials each
    python -m harness.gates.simulate --scenario near-tie --seed-sd 0.03 --items 500 --gap 0.04 --max 5
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import expit

from harness.gates.adaptive import Decision, Evidence, GateRule, Policy, decide, item_part, seed_spread, select

ITEM_SD = 1.2  # spread of item difficulty on the logit scale


@dataclass(frozen=True)
class Scenario:
    name: str
    truths: tuple[float, ...]  # each candidate's true test accuracy (its best setting), smallest candidate first
    threshold: float = 0.70
    settings: int = 2
    setting_gap: float = 0.08
    seed_sd: float = 0.05
    items: int = 228
    baseline: float | None = None  # A/A: a no_regression gate against a 3-seed baseline of this truth
    margin: float = 0.0
    spread: float = 0.0  # > 0: each trial's truths are drawn uniformly within +-spread of the threshold instead

    def best(self, truths: np.ndarray) -> np.ndarray:
        """(T,) the candidate the truth recommends: the smallest whose true value passes (-1: none)."""
        if self.baseline is not None:
            return np.where(truths[:, 0] >= self.baseline - self.margin, 0, -1)
        ok = truths >= self.threshold
        return np.where(ok.any(axis=-1), np.argmax(ok, axis=-1), -1)

    def levels(self, g: np.random.Generator, trials: int) -> np.ndarray:
        """(T, C) each trial's true values."""
        if self.spread:
            return self.threshold + g.uniform(-self.spread, self.spread, size=(trials, len(self.truths)))
        return np.broadcast_to(np.asarray(self.truths, dtype=float), (trials, len(self.truths)))


def scenarios(seed_sd: float = 0.05, items: int = 228, gap: float = 0.02) -> dict[str, Scenario]:
    """The four bake-offs of issue 30 and the A/A one; `gap` is how far the deciding candidates sit from the gate."""
    base = Scenario("", (), seed_sd=seed_sd, items=items)
    return {
        "clear-winner": replace(base, name="clear-winner", truths=(0.50, 0.82, 0.84, 0.86)),
        "near-tie": replace(base, name="near-tie", truths=(0.70 - gap / 2, 0.70 + gap / 2, 0.80, 0.84)),
        "small-near-gate": replace(base, name="small-near-gate", truths=(0.70 + gap, 0.84, 0.86, 0.88)),
        "all-fail": replace(base, name="all-fail", truths=(0.50, 0.55, 0.60, 0.62)),
        "a/a": replace(base, name="a/a", truths=(0.75,), settings=1, baseline=0.75),
    }


class Population:
    """Accuracy as a function of the logit shift, over items b ~ N(0, ITEM_SD^2) and seeds u ~ N(0, tau^2)
    (Gauss-Hermite on both)."""

    def __init__(self) -> None:
        nodes, weights = np.polynomial.hermite.hermgauss(40)
        self.z, self.w = math.sqrt(2) * nodes, weights / math.sqrt(math.pi)  # standard normal nodes and weights
        self.shifts = np.linspace(-8, 8, 1601)

    def accuracy(self, shifts: np.ndarray, tau: float = 0.0) -> np.ndarray:
        eta = ITEM_SD * self.z[:, None, None] + tau * self.z[None, :, None] + np.asarray(shifts)[None, None, :]
        return np.einsum("i,j,ijk->k", self.w, self.w, expit(eta))

    def shift_for(self, values: np.ndarray, tau: float) -> np.ndarray:
        return np.interp(values, self.accuracy(self.shifts, tau), self.shifts)

    def tau_for(self, value: float, seed_sd: float, items: int) -> float:
        """The logit seed sd that makes a seed's accuracy on `items` test items vary by about `seed_sd` around the
        population mean near `value` (what a stored run's seed_sd measures: the training seed's part plus the coin
        flip of each answer, value (1 - value) / items), through the slope of accuracy in the shift."""
        acc = self.accuracy(self.shifts)
        slope = float(np.interp(value, acc, np.gradient(acc, self.shifts)))
        training = math.sqrt(max(seed_sd ** 2 - value * (1 - value) / items, (seed_sd / 4) ** 2))
        return training / max(slope, 1e-6)


@dataclass
class Draws:
    """(T, A, S) per-seed statistics of every arm on one split, for prefixes of its seeds: y the seed's accuracy,
    zsq and pvar the mean over items of zbar^2 and the variance over items of zbar, zbar the per-item mean over the
    first s + 1 seeds; zbar (T, A, n) after every seed; cross (T, A, S) the mean over items of zbar times another
    side's per-item mean (the A/A baseline's)."""
    y: np.ndarray
    zsq: np.ndarray
    pvar: np.ndarray
    zbar: np.ndarray
    cross: np.ndarray | None = None


def draw(g: np.random.Generator, b: np.ndarray, shifts: np.ndarray, tau: float, seeds: int,
         other: np.ndarray | None = None) -> Draws:
    """Every arm's 0/1 answers under `seeds` seeds on the trial's items b (T, 1, n); shifts (T, A)."""
    trials, n = b.shape[0], b.shape[-1]
    shifts = np.broadcast_to(shifts, (trials, shifts.shape[-1])).astype(np.float32)
    arms = shifts.shape[-1]
    z = np.zeros((trials, arms, n), np.float32)
    y, zsq, pvar, cross = (np.zeros((trials, arms, seeds)) for _ in range(4))
    for s in range(seeds):
        u = g.normal(0, tau, size=(trials, arms, 1)).astype(np.float32)
        p = expit(b + shifts[..., None] + u)
        x = g.random(p.shape, dtype=np.float32) < p
        z += x
        y[..., s] = x.mean(axis=-1)
        zsq[..., s] = np.einsum("tan,tan->ta", z, z) / (n * (s + 1) ** 2)
        pvar[..., s] = zsq[..., s] - y[..., : s + 1].mean(axis=-1) ** 2
        if other is not None:
            cross[..., s] = np.einsum("tan,tn->ta", z, other) / (n * (s + 1))
    return Draws(y, zsq, pvar, z / seeds, cross if other is not None else None)


def prefix(d: Draws, counts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Values (T, A, S) with the seeds past each arm's count as NaN, and their item part (T, A)."""
    values, zsq, pvar = _cut(d, counts)
    return values, item_part(pvar, n, [seed_spread(values, values, zsq)])


def _cut(d: Draws, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    seeds = d.y.shape[-1]
    last = np.clip(counts - 1, 0, seeds - 1)[..., None]
    values = np.where(np.arange(seeds) < counts[..., None], d.y, np.nan)
    return (values, np.take_along_axis(d.zsq, last, axis=-1)[..., 0],
            np.take_along_axis(d.pvar, last, axis=-1)[..., 0])


@dataclass
class World:
    """One scenario's trials: every arm's draws under `max` seeds on validation and test, and the A/A baseline."""
    scenario: Scenario
    candidate_of: np.ndarray  # (A,)
    validation: Draws
    test: Draws
    baseline: Draws | None  # (T, 1, 3)
    truths: np.ndarray  # (T, C)


def world(sc: Scenario, trials: int, seeds: int, seed: int) -> World:
    g = np.random.Generator(np.random.PCG64(seed))
    pop = Population()
    truths = sc.levels(g, trials)
    tau = pop.tau_for(float(np.mean(truths)), sc.seed_sd, sc.items)
    values = (truths[..., None] - sc.setting_gap * np.arange(sc.settings)).reshape(trials, -1)  # (T, A)
    shifts = pop.shift_for(values, tau)
    items = [g.normal(0, ITEM_SD, size=(trials, 1, sc.items)).astype(np.float32) for _ in range(2)]
    validation = draw(g, items[0], shifts, tau, seeds)
    baseline = None
    if sc.baseline is not None:
        baseline = draw(g, items[1], pop.shift_for(np.array([sc.baseline]), tau), tau, 3)
    test = draw(g, items[1], shifts, tau, seeds, None if baseline is None else baseline.zbar[:, 0])
    return World(sc, np.repeat(np.arange(len(sc.truths)), sc.settings), validation, test, baseline, truths)


def gate_evidence(w: World, counts: np.ndarray, selected: np.ndarray) -> tuple[GateRule, Evidence]:
    """The scenario's gate and its evidence about each candidate's selected arm (T, C, S)."""
    sc = w.scenario
    n = sc.items
    sel_counts = np.take_along_axis(counts, selected, axis=-1)
    d = w.test
    def arm(a: np.ndarray) -> np.ndarray:
        return np.take_along_axis(a, selected[..., None], axis=1)
    pick = Draws(arm(d.y), arm(d.zsq), arm(d.pvar), d.zbar, None if d.cross is None else arm(d.cross))
    values, item = prefix(pick, sel_counts, n)
    if w.baseline is None:
        return GateRule("accuracy", ">=", sc.threshold), Evidence(values, item)
    yb = w.baseline.y[:, 0, :]  # (T, 3)
    mb = yb.mean(axis=-1)
    zsq_b = w.baseline.zsq[:, 0, -1]
    spread_b = seed_spread(yb, yb, zsq_b)
    values, zsq_c, pvar_c = _cut(pick, sel_counts)
    assert pick.cross is not None
    last = np.clip(sel_counts - 1, 0, d.y.shape[-1] - 1)[..., None]
    cross = np.take_along_axis(pick.cross, last, axis=-1)[..., 0]
    mc = np.nanmean(values, axis=-1)
    # the variance over items of zbar_c - zbar_b: E[(dz)^2] - (E dz)^2
    pvar_d = zsq_c - 2 * cross + zsq_b[:, None] - (mc - mb[:, None]) ** 2
    item = item_part(pvar_d, n, [seed_spread(values, values, zsq_c), spread_b[:, None]])
    item = item + (yb.var(axis=-1, ddof=1) / 3)[:, None]  # the baseline's own seed part
    gate = GateRule("no regression", ">=", -sc.margin, on="regression")
    return gate, Evidence(values - mb[:, None, None], item, df_cap=2.0)


def evaluate(w: World, counts: np.ndarray, look: int, policy: Policy, stopped: np.ndarray | None = None
             ) -> Decision:
    n = w.scenario.items
    values, item = prefix(w.validation, counts, n)
    validation = Evidence(values, item)
    selected = select(validation, w.candidate_of, len(w.scenario.truths))
    gate, ev = gate_evidence(w, counts, selected)
    # validation measures the threshold gate's metric (accuracy, drawn from the same levels), not a baseline gate's
    return decide(look, policy, w.candidate_of, validation, [gate], [ev], stopped=stopped,
                  proxies=[w.baseline is None])


@dataclass(frozen=True)
class Outcome:
    """What the adaptive rule and the full grid did over every trial of a scenario."""
    scenario: str
    trials: int
    units: float  # the adaptive rule's mean fine-tunes
    full_units: int
    units_range: tuple[float, float]  # its 10th and 90th percentiles
    stable_at_stop: float  # share of adaptive runs whose stability reached the target
    agreement: float  # the adaptive recommendation equals the full grid's, where the full grid's stability >= 0.95
    stable_trials: int
    best_adaptive: float  # share recommending the truth's candidate (or nothing, when nothing truly passes)
    best_full: float
    best_lost: int  # trials where the full grid recommends the truth's candidate and the adaptive run does not
    best_won: int  # the reverse
    tentative: float  # share of adaptive runs whose final stability is below 0.8
    false_alarms: float | None  # A/A: share flagged as a regression (adaptive)
    false_alarms_full: float | None
    false_alarms_naive: float | None  # A/A: adaptive looks with every look at the full alpha (no spending)


def run(sc: Scenario, trials: int = 2000, policy: Policy | None = None, seed: int = 0) -> Outcome:
    policy = policy or Policy()
    w = world(sc, trials, policy.max, seed)
    arms = len(w.candidate_of)
    full = evaluate(w, np.full((trials, arms), policy.max), 0, Policy(policy.max, policy.max, policy.stability))
    adaptive, counts = adapt(w, policy, trials, arms)
    best = sc.best(w.truths)
    stable = full.stability >= 0.95
    name = sc.name + (f" margin {sc.margin:g}" if sc.margin else "")
    used = counts.sum(axis=-1)
    out = dict(scenario=name, trials=trials, units=float(used.mean()), full_units=arms * policy.max,
               units_range=(float(np.percentile(used, 10)), float(np.percentile(used, 90))),
               stable_at_stop=float(np.mean(adaptive.stability >= policy.stability)),
               agreement=float(np.mean(adaptive.recommended[stable] == full.recommended[stable])) if stable.any()
               else float("nan"), stable_trials=int(stable.sum()),
               best_adaptive=float(np.mean(adaptive.recommended == best)),
               best_full=float(np.mean(full.recommended == best)),
               best_lost=int(np.sum((full.recommended == best) & (adaptive.recommended != best))),
               best_won=int(np.sum((full.recommended != best) & (adaptive.recommended == best))),
               tentative=float(np.mean(adaptive.stability < 0.8)), false_alarms=None, false_alarms_full=None,
               false_alarms_naive=None)
    if sc.baseline is not None:
        naive, _ = adapt(w, replace(policy, spend=False), trials, arms)
        out |= dict(false_alarms=_flagged(adaptive), false_alarms_full=_flagged(full),
                    false_alarms_naive=_flagged(naive))
    return Outcome(**out)  # type: ignore[arg-type]


def _flagged(d: Decision) -> float:
    """Share of trials whose baseline gate flags a regression (fails with 3 or more seeds: clear_fail)."""
    return float(np.mean(~d.passes[..., 0] & d.clear_fail[..., 0]))


def adapt(w: World, policy: Policy, trials: int, arms: int) -> tuple[Decision, np.ndarray]:
    """The adaptive run of every trial: rounds until the rule adds no seed; each trial keeps the decision of the
    round it stopped at."""
    counts = np.full((trials, arms), policy.min)
    final: Decision | None = None
    stopped = None
    live = np.ones(trials, bool)
    for look in range(policy.looks):
        d = evaluate(w, counts, look, policy, stopped)
        final = d if final is None else _keep(final, d, live)
        live &= ~d.done
        stopped = d.stopped
        if not live.any():
            break
        counts = counts + (d.more & live[:, None])
    assert final is not None
    return final, counts


def _keep(old: Decision, new: Decision, live: np.ndarray) -> Decision:
    """The decision of each trial still live taken from `new`, the others kept."""
    def pick(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        mask = live.reshape(live.shape + (1,) * (a.ndim - 1))
        return np.where(mask, b, a)
    return Decision(*(pick(getattr(old, f), getattr(new, f)) for f in Decision.__dataclass_fields__))


def table(outcomes: list[Outcome], policy: Policy) -> str:
    """The measured rates, one row per scenario (what docs/statistics.md quotes)."""
    head = (f"adaptive seeds (min {policy.min}, max {policy.max}, stability {policy.stability:g}) against the full "
            f"grid of {policy.max} seeds, {outcomes[0].trials:,} simulated bake-offs per scenario")
    rows = [("scenario", "fine-tunes", "of full grid", "agrees (full stable)", "best: adaptive / full (paired -/+)",
             "tentative", "A/A alarms: adaptive / full / unspent")]
    for o in outcomes:
        alarms = "-" if o.false_alarms is None else \
            f"{o.false_alarms:.2%} / {o.false_alarms_full:.2%} / {o.false_alarms_naive:.2%}"
        agree = "-" if not o.stable_trials else f"{o.agreement:.1%} of {o.stable_trials:,}"
        rows.append((o.scenario, f"{o.units:.1f} of {o.full_units}", f"{o.units / o.full_units:.1%}", agree,
                     f"{o.best_adaptive:.2%} / {o.best_full:.2%} (-{o.best_lost} +{o.best_won})", f"{o.tentative:.1%}",
                     alarms))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join([head, *lines])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sftbench simulate", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="all", help="clear-winner, near-tie, small-near-gate, all-fail, a/a or all")
    p.add_argument("--trials", type=int, default=2000, help="simulated bake-offs per scenario (default 2000)")
    p.add_argument("--seed-sd", type=float, default=0.05, help="sd of a seed's test accuracy (default 0.05)")
    p.add_argument("--items", type=int, default=228, help="validation and test items (default 228)")
    p.add_argument("--gap", type=float, default=0.02, help="how far the deciding candidates sit from the gate")
    p.add_argument("--margin", type=float, default=0.0, help="the A/A baseline gate's margin (default 0)")
    p.add_argument("--min", type=int, default=2, help="recipe.seeds.min (default 2)")
    p.add_argument("--max", type=int, default=8, help="recipe.seeds.max (default 8)")
    p.add_argument("--stability", type=float, default=0.95, help="recipe.seeds.stability (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the simulation")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    known = scenarios(args.seed_sd, args.items, args.gap)
    if args.scenario != "all" and args.scenario not in known:
        print(f"sftbench simulate: unknown scenario {args.scenario!r}; known: {', '.join(known)}, all",
              file=sys.stderr)
        return 2
    if not 2 <= args.min <= args.max or args.trials < 1:
        print("sftbench simulate: --min must be at least 2 and at most --max, --trials at least 1", file=sys.stderr)
        return 2
    policy = Policy(args.min, args.max, args.stability)
    chosen = list(known.values()) if args.scenario == "all" else [known[args.scenario]]
    outcomes = [run(replace(sc, margin=args.margin), args.trials, policy, args.seed) for sc in chosen]
    print(table(outcomes, policy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
