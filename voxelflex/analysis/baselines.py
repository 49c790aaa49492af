"""Reference predictors fitted on the train split, scored on the same rows as the model.

- ``residue_type_temperature_mean``: mean train RMSF of the same residue type at the same
  temperature (rows whose pair never occurs in train fall back to the temperature fit, counted).
- ``temperature_fit``: least-squares line ``a + b·T`` through all train rows; it measures how much
  of a pooled correlation the temperature trend alone explains.

Physics baselines (when the index has the feature columns): ``contact_number`` (``wcn_ca``, the
inverse-square CA contact number), ``gnm`` (``gnm_msf``, Gaussian network model fluctuation) and,
when the train rows have crystal neighbours, ``crystal_contact_number`` (``wcn_ca +
wcn_lattice``, the contact number counting the neighbouring copies in the crystal too), each a
line ``a + b·x`` fitted on the train rows, so its sign is learned. The slope comes from
the variation within each domain (domain fixed effects): across domains the target's scale can
vary for reasons the feature does not see (crystal B-factors), and a pooled fit then learns the
wrong sign, e.g. a contact number that predicts more motion where packing is denser. Each train
temperature gets its own intercept (:func:`fit_temperature_lines`): a single line would have no
temperature trend, and its scores pooled over temperatures (mdCATH) would flatter the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voxelflex.errors import InputError

__all__ = [
    "BASELINE_NAMES",
    "PHYSICS_BASELINES",
    "BaselinePredictions",
    "fit_baselines",
    "fit_line",
    "fit_temperature_lines",
]

BASELINE_NAMES = ("residue_type_temperature_mean", "temperature_fit")
# name -> the feature columns whose sum is the baseline's one feature
PHYSICS_BASELINES: dict[str, tuple[str, ...]] = {
    "contact_number": ("wcn_ca",),
    "gnm": ("gnm_msf",),
    "crystal_contact_number": ("wcn_ca", "wcn_lattice"),  # the file's atoms and the crystal's
}


def fit_line(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x: np.ndarray,
    *,
    what: str,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[float, float]]:
    """Least-squares ``a + b·x`` on the finite train pairs; predictions for ``x`` and (a, b).

    Parameters
    ----------
    x_train, y_train : numpy.ndarray, shape (N,)
    x : numpy.ndarray
        Values to predict for.
    what : str
        Names the fit in errors.
    groups : numpy.ndarray of int, shape (N,), optional
        Group codes (e.g. domains): the slope is then fitted on the deviations from each
        group's means (fixed effects), the intercept puts the line through the pooled means.

    Raises
    ------
    InputError
        Fewer than two finite train pairs, or ``x`` constant (within every group).
    """
    x_train = np.asarray(x_train, dtype=np.float64)
    y_train = np.asarray(y_train, dtype=np.float64)
    keep = np.isfinite(x_train) & np.isfinite(y_train)
    xk, yk = x_train[keep], y_train[keep]
    dx, dy = xk - xk.mean() if len(xk) else xk, yk - yk.mean() if len(yk) else yk
    if groups is not None and len(xk):
        g = np.unique(np.asarray(groups)[keep], return_inverse=True)[1]
        n = np.bincount(g)
        dx = xk - (np.bincount(g, xk) / n)[g]
        dy = yk - (np.bincount(g, yk) / n)[g]
    if len(xk) < 2 or not np.any(dx):
        raise InputError(
            f"{what}: the train split has {len(xk)} usable rows (or a constant value); "
            "a line needs at least two different values"
        )
    b = float(dx @ dy / (dx @ dx))
    a = float(yk.mean() - b * xk.mean())
    return a + b * np.asarray(x, dtype=np.float64), (a, b)


def fit_temperature_lines(
    x_train: np.ndarray,
    y_train: np.ndarray,
    t_train: np.ndarray,
    groups: np.ndarray,
    x: np.ndarray,
    t: np.ndarray,
    *,
    what: str,
) -> tuple[np.ndarray, float, dict[float, float]]:
    """Parallel lines ``a(T) + b·x``: one slope, an intercept per train temperature.

    The slope comes from the variation within each (group, temperature) pair, as in
    :func:`fit_line`; each train temperature's intercept puts its line through that
    temperature's means. Between two train temperatures the intercept is interpolated linearly
    in T, beyond the train range the nearest one is used. With one train temperature this is
    :func:`fit_line`. One shared slope keeps the baseline's ranking within a structure the same
    at every temperature, however few structures a temperature has (crystal sets).

    Parameters
    ----------
    x_train, y_train, t_train, groups : numpy.ndarray, shape (N,)
        Feature, target, temperature (K) and group code (domain) of the train rows.
    x, t : numpy.ndarray, shape (M,)
        Feature and temperature (K) of the rows to predict.
    what : str
        Names the fit in errors.

    Returns
    -------
    predictions : numpy.ndarray, float64, shape (M,)
    slope : float
        Target unit per feature unit.
    intercepts : dict of float → float
        Intercept per train temperature (K), target unit.

    Raises
    ------
    InputError
        Fewer than two usable train rows, or a feature constant within every group.
    """
    x_train, y_train = np.asarray(x_train, np.float64), np.asarray(y_train, np.float64)
    t_train = np.asarray(t_train, dtype=np.float64)
    keep = np.isfinite(x_train) & np.isfinite(y_train) & np.isfinite(t_train)
    pairs = np.stack([np.asarray(groups)[keep], t_train[keep]], axis=1)
    pair_codes = np.unique(pairs, axis=0, return_inverse=True)[1].ravel()
    _, (_, b) = fit_line(x_train[keep], y_train[keep], (), what=what, groups=pair_codes)
    temps, temp_codes = np.unique(t_train[keep], return_inverse=True)
    level = np.bincount(temp_codes, y_train[keep] - b * x_train[keep]) / np.bincount(temp_codes)
    a = np.interp(np.asarray(t, dtype=np.float64), temps, level)
    intercepts = {float(k): float(v) for k, v in zip(temps, level, strict=True)}
    return a + b * np.asarray(x, dtype=np.float64), b, intercepts


@dataclass(frozen=True)
class BaselinePredictions:
    """Baseline predictions for evaluation rows.

    Attributes
    ----------
    predictions : dict of str → numpy.ndarray, float64, shape (N,)
        One array per name of :data:`BASELINE_NAMES`.
    fallback_rows : int
        Rows whose (residue type, temperature) is absent from train and used the temperature fit.
    coefficients : tuple of float
        (a, b) of the temperature fit, RMSF unit and RMSF unit per K.
    n_train : int
        Train rows used.
    """

    predictions: dict[str, np.ndarray]
    fallback_rows: int
    coefficients: tuple[float, float]
    n_train: int


def fit_baselines(
    train: pa.Table, rows: pa.Table, *, where: str = "the index"
) -> BaselinePredictions:
    """Fit both baselines on ``train`` and predict them for ``rows``.

    Parameters
    ----------
    train : pyarrow.Table
        Columns ``resname``, ``temperature`` (K), ``target_rmsf``; rows of the train split.
    rows : pyarrow.Table
        Columns ``resname``, ``temperature``: the rows being evaluated.
    where : str
        Name of the source of ``train``, for error messages.
    """
    t = train["temperature"].to_numpy(zero_copy_only=False).astype(np.float64)
    y = train["target_rmsf"].to_numpy(zero_copy_only=False).astype(np.float64)
    keep = np.isfinite(t) & np.isfinite(y)
    if not keep.any():
        raise InputError(f"{where}: the train split has no row with a target; nothing to fit")
    t_rows = rows["temperature"].to_numpy(zero_copy_only=False).astype(np.float64)
    if np.ptp(t[keep]) == 0:  # one train temperature: the line is flat, at the train mean
        a, b = float(y[keep].mean()), 0.0
        fit = np.full(len(t_rows), a)
    else:
        fit, (a, b) = fit_line(t, y, t_rows, what=where)

    train_ok = train.select(["resname", "temperature", "target_rmsf"]).filter(pa.array(keep))
    means = train_ok.group_by(["resname", "temperature"]).aggregate([("target_rmsf", "mean")])
    order = pa.array(np.arange(rows.num_rows, dtype=np.int64))
    joined = (
        rows.select(["resname", "temperature"])
        .append_column("_order", order)
        .join(means, keys=["resname", "temperature"], join_type="left outer")
        .sort_by("_order")
    )
    mean = pc.fill_null(joined["target_rmsf_mean"], np.nan).to_numpy(zero_copy_only=False)
    missing = ~np.isfinite(mean)
    mean = np.where(missing, fit, mean)
    return BaselinePredictions(
        predictions={"residue_type_temperature_mean": mean, "temperature_fit": fit},
        fallback_rows=int(missing.sum()),
        coefficients=(float(a), float(b)),
        n_train=int(keep.sum()),
    )
