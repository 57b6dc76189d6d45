"""harness.statistics.intervals against known values and scipy: Wilson intervals, exact McNemar, seeded bootstrap."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.stats import binomtest

from harness.statistics.intervals import (
    NEAR_EDGE,
    bootstrap_ci,
    bootstrap_indices,
    mcnemar_exact,
    mean_ci,
    paired_diff_ci,
    wilson,
)
from tests.harness.test_coverage import rng  # a named bit generator (PCG64); why, in that module's docstring


def test_wilson_known_value():
    """Plain Wilson in the middle; with fewer than NEAR_EDGE successes or failures, Wilson with the continuity
    correction (scipy's 'wilsoncc'), which holds its coverage near 0 and 1 (test_small_seed_calibration.py)."""
    for k, n in [(17, 50), (60, 100), (8, 10), (0, 12), (95, 100), (3, 228)]:
        method = "wilsoncc" if min(k, n - k) < NEAR_EDGE else "wilson"
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method=method)
        assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12), (k, n, method)


def test_wilson_hand_formula_and_edges():
    z, n, k = 1.959963984540054, 50, 17
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert wilson(k, n) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert wilson(0, 20)[0] == 0.0 and wilson(20, 20)[1] == 1.0
    assert all(math.isnan(x) for x in wilson(0, 0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mcnemar_exact_matches_scipy_binomtest(seed):
    r = rng(seed)
    before, after = r.integers(0, 2, 120), r.integers(0, 2, 120)
    lost, gained, p = mcnemar_exact(before.tolist(), after.tolist())
    assert lost == int(((before == 1) & (after == 0)).sum()) and gained == int(((before == 0) & (after == 1)).sum())
    assert p == sps.binomtest(lost, lost + gained, 0.5).pvalue
    # the exact two-sided McNemar p-value: twice the smaller binomial tail, capped at 1
    assert p == pytest.approx(min(1.0, 2 * sps.binom.cdf(min(lost, gained), lost + gained, 0.5)), abs=1e-12)


def test_mcnemar_no_discordant_pairs():
    assert mcnemar_exact([1, 0, 1], [1, 0, 1]) == (0, 0, 1.0)


def test_bootstrap_is_deterministic_per_seed():
    assert np.array_equal(bootstrap_indices(30, 50, 7), bootstrap_indices(30, 50, 7))
    assert not np.array_equal(bootstrap_indices(30, 50, 7), bootstrap_indices(30, 50, 8))
    values = rng(0).normal(size=200)
    stat = lambda idx: float(np.median(values[idx]))  # noqa: E731
    assert bootstrap_ci(stat, 200, 300, 5) == bootstrap_ci(stat, 200, 300, 5)
    low, high = mean_ci(values, 500, 0)
    assert low < values.mean() < high
    assert all(math.isnan(x) for x in bootstrap_ci(stat, 0))


def test_paired_diff_ci_is_mean_ci_of_differences():
    r = rng(1)
    x, y = r.normal(1, 1, 100), r.normal(0, 1, 100)
    assert paired_diff_ci(x, y, 400, 2) == mean_ci(x - y, 400, 2)
    low, high = paired_diff_ci(x, y, 400, 2)
    assert 0 < low < high
