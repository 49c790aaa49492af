"""Regression metrics shared by training (per epoch) and evaluation.

All functions take float arrays of equal length, ignore rows where truth or prediction is not
finite, and return NaN when fewer than two rows (or zero variance) leave the value undefined.
"""

from __future__ import annotations

import numpy as np

__all__ = ["grouped_metrics", "pearson", "rank", "regression_metrics", "spearman"]


def _finite(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    keep = np.isfinite(y) & np.isfinite(p)
    return y[keep], p[keep]


def pearson(y: np.ndarray, p: np.ndarray) -> float:
    """Pearson correlation of truth ``y`` and prediction ``p``."""
    y, p = _finite(y, p)
    if len(y) < 2:
        return float("nan")
    yc, pc = y - y.mean(), p - p.mean()
    denom = np.sqrt((yc * yc).sum() * (pc * pc).sum())
    return float((yc * pc).sum() / denom) if denom > 0 else float("nan")


def rank(x: np.ndarray) -> np.ndarray:
    """Ranks starting at 1, ties get their average rank (as scipy.stats.rankdata)."""
    x = np.asarray(x)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    first = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + ends + 1) / 2.0  # mean of 1-based positions start+1 .. end
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = avg[group]
    return ranks


def spearman(y: np.ndarray, p: np.ndarray) -> float:
    """Spearman rank correlation."""
    y, p = _finite(y, p)
    if len(y) < 2:
        return float("nan")
    return pearson(rank(y), rank(p))


def regression_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Pearson, Spearman, R², RMSE, MAE and the row count ``n``."""
    y, p = _finite(y, p)
    n = len(y)
    if n == 0:
        nan = float("nan")
        return {"n": 0, "pearson": nan, "spearman": nan, "r2": nan, "rmse": nan, "mae": nan}
    err = p - y
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {
        "n": int(n),
        "pearson": pearson(y, p),
        "spearman": spearman(y, p),
        "r2": 1.0 - float((err**2).sum()) / ss_tot if ss_tot > 0 else float("nan"),
        "rmse": float(np.sqrt((err**2).mean())),
        "mae": float(np.abs(err).mean()),
    }


def grouped_metrics(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> dict[str, dict]:
    """:func:`regression_metrics` for each distinct value of ``groups`` (keys as strings)."""
    groups = np.asarray(groups)
    out = {}
    for g in np.unique(groups):
        sel = groups == g
        out[str(g)] = regression_metrics(np.asarray(y)[sel], np.asarray(p)[sel])
    return out
