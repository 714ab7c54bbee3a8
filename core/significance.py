"""Is a model better than a baseline by more than chance? A paired comparison of per-target scores.

Both recommenders are scored on the same targets, so the question is about the mean of the per-target
differences: a paired bootstrap over targets (seeded) gives its 95% interval, a paired t interval sits
beside it, and a Wilcoxon signed-rank test (normal approximation with the tie correction, as scipy's
`wilcoxon(..., method="approx")` does for large samples) says whether the differences lean one way.
Plain numpy: no scipy dependency.
"""
from __future__ import annotations

import math

import numpy as np

Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile


def paired_difference(model: np.ndarray, baseline: np.ndarray, *, resamples: int = 2000, seed: int = 0,
                      chunk: int = 100) -> dict[str, float | bool | int]:
    """Mean of model - baseline over paired per-target scores, with a 95% bootstrap interval (resampling
    targets with replacement, `resamples` times), the paired t interval, the Wilcoxon signed-rank z and
    two-sided p, and whether the bootstrap interval excludes 0."""
    model, baseline = np.asarray(model, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if model.shape != baseline.shape or model.ndim != 1:
        raise ValueError(f"paired_difference: expected two 1-d arrays of the same length, got shapes "
                         f"{model.shape} and {baseline.shape}")
    diff = model - baseline  # (T,)
    if len(diff) < 2:  # no spread to estimate: the figures are NaN, never a claim
        nan = float("nan")
        return {"targets": len(diff), "model": float(model.mean()) if len(diff) else nan,
                "baseline": float(baseline.mean()) if len(diff) else nan,
                "difference": float(diff.mean()) if len(diff) else nan, "bootstrap_low": nan, "bootstrap_high": nan,
                "t_low": nan, "t_high": nan, "wilcoxon_z": nan, "wilcoxon_p": nan, "excludes_zero": False}
    low, high = bootstrap_interval(diff, resamples=resamples, seed=seed, chunk=chunk)
    half = Z_95 * diff.std(ddof=1) / math.sqrt(len(diff))
    z, p = wilcoxon_signed_rank(diff)
    return {"targets": len(diff), "model": float(model.mean()), "baseline": float(baseline.mean()),
            "difference": float(diff.mean()), "bootstrap_low": low, "bootstrap_high": high,
            "t_low": float(diff.mean() - half), "t_high": float(diff.mean() + half),
            "wilcoxon_z": z, "wilcoxon_p": p, "excludes_zero": bool(low > 0 or high < 0)}


def bootstrap_interval(diff: np.ndarray, *, resamples: int = 2000, seed: int = 0,
                       chunk: int = 100) -> tuple[float, float]:
    """The 2.5% and 97.5% percentiles of the mean of `diff` over resamples of its entries (with replacement);
    `chunk` resamples are drawn at once, so memory stays at chunk x len(diff) indices."""
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for first in range(0, resamples, chunk):
        count = min(chunk, resamples - first)
        picks = rng.integers(0, len(diff), size=(count, len(diff)))  # (count, T)
        means[first:first + count] = diff[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def wilcoxon_signed_rank(diff: np.ndarray) -> tuple[float, float]:
    """(z, two-sided p) of the Wilcoxon signed-rank test of `diff` against 0, zeros dropped (Wilcoxon's rule),
    tied |diff| given their average rank and the variance corrected for ties; (0, 1) when all are zero."""
    diff = diff[diff != 0]
    n = len(diff)
    if n == 0:
        return 0.0, 1.0
    _, inverse, counts = np.unique(np.abs(diff), return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # (distinct,) the mean rank of each tie group
    w_plus = average_rank[inverse][diff > 0].sum()
    mean = n * (n + 1) / 4.0
    variance = n * (n + 1) * (2 * n + 1) / 24.0 - (counts ** 3 - counts).sum() / 48.0
    if variance <= 0:
        return 0.0, 1.0
    z = (w_plus - mean) / math.sqrt(variance)
    return float(z), float(math.erfc(abs(z) / math.sqrt(2.0)))
