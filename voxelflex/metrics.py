"""Regression metrics shared by training (per epoch) and evaluation.

All functions take float arrays of equal length, ignore rows where truth or prediction is not
finite, and return NaN when fewer than two rows (or zero variance) leave the value undefined.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "METRIC_NAMES",
    "grouped_metrics",
    "grouped_pearson",
    "pearson",
    "rank",
    "regression_metrics",
    "spearman",
    "summarize",
]


def _finite(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    keep = np.isfinite(y) & np.isfinite(p)
    return y[keep], p[keep]


def pearson(y: np.ndarray, p: np.ndarray) -> float:
    """Pearson correlation of truth ``y`` and prediction ``p``.

    Parameters
    ----------
    y, p : numpy.ndarray, float, shape (N,)
        Truth and prediction in one unit; rows where either is not finite are ignored.

    Returns
    -------
    float
        r, NaN with fewer than 2 finite rows or a constant ``y`` or ``p``.
    """
    y, p = _finite(y, p)
    if len(y) < 2 or np.ptp(y) == 0 or np.ptp(p) == 0:
        # constant input: rounding in the mean would otherwise give a meaningless tiny r
        return float("nan")
    yc, pc = y - y.mean(), p - p.mean()
    denom = np.sqrt((yc * yc).sum() * (pc * pc).sum())
    return float((yc * pc).sum() / denom) if denom > 0 else float("nan")


def rank(x: np.ndarray) -> np.ndarray:
    """Ranks starting at 1, ties get their average rank (as scipy.stats.rankdata).

    Parameters
    ----------
    x : numpy.ndarray, shape (N,)

    Returns
    -------
    numpy.ndarray of float64, shape (N,)
    """
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
    """Spearman rank correlation: :func:`pearson` of the ranks of the finite rows.

    Parameters
    ----------
    y, p : numpy.ndarray, float, shape (N,)
        Truth and prediction; rows where either is not finite are ignored.
    """
    y, p = _finite(y, p)
    if len(y) < 2:
        return float("nan")
    return pearson(rank(y), rank(p))


METRIC_NAMES = (
    "pearson",
    "spearman",
    "r2",
    "rmse",
    "mae",
    "mse",
    "mean_relative_error",
    "cv_rmse_percent",
)
"""What :func:`regression_metrics` reports besides ``n``."""


def regression_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The row count ``n`` and each of :data:`METRIC_NAMES`.

    ``r2`` is 1 − SSE / SST; ``rmse``, ``mae`` and ``mse`` are in the unit of ``y`` (squared
    for ``mse``); ``mean_relative_error`` is the mean of |p − y| / y over rows with y > 0
    (a fraction, NaN without such rows); ``cv_rmse_percent`` is RMSE as a percentage of the mean
    of ``y`` (NaN when that mean is not positive).
    """
    y, p = _finite(y, p)
    n = len(y)
    if n == 0:
        return {"n": 0, **dict.fromkeys(METRIC_NAMES, float("nan"))}
    err = p - y
    ss_tot = float(((y - y.mean()) ** 2).sum())
    mse = float((err**2).mean())
    rmse = float(np.sqrt(mse))
    positive = y > 0
    mean_y = float(y.mean())
    return {
        "n": int(n),
        "pearson": pearson(y, p),
        "spearman": spearman(y, p),
        "r2": 1.0 - float((err**2).sum()) / ss_tot if np.ptp(y) > 0 else float("nan"),
        "rmse": rmse,
        "mae": float(np.abs(err).mean()),
        "mse": mse,
        "mean_relative_error": (
            float((np.abs(err[positive]) / y[positive]).mean()) if positive.any() else float("nan")
        ),
        "cv_rmse_percent": 100.0 * rmse / mean_y if mean_y > 0 else float("nan"),
    }


def grouped_metrics(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> dict[str, dict]:
    """:func:`regression_metrics` for each distinct value of ``groups`` (keys as strings).

    Parameters
    ----------
    y, p : numpy.ndarray, float, shape (N,)
        Truth and prediction, in the RMSF unit.
    groups : numpy.ndarray, shape (N,)
        Group of each row (any values ``np.unique`` sorts).
    """
    groups = np.asarray(groups)
    out = {}
    for g in np.unique(groups):
        sel = groups == g
        out[str(g)] = regression_metrics(np.asarray(y)[sel], np.asarray(p)[sel])
    return out


def grouped_pearson(
    y: np.ndarray, p: np.ndarray, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation within each group, vectorised over all groups at once.

    Parameters
    ----------
    y, p : numpy.ndarray, float, shape (N,)
        Truth and prediction; rows where either is not finite are ignored.
    codes : numpy.ndarray, int, shape (N,)
        Group code of each row (any integers, e.g. from ``np.unique(..., return_inverse=True)``).

    Returns
    -------
    groups : numpy.ndarray, int64, shape (G,)
        Distinct codes (sorted) that have at least one finite row.
    r : numpy.ndarray, float64, shape (G,)
        Pearson r of each group; NaN where it has fewer than two rows or zero variance.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    codes = np.asarray(codes, dtype=np.int64)
    keep = np.isfinite(y) & np.isfinite(p)
    y, p, codes = y[keep], p[keep], codes[keep]
    groups, inv = np.unique(codes, return_inverse=True)
    n = np.bincount(inv, minlength=len(groups)).astype(np.float64)
    # Centre on group means first: the one-pass sum formula loses precision on large offsets.
    with np.errstate(invalid="ignore", divide="ignore"):
        yc = y - (np.bincount(inv, y, len(groups)) / n)[inv]
        pc = p - (np.bincount(inv, p, len(groups)) / n)[inv]
        syy = np.bincount(inv, yc * yc, len(groups))
        spp = np.bincount(inv, pc * pc, len(groups))
        syp = np.bincount(inv, yc * pc, len(groups))
        denom = np.sqrt(syy * spp)
        # A group constant in y or p has no r: rounding in its mean would leave a tiny nonzero
        # denominator and a meaningless r ≈ 1e-16 (as in ``pearson``).
        varies = _group_ptp(y, inv, len(groups)) > 0
        varies &= _group_ptp(p, inv, len(groups)) > 0
        ok = (n >= 2) & varies & (denom > 0)
        r = np.where(ok, syp / np.where(denom > 0, denom, 1.0), np.nan)
    return groups, r


def _group_ptp(x: np.ndarray, inv: np.ndarray, n_groups: int) -> np.ndarray:
    """Max minus min of ``x`` within each group (codes ``inv`` in ``0..n_groups-1``)."""
    hi = np.full(n_groups, -np.inf)
    lo = np.full(n_groups, np.inf)
    np.maximum.at(hi, inv, x)
    np.minimum.at(lo, inv, x)
    return hi - lo


def summarize(values: np.ndarray) -> dict[str, float]:
    """Mean, median, quartiles and counts of the finite ``values`` (e.g. per-domain Pearson r).

    ``n`` counts the finite values, ``n_undefined`` the NaN ones (groups too small or constant).
    """
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    out = {"n": len(finite), "n_undefined": int(len(values) - len(finite))}
    if len(finite) == 0:
        nan = float("nan")
        return {**out, "mean": nan, "median": nan, "q25": nan, "q75": nan}
    q25, median, q75 = np.percentile(finite, [25, 50, 75])
    return {
        **out,
        "mean": float(finite.mean()),
        "median": float(median),
        "q25": float(q25),
        "q75": float(q75),
    }
