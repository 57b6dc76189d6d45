"""Intervals and paired tests: Wilson for proportions, seeded bootstrap for everything else,
McNemar exact for paired 0/1 outcomes."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

Z95 = 1.959963984540054


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


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
    values = np.array([statistic(idx) for idx in bootstrap_indices(n, resamples, seed)])
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
    discordant = lost + gained
    p = 1.0 if discordant == 0 else float(sps.binomtest(lost, discordant, 0.5).pvalue)
    return lost, gained, p


def paired_diff_ci(x: Sequence[float], y: Sequence[float], resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of mean(x - y) over items scored on both sides."""
    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    return mean_ci(d, resamples, seed)
