"""Intervals and paired tests: Wilson for proportions, seeded bootstrap for everything else,
McNemar exact for paired 0/1 outcomes."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

Z95 = 1.959963984540054


NEAR_EDGE = 10  # fewer successes or failures than this: Wilson with the continuity correction (docs/statistics.md)


def wilson(successes: Any, n: Any, z: float = Z95) -> tuple[Any, Any]:
    """The 95% interval of a proportion: Wilson's score interval, and near 0 or 1 (fewer than NEAR_EDGE successes
    or failures) Wilson's with the continuity correction (Newcombe 1998, method 4). Plain Wilson covers only 84%
    of the time at n=20 and 89.5% at n=50-100 for some p in 0.95-0.995; the corrected one covers 95.2% or more
    there, and the middle keeps plain Wilson's 93.5-96.7%. Floats in, floats out; arrays in, arrays out."""
    x, m = np.asarray(successes, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / m
        denom = 1 + z * z / m
        centre = (p + z * z / (2 * m)) / denom
        half = z * np.sqrt(p * (1 - p) / m + z * z / (4 * m * m)) / denom
        low, high = centre - half, centre + half
        q, twice = 1 - p, 2 * (m + z * z)
        cc_low = (2 * m * p + z * z - 1 - z * np.sqrt(np.maximum(z * z - 2 - 1 / m + 4 * p * (m * q + 1), 0))) / twice
        cc_high = (2 * m * p + z * z + 1 + z * np.sqrt(np.maximum(z * z + 2 - 1 / m + 4 * p * (m * q - 1), 0))) / twice
    near = np.minimum(x, m - x) < NEAR_EDGE
    low = np.where(x == 0, 0.0, np.where(near, cc_low, low))
    high = np.where(x == m, 1.0, np.where(near, cc_high, high))
    low, high = np.where(m == 0, np.nan, np.clip(low, 0.0, 1.0)), np.where(m == 0, np.nan, np.clip(high, 0.0, 1.0))
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


CHANGE_METHOD = "score interval of a paired change (Tango 1998)"


def change_interval(lost: Any, gained: Any, n: Any, z: float = Z95) -> tuple[Any, Any]:
    """The 95% score interval (Tango 1998) of a paired change in a proportion, (lost - gained) / n: forgetting
    (items right before tuning and wrong after, less the reverse) or a flip-rate increase. Unlike the bootstrap it
    is not [0, 0] when nothing changed: with no changed item of n it is +-z^2 / (n + z^2) (3.0 points at n=122).
    Floats in, floats out; arrays in, arrays out (the calibration tests)."""
    b, c, m = (np.asarray(v, dtype=float) for v in (lost, gained, n))
    estimate = (b - c) / np.where(m > 0, m, np.nan)

    def score(delta: np.ndarray) -> np.ndarray:  # the score statistic at change delta, decreasing in delta
        big_b = -b - c + (2 * m - b + c) * delta
        pi = (np.sqrt(np.maximum(big_b * big_b + 8 * m * c * delta * (1 - delta), 0)) - big_b) / (4 * m)
        var = m * np.maximum(2 * pi + delta * (1 - delta), 1e-300)
        return (b - c - m * delta) / np.sqrt(var)

    bounds = []
    for target, lo, hi in ((z, -np.ones_like(estimate), estimate), (-z, estimate, np.ones_like(estimate))):
        for _ in range(60):  # bisection: the bounds to 1e-18, on every element at once
            mid = (lo + hi) / 2
            above = score(mid) > target
            lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
        bounds.append((lo + hi) / 2)
    low, high = bounds
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) item indices; the same seed always gives the same resamples."""
    rng = np.random.Generator(np.random.PCG64(seed))  # PCG64 named: default_rng's bit generator may change
    return rng.integers(0, n, size=(resamples, n))


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n: int, resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of `statistic(indices)` over seeded resamples of n items; NaN without items, and with
    resamples=0 (a caller that needs only the value, such as the validation metric while training)."""
    if n == 0 or resamples == 0:
        return (float("nan"), float("nan"))
    return _percentile_interval(np.array([statistic(idx) for idx in bootstrap_indices(n, resamples, seed)]), level)


def bootstrap_ci_rows(statistic: Callable[[np.ndarray], np.ndarray], n: int, resamples: int = 1000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float]:
    """bootstrap_ci with a statistic that takes every resample at once, (resamples, n) indices -> (resamples,)
    values: the same resamples and percentiles, without a Python call per resample."""
    if n == 0 or resamples == 0:
        return (float("nan"), float("nan"))
    return _percentile_interval(np.asarray(statistic(bootstrap_indices(n, resamples, seed)), dtype=float), level)


def _percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    return (float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)))


def mean_ci(values: Sequence[float], resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return bootstrap_ci(lambda idx: float(arr[idx].mean()), len(arr), resamples, seed)


def mcnemar_exact(before: ArrayLike, after: ArrayLike) -> tuple[int, int, float]:
    """Counts of 1->0 (lost) and 0->1 (gained) transitions and the exact two-sided McNemar p-value."""
    b = np.asarray(before, dtype=int)
    a = np.asarray(after, dtype=int)
    lost = int(((b == 1) & (a == 0)).sum())
    gained = int(((b == 0) & (a == 1)).sum())
    return lost, gained, float(mcnemar_p(lost, gained))


def mcnemar_p(lost: Any, gained: Any) -> Any:
    """The exact two-sided McNemar p-value from the discordant counts: twice the smaller binomial(lost + gained, 1/2)
    tail, at most 1 (scipy's binomtest for this symmetric case); 1 with no discordant item. Arrays work too."""
    low, total = np.minimum(lost, gained), np.asarray(lost) + np.asarray(gained)
    return np.where(total == 0, 1.0, np.minimum(1.0, 2 * sps.binom.cdf(low, np.maximum(total, 1), 0.5)))[()]


def paired_diff_ci(x: Sequence[float], y: Sequence[float], resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of mean(x - y) over items scored on both sides."""
    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    return mean_ci(d, resamples, seed)
