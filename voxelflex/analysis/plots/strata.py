"""Errors per stratum of the predicted residues, pooled and per temperature.

- ``secondary_structure_errors``: per ``dssp`` code (else ``secondary_structure_encoded``).
- ``accessibility_errors``: per relative-accessibility bin (the bins ``evaluate`` uses).

Each shows MAE (bars: pooled over temperatures; dots: each temperature) and the pooled mean
error, with the row count of each group.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voxelflex.analysis.evaluate import (
    ACCESSIBILITY_BINS,
    accessibility_bins,
    secondary_structure_column,
)
from voxelflex.analysis.plots.accuracy import scored_rows
from voxelflex.analysis.plots.common import new_figure, save, temperature_colors, unit_label
from voxelflex.columns import strings
from voxelflex.errors import InputError
from voxelflex.formats import ImageFormat
from voxelflex.metrics import grouped_pearson
from voxelflex.quantities import temperature_key

__all__ = ["group_stats", "plot_accessibility_errors", "plot_secondary_structure_errors"]


def group_stats(y: np.ndarray, p: np.ndarray, codes: np.ndarray, n_groups: int) -> dict:
    """Per-group n, MAE, mean error (bias), RMSE and Pearson r of codes 0..n_groups-1."""
    err = p - y
    n = np.bincount(codes, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mae = np.bincount(codes, np.abs(err), n_groups) / n
        bias = np.bincount(codes, err, n_groups) / n
        rmse = np.sqrt(np.bincount(codes, err * err, n_groups) / n)
    groups, r = grouped_pearson(y, p, codes)
    r_full = np.full(n_groups, np.nan)
    r_full[groups] = r
    return {"n": n, "mae": mae, "mean_error": bias, "rmse": rmse, "pearson": r_full}


def _plot_group_errors(
    table: pa.Table,
    labels: np.ndarray,
    order: list[str],
    out_dir: Path,
    *,
    name: str,
    title: str,
    xlabel: str,
    rmsf_unit: str | None,
    fmt: ImageFormat | str,
) -> list[Path]:
    """MAE per group (bars, pooled over temperatures), MAE at each temperature (coloured dots)
    and the pooled mean error (black diamonds); row counts under the group names.

    ``labels`` holds each row's group (``""`` = no value, left out); ``order`` the groups in
    the order drawn.
    """
    y, p, t, _ = scored_rows(table)
    has = labels != ""
    y, p, t, labels = y[has], p[has], t[has], labels[has]
    order = [g for g in order if (labels == g).any()]
    lookup = {g: i for i, g in enumerate(order)}
    codes = np.array([lookup[g] for g in labels], dtype=np.int64)
    temps = np.unique(t)
    pooled = group_stats(y, p, codes, len(order))
    unit = unit_label(rmsf_unit)
    fig = new_figure(max(6.5, 0.9 * len(order) + 3), 4.5)
    ax = fig.subplots()
    x = np.arange(len(order))
    ax.bar(x, pooled["mae"], color="0.8", edgecolor="0.5", label="MAE, all temperatures")
    width = 0.7 / max(len(temps), 1)
    parts = [pa.table({"group": order, "temperature": ["all"] * len(order), **_as_columns(pooled)})]
    for i, (temp, colour) in enumerate(zip(temps, temperature_colors(temps), strict=True)):
        sel = t == temp
        stats = group_stats(y[sel], p[sel], codes[sel], len(order))
        offset = (i - (len(temps) - 1) / 2) * width
        ax.plot(
            x + offset,
            stats["mae"],
            "o",
            ms=4,
            color=colour,
            label=f"MAE at {temperature_key(temp)} K",
        )
        parts.append(
            pa.table(
                {
                    "group": order,
                    "temperature": [temperature_key(temp)] * len(order),
                    **_as_columns(stats),
                }
            )
        )
    ax.plot(
        x,
        pooled["mean_error"],
        "D",
        color="black",
        ms=5,
        label="mean error (predicted − true), all temperatures",
    )
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xticks(x, [f"{g}\n{n}" for g, n in zip(order, pooled["n"], strict=True)])
    ax.set_xlabel(f"{xlabel} (row count below)")
    ax.set_ylabel(f"error ({unit})")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save(fig, pa.concat_tables(parts), out_dir, name, fmt)


def _as_columns(stats: dict) -> dict:
    return {
        k: pa.array(np.asarray(v, dtype=np.float64 if k != "n" else np.int64))
        for k, v in stats.items()
    }


def plot_secondary_structure_errors(
    table: pa.Table, out_dir: Path, *, rmsf_unit: str | None, fmt: ImageFormat | str = "png"
) -> list[Path]:
    """Errors per secondary-structure code (``dssp``, else ``secondary_structure_encoded``),
    pooled and per temperature; codes in descending row count.

    Raises
    ------
    InputError
        The table has neither column, or no row with a value.
    """
    column = secondary_structure_column(table)
    if column is None:
        raise InputError(
            "the predictions have no dssp or secondary_structure_encoded column (the RMSF CSV "
            "had none); the secondary-structure plot needs one"
        )
    _, _, _, rows = scored_rows(table)
    labels = strings(rows[column])
    names, counts = np.unique(labels[labels != ""], return_counts=True)
    if not len(names):
        raise InputError(f"no scored row has a value in column {column!r}")
    order = [str(g) for g in names[np.argsort(-counts, kind="stable")]]
    return _plot_group_errors(
        table,
        labels,
        order,
        out_dir,
        name="secondary_structure_errors",
        title=f"Errors per secondary structure ({column})",
        xlabel=f"secondary structure ({column})",
        rmsf_unit=rmsf_unit,
        fmt=fmt,
    )


def plot_accessibility_errors(
    table: pa.Table,
    out_dir: Path,
    *,
    rmsf_unit: str | None,
    bins: Sequence[float] = ACCESSIBILITY_BINS,
    fmt: ImageFormat | str = "png",
) -> list[Path]:
    """Errors per relative-accessibility bin (``bins``: edges, as ``evaluate`` uses), pooled
    and per temperature.

    Raises
    ------
    InputError
        The table has no ``relative_accessibility`` column, or no value inside the bins.
    """
    if "relative_accessibility" not in table.column_names:
        raise InputError(
            "the predictions have no relative_accessibility column (the RMSF CSV had none); the "
            "accessibility plot needs it"
        )
    _, _, _, rows = scored_rows(table)
    acc = pc.fill_null(rows["relative_accessibility"], np.nan).to_numpy(zero_copy_only=False)
    labels, order = accessibility_bins(np.asarray(acc, dtype=np.float64), bins)
    if not (labels != "").any():
        raise InputError(f"no relative_accessibility value lies inside the bins {list(bins)}")
    return _plot_group_errors(
        table,
        labels,
        order,
        out_dir,
        name="accessibility_errors",
        title="Errors per relative accessibility bin",
        xlabel="relative accessibility",
        rmsf_unit=rmsf_unit,
        fmt=fmt,
    )
