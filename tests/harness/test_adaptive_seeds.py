"""Adaptive training seeds (issue 30): the rule (harness/gates/adaptive.py) on hand-made evidence, and its promises
measured by simulation (harness/gates/simulate.py): 2,000 bake-offs per scenario drawn at once as arrays and passed
through the rule's own functions, against the full grid of `max` seeds on the same draws. Each rate is held to its
promise with three binomial standard errors of slack. Run with -s to print the table docs/statistics.md quotes.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from harness.cli import main
from harness.gates import simulate
from harness.gates.adaptive import (AT_MAX, BEHIND, BUDGET, FAILS, NOT_NEEDED, RUNNING, SETTLED, Evidence, GateRule,
                                    Policy, decide, evidence_of, spent)
from harness.statistics.seeds import combine, item_draws

TRIALS, ALPHA = 2000, 0.05
POLICY = Policy(min=2, max=8, stability=0.95)


def slack(p: float, trials: int = TRIALS) -> float:
    return 3 * math.sqrt(max(p * (1 - p), 0.01) / trials)


def rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


# the rule on hand-made evidence ---------------------------------------------------------------------------------

def test_spending_over_rounds_sums_to_alpha():
    for looks in (1, 2, 4, 7):
        assert math.isclose(sum(spent(ALPHA, r, looks) for r in range(looks)), ALPHA)
    assert spent(ALPHA, 6, 7) == ALPHA / 2 and spent(ALPHA, 0, 7) == ALPHA / 12


def test_the_item_part_is_the_limit_of_the_seed_aware_bootstrap():
    """evidence_of's closed form equals combine's item part (se^2 less the seed part) as resamples grow."""
    g = rng(1)
    b = g.normal(0, 1.2, 228)
    x = (g.random((3, 228)) < 1 / (1 + np.exp(-(b + g.normal(0, 0.3, (3, 1)))))).astype(float)
    values, item = evidence_of(x)
    sa = combine([values], [item_draws("accuracy", x, None, 20000, 0)])
    assert math.isclose(item, float(sa.se) ** 2 - values.var(ddof=1) / 3, rel_tol=0.05)


def evidence(values: list[list[float]], item: float = 0.0005) -> Evidence:
    width = max(len(v) for v in values)
    padded = np.array([v + [np.nan] * (width - len(v)) for v in values])
    return Evidence(padded, np.full(len(values), item))


GATE = GateRule("b.accuracy >= 0.7", ">=", 0.7)


def test_a_candidate_far_under_its_gate_stops_after_two_seeds_and_says_why():
    cands = np.array([0, 1, 2])  # one setting each, smallest first
    val = evidence([[0.50, 0.52], [0.80, 0.78], [0.83, 0.86]])
    test = evidence([[0.50, 0.53], [0.74, 0.79], [0.84, 0.85]])
    d = decide(0, POLICY, cands, val, [GATE], [test])
    assert d.stopped[0] == FAILS and not d.more[0]
    assert d.recommended == 1 and d.p_pass[0] < 0.05  # its own 1 degree of freedom: heavy tails
    assert d.more[1]  # the recommendation, 6.5 points over its gate after 2 seeds: still open
    assert d.stopped[2] == SETTLED  # the challenger passes clearly: it would take over should the other fail


def test_a_setting_far_behind_on_validation_stops_and_larger_candidates_stop_once_a_smaller_one_passes():
    cands = np.array([0, 0, 1])
    val = evidence([[0.90, 0.91, 0.90], [0.70, 0.71, 0.69], [0.92, 0.93, 0.92]], item=0.0)
    test = evidence([[0.90, 0.91, 0.905], [0.69, 0.72, 0.70]])  # the larger one is open: near its gate
    d = decide(1, POLICY, cands, val, [GATE], [test])
    assert d.stopped[1] == BEHIND
    assert d.stopped[0] == SETTLED and d.stopped[2] == NOT_NEEDED
    assert d.done and d.recommended == 0


def test_a_candidate_whose_selection_is_open_is_not_called_clearly_failing_on_its_selected_setting():
    """Its selected setting (best on two seeds' validation) clearly fails, but its other setting, not clearly behind,
    sits at the gate on validation: more seeds may switch the selection, as the full grid's do, so it goes on. Once
    the other setting is clearly under the gate on validation too, the candidate clearly fails."""
    cands = np.array([0, 0, 1])
    test = evidence([[0.55, 0.57], [0.84, 0.86]])
    open_ = decide(0, POLICY, cands, evidence([[0.62, 0.78], [0.71, 0.73], [0.85, 0.86]]), [GATE], [test],
                   proxies=[True])
    assert open_.selected[0] == 1 and not open_.clear_fail[0]
    assert (open_.stopped[:2] == RUNNING).all() and open_.more[:2].all()
    shut = evidence([[0.50, 0.56], [0.52, 0.53], [0.85, 0.86]])
    assert (decide(0, POLICY, cands, shut, [GATE], [test], proxies=[True]).stopped[:2] == FAILS).all()
    # without a validation score of the gate's metric the other setting cannot be read: the candidate stays open
    assert (decide(0, POLICY, cands, shut, [GATE], [test]).stopped[:2] == RUNNING).all()


def test_a_smaller_candidate_that_might_still_pass_keeps_its_seeds_at_the_stability_target():
    """The larger candidate passes clearly and the smaller one fails, not clearly: the recommendation is stable, but
    the smaller candidate, which the full grid gives every seed, could still take it over."""
    d = decide(1, POLICY, np.array([0, 1]), evidence([[0.65, 0.67, 0.66], [0.88, 0.92, 0.90]], item=0.0), [GATE],
               [evidence([[0.65, 0.67, 0.66], [0.88, 0.92, 0.90]], item=0.0)])
    assert d.recommended == 1 and d.stability >= POLICY.stability and not d.clear_fail[0]
    assert d.stopped[0] == RUNNING and d.more[0] and d.stopped[1] == SETTLED


def test_max_seeds_and_the_budget_stop_arms():
    cands = np.array([0, 1])
    near = [0.70, 0.72, 0.68, 0.71]
    val, test = evidence([near, near]), evidence([near, near])
    d = decide(POLICY.looks - 1, replace(POLICY, max=4), cands, val, [GATE], [test])
    assert (d.stopped == AT_MAX).all() and d.done
    d = decide(0, replace(POLICY, budget=9), cands, val, [GATE], [test])  # 8 run: one more fits
    assert d.more.tolist() == [True, False] and d.stopped[1] == BUDGET


def test_a_baseline_gate_cannot_be_read_below_three_seeds_so_it_is_never_stable_there():
    cands = np.array([0])
    gate = GateRule("no regression", ">=", 0.0, on="regression")
    d = decide(0, POLICY, cands, evidence([[0.8, 0.8]]), [gate], [evidence([[0.01, 0.0]])])
    assert d.stability == 0.0 and d.more[0]


def test_it_decides_many_trials_at_once():
    cands = np.array([0, 1])
    one = decide(0, POLICY, cands, evidence([[0.5, 0.52], [0.8, 0.82]]), [GATE], [evidence([[0.5, 0.5], [0.8, 0.8]])])
    many = decide(0, POLICY, cands, Evidence(np.stack([evidence([[0.5, 0.52], [0.8, 0.82]]).values] * 3),
                                             np.full((3, 2), 0.0005)),
                  [GATE], [Evidence(np.stack([evidence([[0.5, 0.5], [0.8, 0.8]]).values] * 3), np.full((3, 2), 5e-4))])
    assert (many.stopped == one.stopped).all() and np.allclose(many.stability, one.stability)


# the simulation: units, agreement, best candidate, A/A -------------------------------------------------------------

@pytest.fixture(scope="module")
def outcomes() -> dict[str, simulate.Outcome]:
    out = {name: simulate.run(sc, TRIALS, POLICY) for name, sc in simulate.scenarios().items()}
    out["a/a margin 0.02"] = simulate.run(replace(simulate.scenarios()["a/a"], margin=0.02), TRIALS, POLICY)
    print("\n" + simulate.table(list(out.values()), POLICY))
    return out


MAIN = ("clear-winner", "near-tie", "small-near-gate", "all-fail")


def test_adaptive_seeds_train_at_most_half_the_full_grid_on_average(outcomes):
    shares = [outcomes[s].units / outcomes[s].full_units for s in MAIN]
    assert np.mean(shares) <= 0.5, shares
    assert outcomes["clear-winner"].units / outcomes["clear-winner"].full_units <= 0.35  # losers stop at 2 seeds


@pytest.mark.parametrize("scenario", MAIN)
def test_where_the_full_grid_is_stable_the_adaptive_recommendation_equals_it(outcomes, scenario):
    o = outcomes[scenario]
    if o.stable_trials < 30:
        pytest.skip(f"the full grid is stable in {o.stable_trials} trials only")
    assert o.agreement >= 0.95 - slack(0.95, o.stable_trials), o


@pytest.mark.parametrize("scenario", ["near-tie", "small-near-gate"])
def test_the_truly_best_candidate_is_picked_as_often_as_by_the_full_grid(outcomes, scenario):
    """Paired: both read the same draws, so the difference is the trials where only one of them names the truly best
    candidate (lost: the full grid does, the adaptive run does not), held within three of its standard errors."""
    o = outcomes[scenario]
    assert o.best_lost - o.best_won <= 3 * math.sqrt(o.best_lost + o.best_won), o
    assert o.best_adaptive >= o.best_full - slack(o.best_full), o


def test_the_near_tie_is_tentative(outcomes):
    o = outcomes["near-tie"]
    assert o.tentative >= 0.5  # and the rule says it cannot tell


@pytest.mark.parametrize("scenario", ["a/a", "a/a margin 0.02"])
def test_a_a_false_alarms_of_a_baseline_gate_stay_within_alpha(outcomes, scenario):
    o = outcomes[scenario]
    assert o.false_alarms is not None and o.false_alarms <= ALPHA + slack(ALPHA), o


def test_the_simulation_is_a_command(capsys):
    assert simulate.main(["--scenario", "clear-winner", "--trials", "200", "--max", "5"]) == 0
    out = capsys.readouterr().out
    assert "clear-winner" in out and "of 40" in out
    assert main(["simulate", "--scenario", "nope"]) == 2  # as `sftbench simulate`
    assert "unknown scenario 'nope'" in capsys.readouterr().err
